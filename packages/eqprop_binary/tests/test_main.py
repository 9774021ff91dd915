"""The command line: the reference's commands, errors, outputs and --resume."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import pytest
import torch
from bnn_shared.cli import run_cli
from eqprop_binary.main import build_parser, main
from eqprop_binary.settings import Settings
from eqprop_binary.tools import _errors, one_hot
from eqprop_readme_commands import COMMANDS, TYPO_COMMAND

FC_DIGITS = (
    "--device cpu --dataset digits --archi fc --optim ep --binary_settings bin_W "
    "--layersList 64 32 10 --T 8 --Kmax 4 --gamma 1e-3 1e-2 --gradThreshold 5e-6 5e-6 "
    "--lrBias 0.025 0.05 --learnAlpha 1 --lrAlpha 1e-4 1e-4 --batchSize 64 --quiet"
)
CONV_DIGITS = (
    "--device cpu --dataset digits --archi conv --binary_settings bin_W --layersList 10 "
    "--convList 4 2 1 --padding 1 --kernelSize 3 --Fpool 2 --T 6 --Kmax 3 "
    "--classi_gamma 1e-3 --conv_gamma 1e-3 1e-3 --classi_threshold 1e-6 "
    "--conv_threshold 1e-6 1e-6 --lrBias 0.025 0.05 0.1 --batchSize 128 --quiet"
)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_readme_command_parses_and_validates(name):
    args = build_parser().parse_args(shlex.split(COMMANDS[name]))
    cfg = Settings.from_namespace(args).validate()
    assert cfg.device == "0" and cfg.optim in {"ep", "bptt"}
    if name == "conv_mnist_bin_W_N_ep":  # "-convList", as the README writes it
        assert cfg.convList == [512, 256, 1] and cfg.layersList == [700]


def test_readme_typo_fails_with_a_clear_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(shlex.split(TYPO_COMMAND))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--classi_threshold" in err and "a space is missing before '--conv_threshold'" in err


def test_optim_defaults_to_ep_and_device_minus_one_is_cpu():
    args = build_parser().parse_args([])
    assert args.optim == "ep" and args.device == "-1"


@pytest.mark.parametrize(
    "change, message",
    [
        ("--gamma 1e-3", "--gamma has 1 value(s) but the network has 2 layers"),
        ("--layersList 64 32 20", "need 10"),
        ("--optim train_ep", "--optim 'train_ep' is not one of ep, bptt"),
        ("--beta 0", "must not be 0"),
        ("--layersList 784 32 10", "starts with 784 inputs, but the digits images have 64"),
        ("--binary_settings bin_W_N --optim bptt", "bin_W only"),
    ],
)
def test_bad_settings_give_one_clear_error(tmp_path, capsys, change, message):
    argv = shlex.split(f"{FC_DIGITS} {change} --out-dir {tmp_path}")
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_missing_dataset_says_where_and_how(tmp_path, capsys):
    argv = shlex.split(FC_DIGITS.replace("digits", "mnist").replace("64 32", "784 32"))
    assert run_cli(main, [*argv, "--data-dir", str(tmp_path), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--download" in err and "digits" in err


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _run_dir(root: Path, archi: str) -> Path:
    (found,) = sorted(root.glob(f"DATA-0-{archi}-digits/*/S-*"))
    return found


@pytest.mark.parametrize("command, archi", [(FC_DIGITS, "fc"), (CONV_DIGITS, "conv")])
def test_outputs_and_resume_give_identical_results(tmp_path, command, archi):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(shlex.split(f"{command} --epochs 2 --out-dir {straight}")) == 0
    assert main(shlex.split(f"{command} --epochs 1 --out-dir {resumed}")) == 0
    assert main(shlex.split(f"{command} --epochs 2 --out-dir {resumed} --resume")) == 0
    a, b = _rows(_run_dir(straight, archi)), _rows(_run_dir(resumed, archi))
    assert len(a) == len(b) == 2
    for row_a, row_b in zip(a, b, strict=True):
        row_a.pop("Seconds"), row_b.pop("Seconds")
        assert row_a == row_b
    run_dir = _run_dir(straight, archi)
    assert {"checkpoint.pt", "Hyperparameters.txt", "results.csv"} <= {
        p.name for p in run_dir.iterdir()
    }
    columns = list(a[0])
    assert columns[:7] == [
        "Epoch", "Ave_Train_Error", "Ave_Test_Error", "Single_Train_Error",
        "Single_Test_Error", "Train_Loss", "Test_Loss",
    ]  # fmt: skip
    names = ["0", "1"] if archi == "fc" else ["fc_0", "conv_0", "conv_1"]
    for prefix in ("Nb_Change_Weights", "Threshold", "Gamma", "Alpha"):
        assert [c for c in columns if c.startswith(prefix + "_")] == [
            f"{prefix}_{n}" for n in names
        ]
    if archi == "conv":  # the classifier's gamma (the reference wrote conv_gamma here)
        assert float(a[0]["Gamma_fc_0"]) == 1e-3
    assert float(a[-1]["Ave_Test_Error"]) < 90.0  # it learns something in two epochs
    text = (run_dir / "Hyperparameters.txt").read_text()
    assert text.startswith("Binary synapses and full-precision activations")
    assert ("convList: [4, 2, 1]" in text) == (archi == "conv")
    assert "gamma_neur" not in text


def test_a_second_run_gets_the_next_s_directory(tmp_path):
    for _ in range(2):
        main(shlex.split(f"{FC_DIGITS} --epochs 1 --T 2 --Kmax 1 --out-dir {tmp_path}"))
    assert [p.name for p in sorted(tmp_path.glob("DATA-0-fc-digits/*/S-*"))] == ["S-1", "S-2"]


def test_ave_and_single_read_outs_with_expand_output():
    # 2 samples, 10 classes x 3 neurons; sample 0: class 2 wins on average, class 5 on the
    # first neuron; sample 1: class 7 wins both ways
    out = torch.zeros(2, 30)
    out[0, 6:9] = torch.tensor([0.1, 0.9, 0.9])  # class 2, mean 0.63
    out[0, 15] = 0.5  # class 5: first neuron 0.5, mean 0.17
    out[1, 21:24] = 1.0
    assert _errors(out, torch.tensor([2, 7]), 3) == (0, 1)
    assert _errors(out, torch.tensor([5, 7]), 3) == (1, 0)
    target = one_hot(torch.tensor([1]), 3)
    assert target.shape == (1, 30) and target[0, 3:6].tolist() == [1, 1, 1]
    assert target.sum() == 3
