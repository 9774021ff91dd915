"""``python -m hadamrnn.train`` with bad input: exit code 2, one line naming the key, no
traceback, no file created or changed; a loss that turns NaN stops the run and --resume
continues; random invalid configs of the schema (Hypothesis)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bnn_shared.cli import run_cli
from bnn_shared.testing import (
    assert_bad_input,
    assert_out_dir_refused,
    assert_rejected,
    invalid_configs,
    metric_rows,
)
from hadamrnn.config import Config
from hadamrnn.train import main
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[3]
SDIGITS = str(ROOT / "configs" / "hadamrnn" / "sdigits.yaml")
BASE = ["--config", SDIGITS, "--device", "cpu", "--quiet", "--set", "MODEL.HIDDEN_SIZE=16"]
BASE += ["TRAIN.BATCH_SIZE=64", "TRAIN.N_EPOCHS=1"]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["TRAIN.BATCH_SIZE=0"], "batch_size"),
        (["MODEL.HIDDEN_SIZE=-4"], "hidden_size"),
        (["TRAIN.N_EPOCHS=0"], "n_epochs"),
        (["TRAIN.STEP_SIZE=0"], "step_size"),
        (["TRAIN.LR=0"], "lr"),
        (["TRAIN.LR=-1e-3"], "lr"),
        (["TRAIN.LR=.nan"], "lr"),
        (["TRAIN.LR=.inf"], "lr"),
        (["TRAIN.LRR=1e-3"], "lrr"),
        (["MODEL.NAME=gru"], "gru"),
        (["MODEL.INPUT_SIZE=3"], "MODEL.INPUT_SIZE"),
        (["MODEL.OUTPUT_SIZE=7"], "MODEL.OUTPUT_SIZE"),
    ],
)
def test_bad_values(tmp_path, overrides, needle):
    out = tmp_path / "run"
    assert_bad_input(main, [*BASE, *overrides, "--out-dir", str(out)], tmp_path, needle)
    assert not out.exists()


def test_out_dir_that_cannot_be_a_run_directory(tmp_path):
    assert_out_dir_refused(main, BASE, tmp_path)


def test_a_metrics_file_that_is_not_csv_on_resume(tmp_path):
    out = tmp_path / "run"
    assert run_cli(main, [*BASE, "--out-dir", str(out)]) == 0
    (out / "metrics.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00binary")
    argv = [*BASE, "TRAIN.N_EPOCHS=2", "--out-dir", str(out), "--resume"]
    assert_bad_input(main, argv, tmp_path, "metrics.csv")


def test_nan_loss_stops_and_resume_continues(tmp_path, monkeypatch):
    import hadamrnn.getters as getters

    out = tmp_path / "run"
    argv = [*BASE, "TRAIN.N_EPOCHS=3", "--out-dir", str(out)]
    loss = getters.LOSSES.get("cross_entropy")
    calls = {"n": 0}

    def poisoned(logits, target):  # the 25th training step's loss is NaN (epoch 2)
        calls["n"] += torch.is_grad_enabled()
        value = loss(logits, target)
        return value * float("nan") if calls["n"] == 25 else value

    monkeypatch.setitem(getters.LOSSES._entries, "cross_entropy", poisoned)
    assert run_cli(main, argv) == 2
    assert [row["epoch"] for row in metric_rows(out / "metrics.csv")] == [1]
    monkeypatch.setitem(getters.LOSSES._entries, "cross_entropy", loss)
    assert run_cli(main, [*argv, "--resume"]) == 0
    assert [row["epoch"] for row in metric_rows(out / "metrics.csv")] == [1, 2, 3]
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 3


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_random_invalid_configs_are_one_line_errors(data):
    config, key = data.draw(invalid_configs(Config))
    assert_rejected(Config, config, key)


def test_image_and_label_files_that_disagree(tmp_path):
    from bnn_shared.testing import write_mnist_files

    data = write_mnist_files(tmp_path / "data", train=(12, 11), test=(5, 5))
    argv = [*BASE, "DATASET.NAME=pmnist", "--data-dir", str(data), "--out-dir", str(tmp_path / "r")]
    assert_bad_input(main, argv, tmp_path, "12 images but 11 labels")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["TRAIN.OPTIMIZER=$torch.optim.Adamm"], "unknown tag '$torch.optim.Adamm'"),
        (["MODEL.ACTIVATION=$ReLU"], "bare tag"),
        (["TRAIN.OPTIMIZER=adamax"], "unknown optimizer 'adamax'"),
        (["TRAIN.SCHEDULER=$torch.optim.lr_scheduler.OneCycleLR"], "unknown tag"),
        (["TRAIN.SCHEDULER=plateau"], "unknown scheduler 'plateau'"),
        (["TRAIN.OPTIMIZER_CONFIG={momentum: 0.9}"], "momentum"),
        (["TRAIN.METRICS={f1: $torchmetrics.F1Score}"], "unknown tag"),
        (["TRAIN.METRICS=f1", "TRAIN.METRICS_CONFIG={task: binary}"], "unknown metric 'f1'"),
        (["TRAIN.METRICS_CONFIG={task: multiclass, num_classes: 3}"], "num_classes"),
        (["TRAIN.LAMBDA_ORTH=0.5"], "LAMBDA_ORTH"),
        (["DATASET.NAME=imdb", "DATASET.TEST_SIZE=10"], "DATASET.TEST_SIZE"),
    ],
)
def test_bad_reference_keys(tmp_path, overrides, needle):
    out = tmp_path / "run"
    assert_bad_input(main, [*BASE, *overrides, "--out-dir", str(out)], tmp_path, needle)
    assert not out.exists()
