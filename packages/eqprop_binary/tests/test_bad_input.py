"""``python -m eqprop_binary.main`` with bad input: exit code 2, one line naming the flag,
no traceback, no file created or changed; a loss that turns NaN stops the run and --resume
continues; random invalid settings (Hypothesis)."""

from __future__ import annotations

import shlex

import pytest
from bnn_shared.cli import run_cli
from bnn_shared.testing import (
    assert_bad_input,
    assert_out_dir_refused,
    assert_rejected,
    invalid_configs,
    metric_rows,
)
from eqprop_binary.main import main
from eqprop_binary.settings import Settings
from hypothesis import given, settings
from hypothesis import strategies as st

FC = (
    "--device cpu --dataset digits --archi fc --optim ep --layersList 64 32 10 --T 8 --Kmax 4 "
    "--gamma 1e-3 1e-2 --gradThreshold 5e-6 5e-6 --lrBias 0.025 0.05 --batchSize 64 --quiet"
)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("--batchSize 0", "batchSize"),
        ("--test_batchSize -1", "test_batchSize"),
        ("--T 0", "T"),
        ("--Kmax -2", "Kmax"),
        ("--epochs 0", "epochs"),
        ("--layersList 64 0 10", "layersList"),
        ("--lrBias -0.1 0.05", "lrBias"),
        ("--gamma 0 1e-2", "gamma"),
        ("--beta 0", "beta"),
        ("--optim train_ep", "--optim"),
        ("--layersList 784 32 10", "784 inputs"),
        ("--gamma 1e-3", "--gamma"),
    ],
)
def test_bad_values(tmp_path, change, needle):
    argv = shlex.split(f"{FC} {change} --out-dir {tmp_path / 'run'}")
    assert_bad_input(main, argv, tmp_path, needle)


def test_out_dir_that_cannot_be_a_run_directory(tmp_path):
    assert_out_dir_refused(main, shlex.split(FC), tmp_path)


def test_nan_loss_stops_and_resume_continues(tmp_path, monkeypatch):
    import eqprop_binary.tools as tools

    real, calls = tools._loss, {"n": 0}

    def poisoned(out, target):  # the 25th training step's loss is NaN (epoch 2)
        calls["n"] += 1
        value = real(out, target)
        return value * float("nan") if calls["n"] == 25 else value

    argv = shlex.split(f"{FC} --epochs 3 --out-dir {tmp_path}")
    monkeypatch.setattr(tools, "_loss", poisoned)
    monkeypatch.setattr(tools, "test_epoch", _no_loss_calls(tools.test_epoch, monkeypatch))
    assert run_cli(main, argv) == 2
    (run_dir,) = tmp_path.glob("DATA-0-*/*/S-1")
    assert [row["epoch"] for row in metric_rows(run_dir / "metrics.csv")] == [1]
    monkeypatch.setattr(tools, "_loss", real)
    assert run_cli(main, [*argv, "--resume"]) == 0
    assert [row["epoch"] for row in metric_rows(run_dir / "metrics.csv")] == [1, 2, 3]


def _no_loss_calls(test_epoch, monkeypatch):
    """The test epochs with the real loss, so that only training steps are counted."""
    import eqprop_binary.tools as tools

    real = tools._loss

    def wrapped(*args, **kwargs):
        patched = tools._loss
        tools._loss = real
        try:
            return test_epoch(*args, **kwargs)
        finally:
            tools._loss = patched

    return wrapped


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_random_invalid_settings_are_one_line_errors(data):
    config, key = data.draw(invalid_configs(Settings, exclude=["device"]))
    assert_rejected(Settings, config, key)


def test_image_and_label_files_that_disagree(tmp_path):
    from bnn_shared.testing import write_mnist_files

    data = write_mnist_files(tmp_path / "data", train=(12, 11), test=(5, 5))
    command = FC.replace("digits", "mnist").replace("64 32 10", "784 32 10")
    argv = shlex.split(f"{command} --data-dir {data} --out-dir {tmp_path / 'runs'}")
    assert_bad_input(main, argv, tmp_path, "12 images but 11 labels")
