"""Golden runs of ``python -m hadamrnn.train``: short seeded runs (sdigits, copy task at
small T) on one thread, one per model and engine, whose metrics must stay the same through
refactors of the training loop (recorded with ``BNN_RECORD_GOLDEN=1``; see
:func:`bnn_shared.testing.check_golden`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bnn_shared.cli import run_cli
from bnn_shared.testing import check_golden, metric_rows, single_thread
from hadamrnn.train import main

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden"
SDIGITS = ["MODEL.HIDDEN_SIZE=16", "TRAIN.BATCH_SIZE=64", "TRAIN.N_EPOCHS=2", "MODEL.SEED=5"]
COPY = [
    "DATASET.SEQ_LENGTH=30",
    "DATASET.SENT_LENGTH=4",
    "DATASET.TRAIN=512",
    "DATASET.VAL=128",
    "DATASET.TEST=128",
    "MODEL.HIDDEN_SIZE=32",
    "TRAIN.BATCH_SIZE=64",
    "TRAIN.N_EPOCHS=2",
    "TRAIN.LR=1e-3",
]
CASES = {
    "hadamrnn_parallel": ("sdigits", SDIGITS),
    "hadamrnn_sequential": ("sdigits", [*SDIGITS, "MODEL.ENGINE=sequential"]),
    "block_hadamrnn": ("sdigits", [*SDIGITS, "MODEL.BASIC_BLOCK=2"]),
    "hadamrnn_fixed_signs": ("sdigits", [*SDIGITS, "TRAIN.SIGN_LR=0"]),
    "ornn": ("sdigits", [*SDIGITS, "MODEL.NAME=ornn", "MODEL.NUM_BITS=null"]),
    "qornn": ("sdigits", [*SDIGITS, "MODEL.NAME=qornn"]),
    "lstm": ("sdigits", [*SDIGITS, "MODEL.NAME=lstm", "MODEL.NUM_BITS=null"]),
    "copy_parallel": ("copy", COPY),
    "copy_sequential": ("copy", [*COPY, "MODEL.ENGINE=sequential"]),
}
#: metric names since the recording (old -> new), and the first epoch's number then
RENAME: dict[str, str] = {
    "train_loss": "train/loss",
    "train_acc": "train/accuracy",
    "flips": "train/flips",
    "val_loss": "val/loss",
    "val_acc": "val/accuracy",
    "test_loss": "test/loss",
    "test_acc": "test/accuracy",
    "naive_baseline": "baseline/loss",
    "sv_min": "sv/min",
    "sv_max": "sv/max",
    "sv_ratio": "sv/ratio",
}
EPOCH_OFFSET = 1


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_run(case, tmp_path):
    config, overrides = CASES[case]
    argv = [
        "--config",
        str(ROOT / "configs" / "hadamrnn" / f"{config}.yaml"),
        "--device",
        "cpu",
        "--quiet",
        "--out-dir",
        str(tmp_path),
        "--set",
        *overrides,
    ]
    with single_thread():
        assert run_cli(main, argv) == 0
    rows = metric_rows(tmp_path)
    check_golden(rows, GOLDEN / f"{case}.json", rename=RENAME, epoch_offset=EPOCH_OFFSET)
