"""The command line: the reference's commands, errors, outputs and --resume."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import pytest
import torch
from bnn_shared.cli import run_cli
from bnn_shared.errors import BnnError
from bnn_shared.tracking import MetricsLog
from eqprop_binary.demo import DEMO_COMMAND
from eqprop_binary.main import build_parser, main, settings_from_args
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
    cfg = settings_from_args(args)
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
    assert not any(tmp_path.iterdir())  # a bad setting leaves no run directory


@pytest.mark.parametrize(
    "change, key",
    [
        ("--T 0", "'T'"),
        ("--Kmax 0", "'Kmax'"),
        ("--batchSize 0", "'batchSize'"),
        ("--epochs 0", "'epochs'"),
        ("--layersList 64 0 10", "'layersList[1]'"),
        ("--lrBias -0.1 0.05", "'lrBias[0]'"),
        ("--gamma_neur 0", "'gamma_neur'"),
        ("--set decayLrAlpha=0", "'decayLrAlpha'"),
    ],
)
def test_non_positive_sizes_epochs_and_rates_name_the_key(tmp_path, capsys, change, key):
    argv = shlex.split(f"{FC_DIGITS} {change} --out-dir {tmp_path}")
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and key in err and len(err.strip().splitlines()) == 1


def test_config_file_flags_and_set_fill_the_same_settings(tmp_path):
    flags = build_parser().parse_args(shlex.split(f"{FC_DIGITS} --T 5 --beta 0.5"))
    config = tmp_path / "fc.yaml"
    config.write_text(
        "archi: fc\ndataset: digits\noptim: ep\ndevice: cpu\nlayersList: [64, 32, 10]\n"
        "T: 8\nKmax: 4\ngamma: [1.0e-3, 1.0e-2]\ngradThreshold: [5.0e-6, 5.0e-6]\n"
        "lrBias: [0.025, 0.05]\nlearnAlpha: 1\nlrAlpha: [1.0e-4, 1.0e-4]\n"
    )
    argv = f"--config {config} --T 5 --quiet --set beta=0.5"
    from_file = settings_from_args(build_parser().parse_args(shlex.split(argv)))
    assert from_file == settings_from_args(flags)
    assert from_file.T == 5 and from_file.Kmax == 4 and from_file.beta == 0.5
    config.write_text("archi: fc\nTT: 3\n")
    with pytest.raises(BnnError, match="unknown key 'TT'.*did you mean 'T'"):
        settings_from_args(build_parser().parse_args(["--config", str(config)]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback without a GPU")
def test_device_number_without_a_gpu_runs_on_the_cpu_with_a_warning(tmp_path, capsys):
    command = FC_DIGITS.replace("--device cpu", "--device 0")
    argv = shlex.split(f"{command} --epochs 1 --T 2 --Kmax 1 --out-dir {tmp_path}")
    assert run_cli(main, argv) == 0
    err = capsys.readouterr().err
    assert err.count("--device 0 names a GPU, but none is available: running on the CPU") == 1


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
    metrics = MetricsLog.load(run_dir / "metrics.csv")
    assert [row["epoch"] for row in metrics.rows] == [1, 2]
    for row, result in zip(metrics.rows, a, strict=True):  # the same numbers, scheme names
        assert repr(row["test/error"]) == result["Ave_Test_Error"]
        assert repr(row[f"log_flips/{names[-1]}"]) == result[f"Nb_Change_Weights_{names[-1]}"]
        assert {f"alpha/{n}" for n in names} <= set(row) and "seconds" in row
    final = MetricsLog.load(run_dir / "final.csv").rows
    assert final == [{k: metrics.rows[-1][k] for k in ("train/error", "test/error")}]
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


CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "eqprop_binary"


@pytest.mark.parametrize(
    "config, command",
    [("digits_fc_bin_W", DEMO_COMMAND), ("mnist_fc_bin_W_ep", COMMANDS["fc1_bin_W_ep"])],
)
def test_config_files_give_the_settings_of_their_commands(config, command):
    from_file = build_parser().parse_args(["--config", str(CONFIGS / f"{config}.yaml")])
    typed = build_parser().parse_args(shlex.split(command))
    assert settings_from_args(from_file) == settings_from_args(typed)
