"""Copy task at a short length: how the learning rate of HadamRNN's sign latents ``s`` decides
whether the task is learned.

Trains ``configs/hadamrnn/copy.yaml`` (binary HadamRNN, n = 128, 4-bit U/V, seed 712) at a
total length ``--seq-length`` (default 200, so a run takes minutes on one CPU thread instead of
hours) once per pair of learning rates ``(TRAIN.LR, TRAIN.SIGN_LR)``: the rate of U, V and the
biases, and the rate of ``s`` (``null``: the paper's single Adam group; ``0``: the random
initial signs are kept). Every run goes through ``python -m hadamrnn.train`` with the same
data and initial weights. Writes one row per run and epoch, with the run's median ``|s_i|``
after its last epoch (``--out``, default
``experiments_results/hadamrnn/copy/sign_lr_sweep_T200.csv``)::

    python scripts/hadamrnn_copy_sign_lr.py [--seq-length 200] [--epochs 4] [--batches 500]
        [--pairs 1e-4:null 1e-3:1e-4 ...] [--runs-dir runs/hadamrnn_sign_lr] [--out ...]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from bnn_shared.cli import run_cli
from bnn_shared.tracking import MetricsLog
from hadamrnn import load
from hadamrnn.train import main as train_main

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "hadamrnn" / "copy.yaml"
# (TRAIN.LR, TRAIN.SIGN_LR); None is the paper's single Adam group
PAIRS = [
    (1e-4, None),
    (1e-4, 1e-5),
    (1e-4, 0.0),
    (1e-3, None),
    (1e-3, 3e-4),
    (1e-3, 1e-4),
    (1e-3, 0.0),
]


def fmt_lr(value: float | None) -> str:
    return "null" if value is None else f"{value:g}"


def parse_pair(text: str) -> tuple[float, float | None]:
    """``LR:SIGN_LR``, e.g. ``1e-3:1e-4`` or ``1e-4:null``."""
    try:
        lr, sign_lr = text.split(":")
        return float(lr), None if sign_lr == "null" else float(sign_lr)
    except ValueError:
        message = f"expected LR:SIGN_LR (SIGN_LR may be null), got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def run_pair(lr, sign_lr, args, batch_size: int) -> list[dict]:
    name = f"lr{fmt_lr(lr)}_signlr{fmt_lr(sign_lr)}"
    out = args.runs_dir / name
    shutil.rmtree(out, ignore_errors=True)
    overrides = {
        "DATASET.SEQ_LENGTH": args.seq_length,
        "DATASET.TRAIN": args.batches * batch_size,  # an epoch is one pass
        "TRAIN.N_EPOCHS": args.epochs,
        "TRAIN.MAX_BATCHES": args.batches,
        "TRAIN.LR": lr,
        "TRAIN.SIGN_LR": fmt_lr(sign_lr),
    }
    argv = ["--config", str(args.config), "--out-dir", str(out), "--quiet"]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    train_main(argv)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    median_s = state["model"]["recurrent.s"].abs().median().item()
    epochs = MetricsLog.load(out / "metrics.csv").rows
    rows = []
    for i, row in enumerate(epochs):
        rows.append(
            {
                "lr": fmt_lr(lr),
                "sign_lr": fmt_lr(sign_lr),
                "seq_length": args.seq_length,
                "epoch": row["epoch"],  # counted from 1
                "steps": row["epoch"] * args.batches,
                "train_loss": f"{row['train/loss']:.6g}",
                "val_loss": f"{row['val/loss']:.6g}",
                "naive_baseline": f"{row['baseline/loss']:.6g}",
                "flips": row["train/flips"],
                "median_abs_s_end": f"{median_s:.3g}" if i == len(epochs) - 1 else "",
            }
        )
    print(name, "val", rows[-1]["val_loss"], "flips", [r["flips"] for r in rows], flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--seq-length", type=int, default=200, help="total length T")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=500, help="training batches per epoch")
    parser.add_argument(
        "--pairs",
        nargs="+",
        type=parse_pair,
        default=PAIRS,
        metavar="LR:SIGN_LR",
        help="learning-rate pairs (default: the seven of the committed sweep)",
    )
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "hadamrnn_sign_lr")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "experiments_results" / "hadamrnn" / "copy" / "sign_lr_sweep_T200.csv",
    )
    args = parser.parse_args(argv)
    if args.seq_length <= 20:
        parser.error("--seq-length must exceed twice the 10 symbols")
    batch_size = load(args.config, []).train.batch_size
    log = MetricsLog(args.out)  # rewritten atomically after every pair
    for lr, sign_lr in args.pairs:
        log.rows += run_pair(lr, sign_lr, args, batch_size)
        log.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
