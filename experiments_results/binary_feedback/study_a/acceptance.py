"""Study A's acceptance check (issue 22): two epochs on real MNIST, DFA and GD, against the
study's code on the same files. Run from the repository root:

    for m in DFA GD; do BNN_DATA_DIR=... python -m binary_feedback.train --dataset MNIST \\
      --method $m --bn --init 0.001 --lr 0.0001 --hidden-act tanh -b 128 \\
      --hidden 700,500,300,200 --binarize --weight-clipping 1 --seed 1 --epochs 2 \\
      --out-dir experiments_results/binary_feedback/study_a/acceptance_${m,,}; done
    python experiments_results/binary_feedback/study_a/acceptance.py

writes acceptance.csv (method, epoch, test_accuracy, reference_accuracy, difference, in
points of percent) and exits 1 if a difference exceeds 1 point.
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The study's code on these MNIST files: test accuracy (%) after epochs 1 and 2.
REFERENCE = {"DFA": (94.37, 95.37), "GD": (93.55, 94.99)}


def main() -> int:
    rows = []
    for method, reference in REFERENCE.items():
        with open(HERE / f"acceptance_{method.lower()}" / "metrics.csv", newline="") as handle:
            metrics = list(csv.DictReader(handle))
        for row, ref in zip(metrics, reference, strict=True):
            ours = 100 * float(row["test/accuracy"])
            rows.append(
                [method, int(row["epoch"]), f"{ours:.2f}", f"{ref:.2f}", f"{ours - ref:+.2f}"]
            )
    with open(HERE / "acceptance.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["method", "epoch", "test_accuracy", "reference_accuracy", "difference"])
        writer.writerows(rows)
    for row in rows:
        print(*row)
    return int(any(abs(float(row[4])) > 1.0 for row in rows))


if __name__ == "__main__":
    raise SystemExit(main())
