"""The command line: both studies' flags, the regime they select, runs, --resume, errors."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import pytest
import yaml
from binary_feedback.train import build, build_parser, main, resolve
from bnn_shared.cli import run_cli

ROOT = Path(__file__).resolve().parents[3]
A_DIGITS = (
    "--dataset digits --bn --binarize --hidden-act signsat --hidden 32,16 --init 1e-3 "
    "--lr 1e-4 -b 32 --seed 0 --device cpu --quiet"
)
B_DIGITS = "--dataset digits --model SmallCNN --binary-act --binary-weights --lr 1e-3 --bs 64 "
B_DIGITS += "--test-set --seed 0 --device cpu --quiet"


def test_help_shows_both_flag_families(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in (
        "--hidden-act",
        "--weight-ste",
        "--weight-clipping",
        "-b",
        "--run-name",
        "--binary-act",
        "--remove-skips",
        "--hsic-mode",
        "--bw-init",
        "--no-wandb",
    ):
        assert flag in text  # fmt: skip


@pytest.mark.parametrize(
    "argv, study",
    [
        ("--method drtp", "A"),
        ("--method DFA --bn --binarize --hidden-act signsat", "A"),
        ("--method dfa --model MobileNetV2", "B"),
        ("--method bp --binary-act", "B"),
        ("--method bp --study B", "B"),
    ],
)
def test_the_flags_used_select_the_study(argv, study):
    args = resolve(shlex.split(argv))
    assert args.study == study
    assert args.epochs == (5 if study == "A" else 80)
    assert args.lr == 1e-3


def test_study_a_defaults_are_the_study_code_defaults():
    args = resolve(["--method", "drtp"])  # spec A.1; the paper's settings are in the configs
    assert args.hidden == [700, 500] and args.batch_size == 128 and args.init == 0.1
    assert args.dataset == "mnist" and args.weight_clipping is None and args.method == "DRTP"


def test_default_command_without_files_gives_the_core_message(tmp_path, capsys):
    argv = ["--method", "drtp", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path)]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--download" in err and "digits" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        ("--method foo", "unknown training method 'foo'"),
        ("--dataset svhn", "unknown dataset 'svhn'"),
        ("--method dfa --model ResNet", "unknown model 'ResNet'"),
        ("--method bp --opt Nope --model SmallCNN", "--opt 'Nope'"),
        ("--method bp --hidden 7a0", "--hidden '7a0'"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, capsys, argv, message):
    full = f"{argv} --dataset digits --epochs 1 --out-dir {tmp_path}"
    if "--dataset svhn" in argv:
        full = f"{argv} --out-dir {tmp_path}"
    assert run_cli(main, shlex.split(full)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("command", [f"{A_DIGITS} --method DFA", f"{B_DIGITS} --method drtp"])
def test_resume_continues_to_the_same_result(tmp_path, command):
    straight, resumed = tmp_path / "a", tmp_path / "b"
    assert main(shlex.split(f"{command} --epochs 2 --out-dir {straight}")) == 0
    assert main(shlex.split(f"{command} --epochs 1 --out-dir {resumed}")) == 0
    assert main(shlex.split(f"{command} --epochs 2 --out-dir {resumed} --resume")) == 0
    a, b = _rows(straight), _rows(resumed)
    assert len(a) == len(b) == 2
    for row_a, row_b in zip(a, b, strict=True):
        row_a.pop("seconds"), row_b.pop("seconds")
        assert row_a == row_b
    assert {"train/accuracy", "test/f1", "test/precision", "train/loss"} <= set(a[0])


def test_a_drawn_seed_is_stored_and_reused_on_resume(tmp_path):
    command = A_DIGITS.replace("--seed 0 ", "") + " --method DRTP"
    straight, resumed = tmp_path / "a", tmp_path / "b"
    assert main(shlex.split(f"{command} --epochs 1 --out-dir {resumed}")) == 0
    seed = yaml.safe_load((resumed / "config.yaml").read_text())["seed"]
    assert isinstance(seed, int)
    assert main(shlex.split(f"{command} --epochs 2 --out-dir {resumed} --resume")) == 0
    assert yaml.safe_load((resumed / "config.yaml").read_text())["seed"] == seed
    assert main(shlex.split(f"{command} --seed {seed} --epochs 2 --out-dir {straight}")) == 0
    a, b = _rows(straight), _rows(resumed)
    for row in (*a, *b):
        row.pop("seconds")
    assert a == b


def test_study_a_fully_binary_mlp_learns_digits(tmp_path):
    assert main(shlex.split(f"{A_DIGITS} --method DFA --epochs 3 --out-dir {tmp_path}")) == 0
    assert float(_rows(tmp_path)[-1]["test/best_accuracy"]) > 0.6


def test_confusion_matrix_of_the_best_epoch_matches_its_accuracy(tmp_path):
    assert main(shlex.split(f"{A_DIGITS} --method DFA --epochs 2 --out-dir {tmp_path}")) == 0
    lines = (tmp_path / "confusion.csv").read_text().splitlines()
    best = max(_rows(tmp_path), key=lambda row: float(row["test/accuracy"]))
    assert lines[0] == f"# epoch {best['epoch']}; rows: true class, columns: predicted class"
    matrix = [[int(v) for v in line.split(",")[1:]] for line in lines[2:]]
    assert len(matrix) == 10 and all(len(row) == 10 for row in matrix)
    total = sum(map(sum, matrix))
    hits = sum(matrix[c][c] for c in range(10))
    assert hits / total == pytest.approx(float(best["test/accuracy"]))


@pytest.mark.parametrize("method", ["bp", "dfa", "drtp", "hsic", "pepita", "sigprop"])
def test_every_method_runs_a_study_b_epoch(tmp_path, method):
    argv = shlex.split(f"{B_DIGITS} --method {method} --epochs 1 --out-dir {tmp_path}")
    assert main(argv) == 0
    assert len(_rows(tmp_path)) == 1


def test_configs_load(tmp_path):
    configs = sorted((ROOT / "configs" / "binary_feedback").glob("*.yaml"))
    assert len(configs) >= 20
    for path in configs:
        args = resolve(["--config", str(path)])
        assert args.study in {"A", "B"} and args.lr > 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\nlearning_rate: 3\n")
    with pytest.raises(Exception, match="unknown key 'learning_rate'"):
        resolve(["--config", str(bad)])


def test_monitor_logs_saturation_and_normalised_hsic_per_layer(tmp_path):
    argv = shlex.split(f"{A_DIGITS} --method DFA --epochs 1 --monitor --out-dir {tmp_path}")
    assert main(argv) == 0
    row = _rows(tmp_path)[0]
    for j in range(3):  # two hidden sign layers and the tanh output
        assert 0.0 <= float(row[f"monitor/layer_{j}_saturation"]) <= 1.0
        for key in (f"monitor/layer_{j}_nhsic_xz", f"monitor/layer_{j}_nhsic_zy"):
            assert -1e-6 <= float(row[key]) <= 1.0 + 1e-6


@pytest.mark.slow
def test_wandb_run_logs_the_reference_metric_names_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    argv = f"{A_DIGITS} --method DRTP --epochs 1 --wandb --out-dir {tmp_path}"
    assert main(shlex.split(argv)) == 0
    history = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert history, "no offline wandb run was written"
    data = history[0].read_bytes()
    for name in (b"batch/loss", b"train/accuracy", b"test/f1", b"test/confusion"):
        assert name in data


@pytest.mark.parametrize("mode", ["reference", "fixed"])
def test_pepita_gain_mode_reaches_the_rule(mode):
    args = resolve(shlex.split(f"--method pepita --model SmallCNN --pepita-gain 3 "
                               f"--pepita-gain-mode {mode}"))  # fmt: skip
    _, rule, _ = build(args, (1, 8, 8), 10)
    assert (rule.gain, rule.gain_mode) == (3.0, mode)


def test_a_config_yaml_of_the_earlier_format_replays(tmp_path):
    """A run's config.yaml written before each study had its own schema lists every flag of
    both studies; the other study's keys at their defaults carry nothing and are left out,
    and any other value of theirs is still an error."""
    from binary_feedback.train import parse
    from bnn_shared.errors import ConfigError

    path = ROOT / "experiments_results/binary_feedback/mnist_bn_binary_tanh_dfa/config.yaml"
    config, _ = parse(["--config", str(path), "--out-dir", str(tmp_path)])
    assert (config.study, config.method, config.hidden, config.seed) == (
        "A", "DFA", [700, 500, 300, 200], 1,
    )  # fmt: skip
    changed = tmp_path / "c.yaml"
    changed.write_text(path.read_text().replace("bs: 10", "bs: 32"))
    with pytest.raises(ConfigError, match="--bs belongs to study B"):
        parse(["--config", str(changed)])
