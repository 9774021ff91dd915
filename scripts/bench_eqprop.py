"""Training speed of binary Equilibrium Propagation: seconds per 1,000 training samples.

Times whole training batches (free phase, nudged phase, EP gradient, flips, biases) of the
README settings, on synthetic MNIST-shaped inputs (the cost does not depend on the
pixels), and counts the matrix-multiply and convolution FLOPs of one training step to say
how close the run gets to the machine's float32 peak (``--peak-gflops``, about 150 on
this project's 2-core CPU). Elementwise work (activations, clamps, the flip optimizer's
pass over every weight) is not counted: it is memory-bound.

Writes ``experiments_results/eqprop_binary/bench.csv``::

    python scripts/bench_eqprop.py [--device cpu] [--settings fc_bin_W conv_bin_W]
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import torch
from eqprop_binary import (
    EPNetwork,
    build_network,
    build_parser,
    ep_step,
    one_hot,
    settings_from_args,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments_results" / "eqprop_binary" / "bench.csv"

SEC3 = (
    "--activationFun hardsigm --beta 0.3 --random_beta 1 --batchSize 64 --learnAlpha 0 "
    "--optim ep --binary_settings bin_W"
)
SETTINGS = {
    # name: (arguments, training batches timed, reference seconds per 1,000 samples on a
    # 2-core CPU of this kind, from the issue; None where not measured)
    "fc_bin_W": (
        f"--archi fc --layersList 784 4096 10 {SEC3} --T 50 --Kmax 10 --gamma 1e-5 1e-4 "
        "--gradThreshold 5e-7 5e-7 --lrBias 0.025 0.05",
        40,
        5.6,
    ),
    "fc_bin_W_N": (
        "--archi fc --binary_settings bin_W_N --layersList 784 8192 100 --expand_output 10 "
        "--activationFun heaviside --T 20 --Kmax 10 --beta 2 --random_beta 1 "
        "--gamma 2e-6 2e-6 --gradThreshold 2.5e-7 2e-7 --lrBias 1e-7 1e-7 --learnAlpha 0",
        20,
        10.5,
    ),
    "conv_bin_W": (
        f"--archi conv --layersList 10 --convList 64 32 1 --padding 2 --kernelSize 5 "
        f"--Fpool 2 {SEC3} --T 150 --Kmax 10 --classi_gamma 5e-8 --conv_gamma 5e-8 5e-8 "
        "--classi_threshold 1e-8 --conv_threshold 1e-8 1e-8 --lrBias 0.025 0.05 0.1",
        3,
        None,
    ),
}


def conv_flops(batch: int, weight: torch.Tensor, size: int) -> int:
    """Multiply-adds x 2 of a stride-1 convolution producing ``size x size`` maps."""
    c_out, c_in, k, _ = weight.shape
    return 2 * batch * c_out * c_in * k * k * size * size


def training_flops(net: EPNetwork, batch: int) -> int:
    """FLOPs of the matrix products and convolutions of one EP training batch."""
    steps = net.T + net.Kmax
    if net.cfg.archi == "fc":
        sizes = net.sizes  # output first, input last
        n = len(sizes) - 1
        once = 2 * batch * sizes[n - 1] * sizes[n]  # the input's drive
        per_step = sum(2 * batch * sizes[i] * sizes[i + 1] for i in range(n - 1))  # forward
        per_step += sum(2 * batch * sizes[i - 1] * sizes[i] for i in range(1, n))  # feedback
        grads = 2 * batch * sizes[n - 1] * sizes[n]  # input layer: one product
        grads += sum(4 * batch * sizes[i] * sizes[i + 1] for i in range(n - 1))
        return once + steps * per_step + grads
    nv = len(net.conv)
    fc = sum(2 * batch * net.sizes[i] * net.sizes[i + 1] for i in range(len(net.fc)))
    first = conv_flops(batch, net.conv[-1].weight, net.conv_sizes[-1])
    upper = [conv_flops(batch, net.conv[j].weight, net.conv_sizes[j]) for j in range(nv - 1)]
    # per step: classifier forward + feedback, upper convs forward + transposed feedback
    per_step = 2 * fc + 2 * sum(upper)
    # gradients: classifier two products; upper convs two correlations; first conv one
    grads = 2 * fc + 2 * sum(upper) + first
    return first + steps * per_step + grads


def bench(name: str, device: torch.device, peak: float) -> dict[str, object]:
    arguments, batches, reference = SETTINGS[name]
    args = build_parser().parse_args([*arguments.split(), "--device", str(device)])
    cfg = settings_from_args(args)
    torch.manual_seed(0)
    shape = (784,) if cfg.archi == "fc" else (1, 28, 28)
    net = build_network(cfg, shape).to(device)
    x = torch.rand(cfg.batchSize, *shape, device=device)
    target = one_hot(torch.randint(0, 10, (cfg.batchSize,)), cfg.expand_output).to(device)

    def step() -> None:
        ep_step(net, x, target, cfg.beta, epoch=1)  # what a training batch runs

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up: allocations, the flip optimizer's state
    sync()
    began = time.perf_counter()
    for _ in range(batches):
        step()
    sync()
    seconds = time.perf_counter() - began
    per_1000 = seconds / (batches * cfg.batchSize) * 1000
    flops = training_flops(net, cfg.batchSize)
    gflops = flops * batches / seconds / 1e9
    return {
        "setting": name,
        "device": _device_name(device),
        "threads": torch.get_num_threads(),
        "batch": cfg.batchSize,
        "batches_timed": batches,
        "seconds_per_1000_samples": round(per_1000, 4),
        "gflop_per_batch": round(flops / 1e9, 3),
        "achieved_gflops": round(gflops, 1),
        "peak_gflops": peak,
        "fraction_of_peak": round(gflops / peak, 3),
        "reference_seconds_per_1000": reference if reference is not None else "",
        "speedup_vs_reference": round(reference / per_1000, 1) if reference else "",
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--peak-gflops", type=float, default=150.0, help="float32 peak")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    for name in args.settings:
        row = bench(name, device, args.peak_gflops)
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"written {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
