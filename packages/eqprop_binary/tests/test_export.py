"""Quantized weights, the bit-aware summary and the bit-packed export of the four networks.

Snapshot: ``tests/snapshots/summary_fc_784-4096-10_bin_W.txt`` holds the summary of the
paper's fc 784-4096-10 bin_W network (Section 3's command); ``BNN_UPDATE_SNAPSHOTS=1``
rewrites it.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import torch
from bnn_shared import export, quantizers
from bnn_shared.cli import run_cli
from bnn_shared.errors import CheckpointError, ConfigError
from bnn_shared.export.__main__ import main as export_main
from bnn_shared.layers import QuantConv2d, QuantLinear
from bnn_shared.summary import summary
from eqprop_binary import exporting
from eqprop_binary.activations import ACTIVATIONS
from eqprop_binary.main import build_parser, main, settings_from_args
from eqprop_binary.settings import Settings
from eqprop_binary.tools import ep_step, one_hot
from eqprop_readme_commands import COMMANDS

SNAPSHOTS = Path(__file__).parent / "snapshots"
FC = (
    "--archi fc --layersList 64 32 10 --T 8 --Kmax 4 --gamma 1e-3 1e-2 "
    "--gradThreshold 5e-6 5e-6 --lrBias 0.025 0.05"
)
FC_N = (
    "--archi fc --binary_settings bin_W_N --activationFun heaviside --layersList 64 48 40 "
    "--expand_output 4 --T 8 --Kmax 4 --beta 2 --gamma 2e-4 2e-4 --gradThreshold 2e-6 2e-6 "
    "--lrBias 1e-4 1e-4"
)
CONV = (
    "--archi conv --layersList 10 --convList 4 2 1 --padding 1 --kernelSize 3 --Fpool 2 "
    "--T 6 --Kmax 3 --classi_gamma 1e-3 --conv_gamma 1e-3 1e-3 --classi_threshold 1e-6 "
    "--conv_threshold 1e-6 1e-6 --lrBias 0.025 0.05 0.1"
)
CONV_N = (
    "--archi conv --binary_settings bin_W_N --activationFun heaviside --layersList 40 "
    "--expand_output 4 --convList 4 2 1 --padding 1 --kernelSize 3 --Fpool 2 --T 6 --Kmax 3 "
    "--beta 1 --classi_gamma 1e-4 --conv_gamma 1e-4 1e-4 --classi_threshold 1e-6 "
    "--conv_threshold 1e-6 1e-6 --lrBias 1e-4 1e-4 1e-4"
)
CASES = {"fc_bin_W": FC, "fc_bin_W_N": FC_N, "conv_bin_W": CONV, "conv_bin_W_N": CONV_N}


def settings(command: str) -> Settings:
    base = "--device cpu --dataset digits --learnAlpha 1 --lrAlpha 1e-3 1e-3 1e-3 "
    return settings_from_args(build_parser().parse_args(shlex.split(base + command)))


def trained(model_class: str, steps: int = 3):
    """A digits-sized network of ``model_class`` after a few EP updates on random inputs
    (flips, bias steps and learnt scaling factors), and inputs it has not seen."""
    torch.manual_seed(0)
    cfg = settings(CASES[model_class])
    net = exporting.build(model_class, exporting.model_config(cfg))
    shape = (64,) if cfg.archi == "fc" else (1, 8, 8)
    for _ in range(steps):
        x = torch.rand(16, *shape)
        ep_step(net, x, one_hot(torch.randint(0, 10, (16,)), cfg.expand_output), cfg.beta, 1)
    return net, torch.rand(32, *shape)


def test_activations_are_the_core_step_and_windows():
    x = torch.tensor([-1.0, -0.5, -1e-7, 0.0, 1e-7, 0.5, 0.7, 1.0, 1.5])
    heaviside, hardsigm = ACTIVATIONS.get("heaviside"), ACTIVATIONS.get("hardsigm")
    assert torch.equal(heaviside.rho(x), torch.tensor([0.0, 0, 0, 1, 1, 1, 1, 1, 1]))  # H(0) = 1
    assert torch.equal(heaviside.rhop(x), torch.tensor([0.0, 1, 1, 1, 1, 1, 0, 0, 0]))
    assert torch.equal(hardsigm.rho(x), x.clamp(0, 1))
    assert torch.equal(hardsigm.rhop(x), torch.tensor([0.0, 0, 0, 1, 1, 1, 1, 1, 0]))
    assert torch.equal(heaviside.rho(x), quantizers.heaviside(x, zero=1))


@pytest.mark.parametrize("model_class", sorted(CASES))
def test_weight_layers_are_1_bit_quant_layers_holding_alpha_times_sign(model_class):
    net, _ = trained(model_class)
    for i, layer in enumerate(net.weight_layers()):
        assert isinstance(layer, QuantLinear | QuantConv2d)
        assert layer.weight_precision == 1 and layer.kernel_precision == 1
        assert layer.quantized_weight() is layer.weight  # the relaxation reads it directly
        w = layer.weight.detach()
        if model_class.startswith("conv"):
            alpha = net.alpha_of(i).view(-1, *([1] * (w.dim() - 1)))
        else:
            alpha = net.alpha[i]
        assert torch.equal(w.abs(), alpha.expand_as(w)), "every weight is +-alpha"
        assert torch.equal(w, quantizers.scaled_sign(w, alpha.reshape(-1), zero=0))


def test_summary_snapshot_of_the_papers_fc_784_4096_10():
    cfg = settings_from_args(build_parser().parse_args(shlex.split(COMMANDS["fc1_bin_W_ep"])))
    net = exporting.build("fc_bin_W", exporting.model_config(cfg))
    text = str(summary(net, input_size=(784,), print_fn=None)) + "\n"
    path = SNAPSHOTS / "summary_fc_784-4096-10_bin_W.txt"
    if os.environ.get("BNN_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("model_class", sorted(CASES))
def test_summary_counts_bits_and_the_macs_of_one_free_phase(model_class):
    net, _ = trained(model_class, steps=0)
    shape = tuple(exporting.model_config(net.cfg)["input_shape"])
    result = summary(net, input_size=shape, print_fn=None)
    weights = sum(layer.weight.numel() for layer in net.weight_layers())
    biases = sum(layer.bias.numel() for layer in net.weight_layers())
    alphas = sum(p.numel() for p in net.parameters(recurse=False))
    assert result.params == {1: weights, 32: biases + alphas}
    *hidden, first = net.layer_macs()
    steps = 2 * net.T * sum(hidden)
    expected = {32: first, 1: steps} if net.binary else {32: first + steps}
    assert result.macs == expected


@pytest.mark.parametrize("model_class", sorted(CASES))
def test_export_reloads_to_identical_outputs(model_class, tmp_path):
    net, x = trained(model_class)
    net.eval()
    config = exporting.model_config(net.cfg)
    path = export.save_binary(
        net, tmp_path / "m.bnn", package="eqprop_binary", model_class=model_class, config=config
    )
    entries = export.packed_entries(net)
    assert sorted(entries) == sorted(
        f"{name}.weight" for name, m in net.named_modules() if hasattr(m, "kernel_quantizer")
    )
    assert all(entry.precision == 1 for entry in entries.values())
    reloaded = export.load(path)
    assert type(reloaded) is type(net)
    assert torch.equal(reloaded(x), net(x))
    assert torch.equal(exporting.predict(reloaded, x), exporting.predict(net, x))
    for a, b in zip(reloaded.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # File vs summary: these tiny networks hold a few hundred bytes of bits; the file adds
    # torch.save's container and the stored settings (about 4.3 KB), the codebooks (8 bytes
    # per tensor or per output channel) and the float32 alphas, counted by the summary too.
    memory = summary(net, input_size=tuple(config["input_shape"]), print_fn=None).memory_bytes
    assert memory < path.stat().st_size < memory + 6 * 1024


def test_export_file_is_within_5_percent_of_the_summary_for_a_784_1024_10_net(tmp_path):
    cfg = settings(FC).model_copy(update={"layersList": [784, 1024, 10]})
    net = exporting.build("fc_bin_W", exporting.model_config(cfg))
    path = export.save_binary(net, tmp_path / "m.bnn")
    memory = summary(net, input_size=(784,), print_fn=None).memory_bytes
    assert abs(path.stat().st_size / memory - 1) < 0.05


def test_build_and_from_run_reject_what_does_not_fit():
    config = exporting.model_config(settings(FC))
    with pytest.raises(ConfigError, match="fc_bin_W, fc_bin_W_N, conv_bin_W, conv_bin_W_N"):
        exporting.build("mlp", config)
    with pytest.raises(ConfigError, match="describe a fc_bin_W network, not conv_bin_W"):
        exporting.build("conv_bin_W", config)
    with pytest.raises(ConfigError, match="lacks input_shape"):
        exporting.build("fc_bin_W", {"settings": config["settings"]})
    state = exporting.build("fc_bin_W", config).state_dict()
    wider = dict(config["settings"], layersList=[64, 48, 10])
    with pytest.raises(CheckpointError, match="does not fit"):
        exporting.from_run({**wider, "run": {"package": "eqprop_binary"}}, state)


@pytest.mark.slow
def test_cli_run_exports_and_verifies(tmp_path, capsys):
    argv = shlex.split(
        f"--device cpu --dataset digits --epochs 1 --batchSize 64 --quiet --learnAlpha 0 {FC} "
        f"--out-dir {tmp_path}"
    )
    assert run_cli(main, argv) == 0
    (run_dir,) = tmp_path.glob("DATA-0-*/*/S-1")
    capsys.readouterr()
    assert run_cli(export_main, [str(run_dir), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "reloaded model: the same class on 359 of 359 test inputs" in out
    assert (run_dir / "model.bnn").is_file() and (run_dir / "model.summary.txt").is_file()
    assert export.read_header(run_dir / "model.bnn")["model_class"] == "fc_bin_W"


def test_export_cli_rejects_a_directory_without_a_run(tmp_path, capsys):
    assert run_cli(export_main, [str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and not list(tmp_path.iterdir())
