"""Benchmark of DWN's LUT layers per EFD backend, and of the exported integer model.

For the reference MNIST model's two LUT layers (12000 learnable-mapped slots -> 2000 LUTs,
2000 -> 1000 LUTs, n = 6) it measures forward+backward samples per second at batch 32 and
256 for every available backend ("torch", "cpp", "cuda"), then the samples per second of the
exported integer-only model (``dwn.load_compiled``) on 10,000 inputs. Writes
``experiments_results/dwn/bench.csv``. Usage: ``python scripts/bench_dwn.py [--repeats 20]``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import tempfile
import time
from pathlib import Path

import dwn
import torch
from bnn_shared import ext
from torch import nn

LAYERS = {"layer1": (12000, 2000), "layer2": (2000, 1000)}


def timed(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def backends() -> list[tuple[str, str]]:
    ext.load()
    found = [("torch", "cpu")]
    if ext.status()["cpp"]:
        found.append(("cpp", "cpu"))
    if torch.cuda.is_available():
        found.append(("torch", "cuda"))
        if ext.status()["cuda"]:
            found.append(("cuda", "cuda"))
    return found


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def bench_layers(repeats: int) -> list[dict]:
    rows = []
    for backend, device in backends():
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for name, (inputs, luts) in LAYERS.items():
            torch.manual_seed(0)
            mapping = "arange" if name == "layer1" else "random"
            layer = dwn.LUTLayer(inputs, luts, 6, mapping=mapping, backend=backend).to(device)
            for batch in (32, 256):
                x = (torch.rand(batch, inputs, device=device) > 0.5).float()
                x.requires_grad_(name == "layer2")  # layer 1 feeds the learnable mapping

                def step(layer=layer, x=x):
                    layer.zero_grad(set_to_none=True)
                    layer(x).sum().backward()

                seconds = timed(step, repeats, sync)
                rows.append(row("lut_forward_backward", name, backend, device, batch, seconds))
    return rows


def bench_compiled(samples: int = 10_000) -> list[dict]:
    torch.manual_seed(0)
    x = torch.rand(samples, 784)
    encoder = dwn.DistributiveThermometer(3).fit(x)
    model = nn.Sequential(
        dwn.LUTLayer(2352, 2000, 6, mapping="learnable", backend="torch"),
        dwn.LUTLayer(2000, 1000, 6, backend="torch"),
        dwn.GroupSum(10, 1 / 0.3),
    )
    with tempfile.TemporaryDirectory() as tmp:
        compiled = dwn.load_compiled(dwn.export(model, encoder, Path(tmp) / "m.dwn"))
    numpy_x = x.numpy()
    seconds = timed(lambda: compiled.predict(numpy_x), 3, lambda: None)
    return [
        row(
            "compiled_predict",
            "mnist_model",
            "numpy-int",
            "cpu",
            samples,
            seconds,
            per_call=samples,
        )
    ]


def row(bench, what, backend, device, batch, seconds, per_call=None) -> dict:
    samples = per_call or batch
    return {
        "bench": bench,
        "what": what,
        "backend": backend,
        "device": device_name(device),
        "batch": batch,
        "median_ms": f"{seconds * 1e3:.3f}",
        "samples_per_s": f"{samples / seconds:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="experiments_results/dwn/bench.csv")
    parser.add_argument("--append", action="store_true", help="add rows to an existing CSV")
    args = parser.parse_args()
    rows = bench_layers(args.repeats) + bench_compiled()
    for r in rows:
        print(" ".join(f"{k}={v}" for k, v in r.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = list(csv.DictReader(out.open())) if args.append and out.exists() else []
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(existing + rows)
    print(f"written {out}")


if __name__ == "__main__":
    main()
