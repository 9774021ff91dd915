"""``torchrun --nproc-per-node 2 -m hadamrnn.train`` on the CPU (gloo): the same first-epoch
metrics as one process with the same global batch, and a run stopped after one epoch and
resumed under torchrun ends with the metrics of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
from bnn_shared.testing import assert_close_rows, metric_rows, torchrun

ROOT = Path(__file__).resolve().parents[3]
COMMAND = ["-m", "hadamrnn.train", "--", "--config", str(ROOT / "configs/hadamrnn/sdigits.yaml")]
COMMAND += ["--device", "cpu", "--quiet", "--set", "MODEL.HIDDEN_SIZE=16", "TRAIN.BATCH_SIZE=64"]

pytestmark = pytest.mark.slow


def _run(out_dir, epochs, *extra, nproc=2):
    command = [*COMMAND, f"TRAIN.N_EPOCHS={epochs}", "--out-dir", str(out_dir), *extra]
    result = torchrun(command, nproc=nproc)
    assert result.returncode == 0, result.stderr[-2000:]
    return metric_rows(out_dir)


def test_two_processes_give_the_first_epoch_of_one(tmp_path):
    one = _run(tmp_path / "one", 1, nproc=1)
    two = _run(tmp_path / "two", 1)
    # losses within 1e-4; accuracies within two samples of 180; sign flips and the
    # singular values of W are those of the same weights
    assert_close_rows(two, one, loss=1e-4, other=0.012)


def test_stopped_and_resumed_under_torchrun(tmp_path):
    straight = _run(tmp_path / "straight", 2)
    _run(tmp_path / "resumed", 1)
    resumed = _run(tmp_path / "resumed", 2, "--resume")
    assert resumed == straight
