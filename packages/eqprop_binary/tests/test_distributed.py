"""``torchrun --nproc-per-node 2 -m eqprop_binary.main`` on the CPU (gloo), EP and BPTT: the
same first-epoch metrics as one process with the same global batch (the flips and bias steps
use the global batch's gradients), and a run stopped after one epoch and resumed under
torchrun ends with the metrics of an uninterrupted one."""

from __future__ import annotations

import pytest
from bnn_shared.testing import assert_close_rows, metric_rows, torchrun

COMMAND = (
    "-m eqprop_binary.main -- --device cpu --dataset digits --seed 2 --batchSize 64 --quiet "
    "--archi fc --layersList 64 32 10 --T 8 --Kmax 4 --gamma 1e-3 1e-2 "
    "--gradThreshold 5e-6 5e-6 --lrBias 0.025 0.05"
)
LEARN_ALPHA = {"ep": ["--learnAlpha", "1", "--lrAlpha", "1e-4", "1e-4"], "bptt": []}

pytestmark = pytest.mark.slow


def _run(out_dir, *extra, nproc=2):
    result = torchrun([*COMMAND.split(), "--out-dir", str(out_dir), *extra], nproc=nproc)
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = out_dir.glob("DATA-0-*/*/S-*")
    assert (run_dir / "results.csv").is_file() and (run_dir / "Hyperparameters.txt").is_file()
    return metric_rows(run_dir)


@pytest.mark.parametrize("optim", ["ep", "bptt"])
def test_two_processes_give_the_first_epoch_of_one(tmp_path, optim):
    flags = ["--epochs", "1", "--optim", optim, *LEARN_ALPHA[optim]]
    one = _run(tmp_path / "one", *flags, nproc=1)
    two = _run(tmp_path / "two", *flags)
    # losses within 1e-4; errors (in %) within two images of 1,258 (train) or 359 (test);
    # flips, thresholds and scaling factors of the same updates
    assert_close_rows(two, one, loss=1e-4, other=0.6)


def test_stopped_and_resumed_under_torchrun(tmp_path):
    straight = _run(tmp_path / "straight", "--epochs", "2")
    _run(tmp_path / "resumed", "--epochs", "1")
    resumed = _run(tmp_path / "resumed", "--epochs", "2", "--resume")
    assert resumed == straight
