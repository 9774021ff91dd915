"""Training speed of HadamRNN's two engines: samples per second, ``sequential`` vs ``parallel``.

Times whole training steps (forward, backward, Adam) of the paper models on synthetic inputs
of the real shapes (the cost does not depend on the values): pMNIST (hidden 512, batch 100,
784 steps x 1 pixel, many-to-one) and optionally the copy task (hidden 128, batch 128,
1000 steps x 10, many-to-many). One warm-up step per engine is not timed.

Writes ``experiments_results/hadamrnn/bench.csv``::

    python scripts/bench_hadamrnn.py [--devices cpu cuda] [--tasks pmnist copy]
                                     [--batches 20] [--sequential-batches 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import torch
from bnn_shared.utils import keep_freed_memory
from hadamrnn import LOSSES, HadamardRecurrent, LinearRNN

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments_results" / "hadamrnn" / "bench.csv"

#: task: (hidden, batch, steps, input size, output size, many_to_many)
TASKS = {
    "pmnist": (512, 100, 784, 1, 10, False),
    "copy": (128, 128, 1000, 10, 9, True),
}


def make_model(task: str, engine: str, device: torch.device) -> LinearRNN:
    hidden, _, _, d_in, d_out, many = TASKS[task]
    model = LinearRNN(
        HadamardRecurrent(hidden),
        input_size=d_in,
        output_size=d_out,
        many_to_many=many,
        engine=engine,
    )
    return model.to(device)


def make_batch(task: str, batch: int, device: torch.device):
    _, _, steps, d_in, d_out, many = TASKS[task]
    x = torch.rand(batch, steps, d_in, device=device)
    y = torch.randint(0, d_out, (batch, steps) if many else (batch,), device=device)
    return x, y


def time_engine(task: str, engine: str, device: torch.device, batches: int, batch: int) -> float:
    """Seconds per training step (after one untimed warm-up step)."""
    torch.manual_seed(0)
    model = make_model(task, engine, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = LOSSES.get("cross_entropy")
    x, y = make_batch(task, batch, device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    step()
    _sync(device)
    began = time.perf_counter()
    for _ in range(batches):
        step()
    _sync(device)
    return (time.perf_counter() - began) / batches


def _transform(task: str) -> str:
    return make_model(task, "parallel", torch.device("cpu")).recurrent.transform


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu (+ cuda)")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["pmnist"])
    parser.add_argument("--batches", type=int, default=20, help="timed steps, parallel")
    parser.add_argument(
        "--sequential-batches",
        type=int,
        default=None,
        help="timed steps, sequential (default: --batches)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the task's")
    parser.add_argument("--hidden", type=int, default=None, help="default: the task's")
    parser.add_argument("--steps", type=int, default=None, help="default: the task's")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    keep_freed_memory()  # as the training CLI does (bnn_shared.cli.run_cli)
    for task in args.tasks:  # smaller shapes for smoke tests
        hidden, batch, steps, *rest = TASKS[task]
        TASKS[task] = (args.hidden or hidden, batch, args.steps or steps, *rest)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = []
    for device_name in devices:
        device = torch.device(device_name)
        for task in args.tasks:
            batch = args.batch_size or TASKS[task][1]
            seconds = {}
            for engine in ("sequential", "parallel"):
                count = args.batches
                if engine == "sequential" and args.sequential_batches:
                    count = args.sequential_batches
                seconds[engine] = time_engine(task, engine, device, count, batch)
                rows.append(
                    {
                        "task": task,
                        "device": device_name,
                        "engine": engine,
                        "hidden": TASKS[task][0],
                        "batch": batch,
                        "steps": TASKS[task][2],
                        "timed_batches": count,
                        "parallel_transform": _transform(task),
                        "seconds_per_batch": round(seconds[engine], 5),
                        "samples_per_s": round(batch / seconds[engine], 2),
                        "threads": torch.get_num_threads(),
                        "torch": torch.__version__,
                        "machine": platform.processor() or platform.machine(),
                    }
                )
                print(
                    f"{task} {device_name} {engine}: {seconds[engine]:.4f} s/batch, "
                    f"{batch / seconds[engine]:.1f} samples/s",
                    flush=True,
                )
            rows[-1]["speedup"] = round(seconds["sequential"] / seconds["parallel"], 2)
            rows[-2]["speedup"] = 1.0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    tmp = args.out.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, args.out)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
