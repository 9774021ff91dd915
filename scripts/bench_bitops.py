"""Benchmark of the bit-packed binary GEMMs against torch float32 matmul on the same shapes.

For each shape (M, N, K) the packed kernel computes ``x @ w.T`` for x (M, K) and w (N, K):
``xnor_gemm`` (±1 x ±1) or ``and_gemm`` ({0,1} x ±1). Its time includes packing the
activations x (float32 -> int64 words) on every call; the weights are packed once, as a layer
would. The float row times ``x @ w.T`` in float32 on the same tensors in the same run, and the
two results are checked to be equal. GOP/s counts 2 * M * N * K (one multiply and one add per
binary product) for both.

Shapes (``layer`` column):

- study A, fully binary MLP 784-700-500-300-200 at batch 128: the four layers (xnor);
- EP fc bin_W_N at batch 64 (specs/eqprop_binary.md 8.2), the layers whose input is binary
  (and): 784-8192-100 (8192->100 and its feedback 100->8192) and 784-8192-8192-6000
  (8192->8192, 8192->6000, feedback 6000->8192). The first layers (784 -> 8192) read raw
  pixels, which are not binary, so they have no packed form and are left out;
- EP conv bin_W_N 1-256-512-(2048->700), P1 k5 F3 at batch 64, as im2col GEMMs (and): conv2
  (256 -> 512 channels on the 8x8 pooled binary map: M = 64 * 6 * 6, K = 256 * 25), its
  transposed-conv feedback onto the 8x8 map (M = 64 * 8 * 8, N = 256, K = 512 * 25), the fc
  classifier 2048 -> 700 and its feedback 700 -> 2048. conv1 reads the image (not binary).

Each (shape, path, threads) is timed as the median of repeats (at least ``--min-time`` seconds
and ``--repeats`` calls). ``path`` is the CPU path of the packed kernel (the run-time choice,
the portable one for k <= 192, and with ``--portable`` the forced portable one); ``threads``
the torch thread count (both kernels use it). ``load1`` is the 1-minute load average when the
row was measured: other jobs on the machine slow both kernels, multi-threaded runs most.

Usage: ``python scripts/bench_bitops.py [--threads 1 2] [--portable] [--out CSV]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from bnn_shared import ext
from bnn_shared.ext.bitops import and_gemm, cpu_path, pack_binary, pack_signs, xnor_gemm

# (group, layer, kind, M, N, K)
SHAPES = [
    ("study A MLP b128", "784->700", "xnor", 128, 700, 784),
    ("study A MLP b128", "700->500", "xnor", 128, 500, 700),
    ("study A MLP b128", "500->300", "xnor", 128, 300, 500),
    ("study A MLP b128", "300->200", "xnor", 128, 200, 300),
    ("EP fc 784-8192-100 b64", "8192->100", "and", 64, 100, 8192),
    ("EP fc 784-8192-100 b64", "feedback 100->8192", "and", 64, 8192, 100),
    ("EP fc 784-8192-8192-6000 b64", "8192->8192 (and feedback)", "and", 64, 8192, 8192),
    ("EP fc 784-8192-8192-6000 b64", "8192->6000", "and", 64, 6000, 8192),
    ("EP fc 784-8192-8192-6000 b64", "feedback 6000->8192", "and", 64, 8192, 6000),
    ("EP conv 1-256-512 b64", "conv2 256->512 k5 (im2col)", "and", 64 * 36, 512, 256 * 25),
    ("EP conv 1-256-512 b64", "conv2 feedback, transposed", "and", 64 * 64, 256, 512 * 25),
    ("EP conv 1-256-512 b64", "fc 2048->700", "and", 64, 700, 2048),
    ("EP conv 1-256-512 b64", "fc feedback 700->2048", "and", 64, 2048, 700),
]


def timed(fn, repeats: int, min_time: float) -> float:
    fn()  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def operands(kind: str, m: int, n: int, k: int):
    g = torch.Generator().manual_seed(m * 7919 + n * 31 + k)
    w = (torch.randint(0, 2, (n, k), generator=g) * 2 - 1).float()
    x = torch.randint(0, 2, (m, k), generator=g).float()
    return (x * 2 - 1 if kind == "xnor" else x), w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    parser.add_argument("--portable", action="store_true", help="also time the portable path")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--out", default="experiments_results/bnn_shared/bitops.csv")
    args = parser.parse_args()

    if not ext.load():
        raise SystemExit(f"compiled kernels unavailable: {ext.status()['error']}")
    paths = [False, True] if args.portable else [False]
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), cpu)
    rows = []
    for threads in dict.fromkeys(args.threads):
        torch.set_num_threads(threads)
        for group, layer, kind, m, n, k in SHAPES:
            x, w = operands(kind, m, n, k)
            wp = pack_signs(w)
            gemm = xnor_gemm if kind == "xnor" else and_gemm
            pack = pack_signs if kind == "xnor" else pack_binary
            expected = x @ w.T
            float_s = timed(lambda x=x, w=w: x @ w.T, args.repeats, args.min_time)
            ops = 2 * m * n * k
            for portable in paths:
                out = gemm(pack(x, portable=portable), wp, k, portable=portable)
                assert torch.equal(out.float(), expected), (layer, portable)

                def packed(x=x, wp=wp, k=k, gemm=gemm, pack=pack, portable=portable):
                    return gemm(pack(x, portable=portable), wp, k, portable=portable)

                packed_s = timed(packed, args.repeats, args.min_time)
                row = {
                    "group": group,
                    "layer": layer,
                    "kernel": f"{kind}_gemm",
                    "M": m,
                    "N": n,
                    "K": k,
                    "threads": threads,
                    "path": cpu_path(portable=portable, k=k),
                    "packed_s": f"{packed_s:.6f}",
                    "packed_gops": f"{ops / packed_s / 1e9:.1f}",
                    "float32_s": f"{float_s:.6f}",
                    "float32_gflops": f"{ops / float_s / 1e9:.1f}",
                    "speedup": f"{float_s / packed_s:.2f}",
                    "load1": f"{os.getloadavg()[0]:.2f}",
                    "cpu": cpu,
                    "torch": torch.__version__,
                }
                rows.append(row)
                print(
                    f"t={threads} {row['path'][:16]:16s} {group[:28]:28s} {layer[:26]:26s} "
                    f"packed {packed_s * 1e3:8.3f} ms {row['packed_gops']:>7s} GOP/s | float32 "
                    f"{float_s * 1e3:8.3f} ms {row['float32_gflops']:>6s} GFLOP/s | "
                    f"x{row['speedup']:>6s} load {row['load1']}",
                    flush=True,
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
