"""Training speed of study A's MLP: seconds per MNIST epoch for each training rule.

The setting of the study's speed comparison: MLP 784-700-500-300-200-10 with batch norm,
binary weights, tanh, batch 128, SGD, 468 steps (60,000 samples, last partial batch
dropped), on the CPU, with the training CLI's allocator setting (``keep_freed_memory``).
Inputs are synthetic MNIST-shaped tensors in [-1, 1] (the cost does not depend on the
pixels). The reference NumPy implementation takes about 21 s per epoch for DFA and for BP
on a 2-core CPU of this kind. Writes ``experiments_results/binary_feedback/bench.csv``::

    python scripts/bench_binary_feedback.py [--methods GD DFA DRTP]
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import torch
from binary_feedback import StudyAConfig, StudyAExperiment
from bnn_shared.utils import keep_freed_memory

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments_results" / "binary_feedback" / "bench.csv"
REFERENCE_SECONDS = {"GD": 21.0, "DFA": 21.0}  # the figure for the NumPy reference
SAMPLES, BATCH = 60_000, 128


def epoch_seconds(method: str) -> float:
    config = StudyAConfig(method=method, bn=True, binarize=True, hidden_act="tanh")
    experiment = StudyAExperiment(config)
    torch.manual_seed(0)
    model, rule, optimizer = experiment.build((1, 28, 28), 10)
    x = torch.rand(SAMPLES, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (SAMPLES,))
    rule.step(model, x[:BATCH], y[:BATCH], optimizer)  # warm-up
    model.train()
    began = time.perf_counter()
    for start in range(0, SAMPLES - SAMPLES % BATCH, BATCH):
        rule.step(model, x[start : start + BATCH], y[start : start + BATCH], optimizer)
        experiment.clip(model)  # every weight to --weight-clipping, as in training
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["GD", "DFA", "DRTP"])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    keep_freed_memory()  # as the training CLI does (bnn_shared.cli.run_cli)
    rows = []
    for method in args.methods:
        seconds = epoch_seconds(method)
        reference = REFERENCE_SECONDS.get(method)
        row = {
            "method": method,
            "device": f"{platform.machine()} CPU",
            "threads": torch.get_num_threads(),
            "batch": BATCH,
            "seconds_per_epoch": round(seconds, 2),
            "seconds_per_1000_samples": round(seconds / SAMPLES * 1000, 4),
            "reference_seconds_per_epoch": reference or "",
            "speedup_vs_reference": round(reference / seconds, 1) if reference else "",
        }
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"written {out}")


if __name__ == "__main__":
    main()
