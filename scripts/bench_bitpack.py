"""Benchmark of the bit-packing kernel: pure-PyTorch reference against the compiled backends.

Writes ``experiments_results/shared/bench_bitpack.csv`` (one row per backend, op, bits and
size: median milliseconds over repeats and throughput in millions of codes per second).
Usage: ``python scripts/bench_bitpack.py [--sizes 1000000 ...] [--repeats 20] [--out CSV]``.
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import time
from pathlib import Path

import torch
from bnn_shared import ext
from bnn_shared.ext.bitpack import BITS, pack_bits, unpack_bits


def timed(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000, 16_000_000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="experiments_results/shared/bench_bitpack.csv")
    args = parser.parse_args()

    ext.load()
    backends = [("torch", "cpu")]
    if ext.status()["cpp"]:
        backends.append(("cpp", "cpu"))
    if torch.cuda.is_available():
        backends.append(("torch", "cuda"))
        if ext.status()["cuda"]:
            backends.append(("cuda", "cuda"))
    device_name = {
        "cpu": f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads",
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else "",
    }
    rows = []
    for backend, device in backends:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for bits in BITS:
            for size in args.sizes:
                g = torch.Generator().manual_seed(0)
                codes = torch.randint(0, 2**bits, (size,), generator=g, dtype=torch.uint8)
                codes = codes.to(device)
                packed = pack_bits(codes, bits, backend=backend)
                assert torch.equal(unpack_bits(packed, bits, size, backend=backend), codes)
                for op, fn in (
                    ("pack", lambda c=codes, b=bits, k=backend: pack_bits(c, b, backend=k)),
                    (
                        "unpack",
                        lambda p=packed, b=bits, n=size, k=backend: unpack_bits(p, b, n, backend=k),
                    ),
                ):
                    ms = timed(fn, args.repeats, sync)
                    rows.append(
                        {
                            "backend": backend,
                            "device": device_name[device],
                            "op": op,
                            "bits": bits,
                            "codes": size,
                            "median_ms": f"{ms:.4f}",
                            "mcodes_per_s": f"{size / ms / 1e3:.1f}",
                        }
                    )
                    print(
                        f"{backend:5s} {device:4s} {op:6s} bits={bits} n={size:>9d} "
                        f"{ms:9.3f} ms  {size / ms / 1e3:9.1f} Mcodes/s"
                    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written {out}")


if __name__ == "__main__":
    main()
