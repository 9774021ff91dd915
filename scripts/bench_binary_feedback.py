"""Training speed of study A's MLP for each training rule, against this machine's float32
matrix-multiply throughput on the same layer shapes, measured in the same run.

The setting of the study's speed comparison: MLP 784-700-500-300-200-10 with batch norm,
binary weights, tanh, batch 128, SGD, 468 steps (60,000 samples, the last partial batch
dropped), weights clipped to [-1, 1] after every step, on the CPU, with the training CLI's
allocator setting (``keep_freed_memory``). Inputs are synthetic MNIST-shaped tensors in
[-1, 1] (the cost does not depend on the pixels).

For each rule the script counts the matrix-multiply FLOPs one epoch needs (2 m n k per
product of an (m, k) and a (k, n) matrix):

* forward, every rule: ``x @ W^T`` for each Linear;
* BP (GD): the weight gradients ``delta^T @ h`` of every Linear and the input gradients
  ``delta @ W`` of every Linear but the first;
* DFA: the weight gradients and the projected errors ``e @ B_m`` of every Linear but the first;
* DRTP: the weight gradients and the projected targets ``s @ P_m`` of the same layers.

It then times, on this machine and with the same threads, the products BP needs
(forward, weight- and input-gradient shapes of every layer) back to back, which gives the
float32 matrix-multiply throughput on the study's shapes (FLOP/s), and reports each rule's
achieved FLOP/s (its FLOPs / its epoch time) as a share of it. Writes
``experiments_results/binary_feedback/bench.csv``::

    python scripts/bench_binary_feedback.py [--methods GD DFA DRTP] [--repeats 3]
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
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments_results" / "binary_feedback" / "bench.csv"
SAMPLES, BATCH, CLASSES = 60_000, 128, 10
HIDDEN = [700, 500, 300, 200]
STEPS = SAMPLES // BATCH


def study_config(method: str) -> StudyAConfig:
    """The paper's setting, every value explicit (the CLI's defaults are the study code's)."""
    return StudyAConfig(
        method=method,
        bn=True,
        binarize=True,
        hidden_act="tanh",
        hidden=HIDDEN,
        init=0.1,
        weight_clipping=1.0,
    )


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """``(in_features, out_features)`` of every Linear, in order."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def step_flops(method: str, shapes: list[tuple[int, int]], batch: int = BATCH) -> int:
    """Matrix-multiply FLOPs of one training step of ``method`` (see the module docstring)."""
    forward = sum(2 * batch * n_in * n_out for n_in, n_out in shapes)
    weight_grads = forward
    if method.upper() in ("GD", "BP"):
        backward = sum(2 * batch * n_in * n_out for n_in, n_out in shapes[1:])
    else:  # DFA and DRTP: one (batch, C) @ (C, n_in) projection per layer but the first
        backward = sum(2 * batch * CLASSES * n_in for n_in, _ in shapes[1:])
    return forward + weight_grads + backward


def matmul_throughput(shapes: list[tuple[int, int]], repeats: int, batch: int = BATCH) -> float:
    """FLOP/s of float32 ``torch.mm`` on BP's products of these layer shapes, back to back
    in the layouts training uses (best of ``repeats`` timings of ``STEPS`` steps)."""
    generator = torch.Generator().manual_seed(0)
    products = []
    for n_in, n_out in shapes:
        x = torch.randn(batch, n_in, generator=generator)
        w = torch.randn(n_out, n_in, generator=generator)
        delta = torch.randn(batch, n_out, generator=generator)
        products.append((x, w.t()))  # forward: x @ W^T
        products.append((delta.t(), x))  # weight gradient: delta^T @ x
    for n_in, n_out in shapes[1:]:
        w = torch.randn(n_out, n_in, generator=generator)
        delta = torch.randn(batch, n_out, generator=generator)
        products.append((delta, w))  # input gradient: delta @ W
    flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in products)
    for a, b in products:  # warm-up
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(STEPS):
            for a, b in products:
                torch.mm(a, b)
        best = min(best, time.perf_counter() - began)
    return flops * STEPS / best


def epoch_seconds(method: str, repeats: int) -> tuple[float, list[tuple[int, int]]]:
    """Best of ``repeats`` epoch times of ``method`` (a fresh model each time)."""
    experiment = StudyAExperiment(study_config(method))
    best = float("inf")
    shapes: list[tuple[int, int]] = []
    x = torch.rand(SAMPLES, 1, 28, 28) * 2 - 1
    y = torch.randint(0, CLASSES, (SAMPLES,))
    for repeat in range(repeats):
        torch.manual_seed(repeat)
        model, rule, optimizer = experiment.build((1, 28, 28), CLASSES)
        shapes = linear_shapes(model)
        model.train()
        rule.step(model, x[:BATCH], y[:BATCH], optimizer)  # warm-up
        began = time.perf_counter()
        for start in range(0, STEPS * BATCH, BATCH):
            rule.step(model, x[start : start + BATCH], y[start : start + BATCH], optimizer)
            experiment.clip(model)  # every weight to --weight-clipping, as in training
        best = min(best, time.perf_counter() - began)
    return best, shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["GD", "DFA", "DRTP"])
    parser.add_argument("--repeats", type=int, default=3, help="timings per rule (best kept)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    keep_freed_memory()  # as the training CLI does (bnn_shared.cli.run_cli)
    rows = []
    peak = None
    for method in args.methods:
        seconds, shapes = epoch_seconds(method, args.repeats)
        if peak is None:  # measured once, right after the first rule, on the same shapes
            peak = matmul_throughput(shapes, args.repeats)
        flops = step_flops(method, shapes) * STEPS
        achieved = flops / seconds
        row = {
            "method": method,
            "device": f"{platform.machine()} CPU",
            "threads": torch.get_num_threads(),
            "batch": BATCH,
            "steps": STEPS,
            "seconds_per_epoch": round(seconds, 3),
            "matmul_gflop_per_epoch": round(flops / 1e9, 2),
            "achieved_gflops": round(achieved / 1e9, 2),
            "float32_matmul_gflops": round(peak / 1e9, 2),
            "share_of_matmul_throughput": round(achieved / peak, 3),
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
