"""Post-training activation quantization: the quantizer and ``python -m hadamrnn.ptq``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bnn_shared.cli import run_cli
from bnn_shared.errors import ConfigError
from hadamrnn.extra_layers import ActivationQuantizer
from hadamrnn.ptq import main as ptq_main
from hadamrnn.train import main as train_main

SDIGITS = str(Path(__file__).resolve().parents[3] / "configs" / "hadamrnn" / "sdigits.yaml")


def test_activation_quantizer_levels_and_saturation():
    q = ActivationQuantizer(4)
    q.observe(torch.tensor([-2.0, 1.0]))
    assert q.max_abs.item() == 2.0
    values = torch.linspace(-3, 3, 101)
    out = q(values)
    steps = out / (2.0 / 8)
    assert torch.allclose(steps, steps.round()) and steps.min() == -8 and steps.max() == 7
    assert len(torch.unique(out)) <= 16
    assert (out - values)[values.abs() <= 1.75].abs().max() <= 0.125 + 1e-6
    with pytest.raises(ConfigError):
        ActivationQuantizer(1)


def test_ptq_runs_on_a_trained_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "--config",
        SDIGITS,
        "--out-dir",
        str(run),
        "--device",
        "cpu",
        "--quiet",
        "--set",
        "TRAIN.N_EPOCHS=1",
        "--save-network",
    ]
    assert run_cli(train_main, argv) == 0
    capsys.readouterr()
    assert run_cli(ptq_main, ["--checkpoint", str(run / "best.pt"), "--bits", "8", "16"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["float", "8", "16"]
    accuracy = {line.split()[1]: float(line.split()[-1]) for line in lines}
    assert abs(accuracy["16"] - accuracy["float"]) < 0.02  # 16 bits change almost nothing
    checkpoint = str(run / "checkpoint.pt")  # the runner's checkpoint carries the config too
    assert run_cli(ptq_main, ["--checkpoint", checkpoint, "--bits", "8"]) == 0
    assert capsys.readouterr().out.count("test/accuracy") == 2
    # a bare state dict needs its config
    pth = str(run / "hadamrnn_sdigits.pth")
    assert run_cli(ptq_main, ["--checkpoint", pth, "--bits", "8"]) == 2
    assert "--config" in capsys.readouterr().err
    assert run_cli(ptq_main, ["--checkpoint", pth, "--config", SDIGITS, "--bits", "8"]) == 0
    assert capsys.readouterr().out.count("test/accuracy") == 2


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert run_cli(ptq_main, ["--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "not found" in capsys.readouterr().err
