"""``torchrun --nproc-per-node 2 -m dwn.train`` on the CPU (gloo): the same first-epoch
metrics as one process with the same global batch, and a run stopped after one epoch and
resumed under torchrun ends with the metrics of an uninterrupted one."""

from __future__ import annotations

import pytest
from bnn_shared.testing import assert_close_rows, metric_rows, torchrun

# "--" keeps torchrun from reading the package's flags as its own (--n would abbreviate --nnodes)
COMMAND = "-m dwn.train -- --dataset digits --layers 60 --mapping random --n 4 --batch-size 64"
COMMAND += " --backend torch --device cpu --quiet --export false --seed 1"

pytestmark = pytest.mark.slow


def _run(out_dir, *extra, nproc=2):
    result = torchrun([*COMMAND.split(), "--out-dir", str(out_dir), *extra], nproc=nproc)
    assert result.returncode == 0, result.stderr[-2000:]
    return metric_rows(out_dir / "metrics.csv")


def test_two_processes_give_the_first_epoch_of_one(tmp_path):
    one = _run(tmp_path / "one", "--epochs", "1", nproc=1)
    two = _run(tmp_path / "two", "--epochs", "1")
    assert_close_rows(two, one, loss=1e-4, other=6e-3)  # accuracy: two digits of 359


def test_stopped_and_resumed_under_torchrun(tmp_path):
    straight = _run(tmp_path / "straight", "--epochs", "2")
    _run(tmp_path / "resumed", "--epochs", "1")
    resumed = _run(tmp_path / "resumed", "--epochs", "2", "--resume")
    assert resumed == straight
