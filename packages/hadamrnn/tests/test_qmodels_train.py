"""The reference's other models train and resume: a run stopped after epoch 1 and resumed with
``--resume`` ends with the same metrics as an uninterrupted run (sdigits; the sequential
recurrences on a 12-step copy task; QSSMwithEmbeddings on generated token sequences through
:func:`hadamrnn.training.run_training`)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from bnn_shared.cli import run_cli
from bnn_shared.data.splits import TensorSplit
from bnn_shared.runner import RunSettings
from hadamrnn.config import load
from hadamrnn.dataset_tools import Splits
from hadamrnn.train import main
from hadamrnn.training import run_training

ROOT = Path(__file__).resolve().parents[3]
SDIGITS = str(ROOT / "configs" / "hadamrnn" / "sdigits.yaml")
SMALL = ["MODEL.HIDDEN_SIZE=16", "TRAIN.BATCH_SIZE=64", "TRAIN.MAX_BATCHES=8"]
#: the sequential recurrences step in Python: a copy task of 12 steps instead of 64 pixels
SHORT_COPY = [
    f"--config={ROOT / 'configs' / 'hadamrnn' / 'copy.yaml'}",
    "DATASET.SENT_LENGTH=3",
    "DATASET.SEQ_LENGTH=12",
    "DATASET.TRAIN=256",
    "DATASET.VAL=64",
    "DATASET.TEST=64",
    "TRAIN.LR=1e-2",
]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _train(out: Path, epochs: int, overrides: list[str], *extra: str) -> int:
    config = SDIGITS
    if overrides and overrides[0].startswith("--config="):
        config, overrides = overrides[0].removeprefix("--config="), overrides[1:]
    argv = ["--config", config, "--out-dir", str(out), "--device", "cpu", "--quiet", "--set"]
    return run_cli(main, [*argv, *SMALL, *overrides, f"TRAIN.N_EPOCHS={epochs}", *extra])


@pytest.mark.parametrize(
    "overrides",
    [
        [*SHORT_COPY, "MODEL.NAME=qrnn", "MODEL.ACTIVATION=modrelu", "MODEL.ENGINE=sequential"],
        ["MODEL.NAME=qssm"],
        [*SHORT_COPY, "MODEL.NAME=qssm", "MODEL.NUM_BITS_FEAT=8", "MODEL.ENGINE=sequential"],
        ["MODEL.NAME=spectralqssm", "MODEL.USE_BJORCK=true"],
    ],
    ids=["qrnn_modrelu", "qssm", "qssm_feat", "spectralqssm_bjorck"],
)
def test_resume_gives_the_uninterrupted_run(overrides, tmp_path):
    assert _train(tmp_path / "straight", 2, overrides) == 0
    assert _train(tmp_path / "resumed", 1, overrides) == 0
    assert _train(tmp_path / "resumed", 2, overrides, "--resume") == 0
    straight = _rows(tmp_path / "straight" / "metrics.csv")
    assert len(straight) == 2 and straight[0] != straight[1]
    assert _rows(tmp_path / "resumed" / "metrics.csv") == straight


def _token_splits() -> Splits:
    """Binary task on token ids 1..19 (length 12): is the sum of ids above its median?"""
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 20, (320, 12), generator=generator)
    labels = (tokens.sum(1) > tokens.sum(1).median()).float()
    parts = [TensorSplit(tokens[i : i + 160], labels[i : i + 160]) for i in (0,)]
    rest = [TensorSplit(tokens[160:240], labels[160:240]), TensorSplit(tokens[240:], labels[240:])]
    return Splits("tokens", parts[0], *rest, num_classes=2)


def test_qssm_with_embeddings_resumes(tmp_path):
    overrides = [
        "MODEL.NAME=qssmwithembeddings",
        "MODEL.VOCAB_SIZE=20",
        "MODEL.INPUT_SIZE=8",
        "MODEL.HIDDEN_SIZE=16",
        "MODEL.OUTPUT_SIZE=1",
        "TRAIN.LOSS_FN=bce_with_logits",
        "TRAIN.BATCH_SIZE=32",
    ]

    def fit(out: Path, epochs: int, resume: bool = False) -> None:
        cfg = load(None, [*overrides, f"TRAIN.N_EPOCHS={epochs}"])
        settings = RunSettings(out_dir=out, device="cpu", quiet=True, resume=resume)
        run_training(cfg, settings, splits=_token_splits())

    fit(tmp_path / "straight", 2)
    fit(tmp_path / "resumed", 1)
    fit(tmp_path / "resumed", 2, resume=True)
    straight = _rows(tmp_path / "straight" / "metrics.csv")
    assert len(straight) == 2 and "val/accuracy" in straight[0]
    assert _rows(tmp_path / "resumed" / "metrics.csv") == straight
