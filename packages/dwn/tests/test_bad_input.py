"""``python -m dwn.train`` with bad input: exit code 2, one line naming the flag or key, no
traceback, no file created or changed; a loss that turns NaN stops the run and --resume
continues from the last good epoch; random invalid configs of the schema (Hypothesis)."""

from __future__ import annotations

import pytest
from bnn_shared.testing import (
    assert_bad_input,
    assert_out_dir_refused,
    assert_rejected,
    invalid_configs,
    metric_rows,
    write_mnist_files,
)
from dwn.config import TrainConfig
from dwn.train import main
from hypothesis import given, settings
from hypothesis import strategies as st

DIGITS = ["--dataset", "digits", "--layers", "40", "--mapping", "random", "--n", "4", "--quiet"]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--batch-size", "0"], "batch_size"),
        (["--batch-size", "-3"], "batch_size"),
        (["--test-batch-size", "0"], "test_batch_size"),
        (["--layers", "0"], "layers"),
        (["--n", "0"], "'n'"),
        (["--epochs", "0"], "epochs"),
        (["--epochs", "-1"], "epochs"),
        (["--step-size", "0"], "step_size"),
        (["--lr", "0"], "lr"),
        (["--lr", "-0.1"], "lr"),
        (["--lr", ".nan"], "lr"),
        (["--lr", ".inf"], "lr"),
        (["--lr", "fast"], "lr"),
        (["--encoder", "sigmoid"], "encoder"),
        (["--set", "layer=[10]"], "layer"),
        (["--mapping", "random", "random", "--layers", "10"], "mapping"),
    ],
)
def test_bad_values(tmp_path, flags, needle):
    out = tmp_path / "run"
    assert main([*DIGITS, "--epochs", "1", "--export", "false", "--out-dir", str(out)]) == 0
    out = tmp_path / "other"  # the same command is valid without the bad flag
    assert_bad_input(main, [*DIGITS, *flags, "--out-dir", str(out)], tmp_path, needle)
    assert not out.exists()


def test_unknown_key_in_a_config_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: digits\nlayer: [10]\n")
    argv = ["--config", str(path), "--out-dir", str(tmp_path / "r")]
    assert_bad_input(main, argv, tmp_path, "layer", "bad.yaml")


def test_out_dir_that_cannot_be_a_run_directory(tmp_path):
    assert_out_dir_refused(main, DIGITS, tmp_path)


def test_image_and_label_files_that_disagree(tmp_path):
    data = write_mnist_files(tmp_path / "data", train=(12, 11), test=(5, 5))
    argv = ["--dataset", "mnist", "--data-dir", str(data), "--layers", "10"]
    argv += ["--mapping", "random", "--quiet", "--out-dir", str(tmp_path / "run")]
    assert_bad_input(main, argv, tmp_path, "12 images but 11 labels", "--download")


def test_nan_loss_stops_and_resume_continues(tmp_path, monkeypatch):
    out = tmp_path / "run"
    argv = [*DIGITS, "--epochs", "3", "--batch-size", "64", "--export", "false"]
    argv += ["--out-dir", str(out)]
    real = __import__("torch").nn.functional.cross_entropy
    calls = {"n": 0}

    def poisoned(*args, **kwargs):  # the 30th training step's loss is NaN (epoch 2)
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 30 else loss

    import dwn.experiment

    monkeypatch.setattr(dwn.experiment.nn.functional, "cross_entropy", poisoned)
    from bnn_shared.cli import run_cli

    assert run_cli(main, argv) == 2
    assert [row["epoch"] for row in metric_rows(out / "metrics.csv")] == [1]
    monkeypatch.setattr(dwn.experiment.nn.functional, "cross_entropy", real)
    assert run_cli(main, [*argv, "--resume"]) == 0
    assert [row["epoch"] for row in metric_rows(out / "metrics.csv")] == [1, 2, 3]


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_random_invalid_configs_are_one_line_errors(data):
    config, key = data.draw(invalid_configs(TrainConfig, {"dataset": "digits", "layers": [10]}))
    assert_rejected(TrainConfig, config, key)
