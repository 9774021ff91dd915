"""The ``binary_feedback`` rows of ``hatch run demo``: a fully binary MLP (binary weights,
sign activations, batch norm; study A's regime) trained on the bundled digits by DFA and
by DRTP, offline."""

from __future__ import annotations

import shlex
import tempfile
import time

from bnn_shared.demo import DemoResult

__all__ = ["demo", "DEMO_COMMAND"]

#: Study A's fully binary setting on 8x8 digits (hidden 256-128, batch 32).
DEMO_COMMAND = (
    "--dataset digits --bn --binarize --hidden-act signsat --hidden 256,128 "
    "--init 1e-3 --lr 1e-4 -b 32 --epochs 30 --seed 0 --device cpu"
)


def demo(*, quiet: bool = False) -> list[DemoResult]:
    """Train the demo MLP with DFA and with DRTP; one row each."""
    from .experiment import train_model
    from .train import parse

    rows = []
    for method in ("DFA", "DRTP"):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out_dir:
            argv = [*shlex.split(DEMO_COMMAND), "--method", method, "--out-dir", out_dir, "--quiet"]
            config, settings = parse(argv)
            final = train_model(config, settings)
        hidden = config.hidden
        sizes = [64, *hidden, 10]
        weights = sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
        last = sizes[-2] * sizes[-1]  # the output layer stays full precision
        bn = 2 * sum(hidden)
        rows.append(
            DemoResult(
                package="binary_feedback",
                model=f"{method} MLP 64-{'-'.join(map(str, hidden))}-10, binary W+A, BN",
                dataset="digits",
                metric="best_test_acc",  # best-epoch test accuracy, the study's metric
                value=final["test/best_accuracy"],
                weight_bits="1/32",  # binary hidden weights; full-precision output and BN
                size_kib=((weights - last) / 8 + 4 * (last + bn)) / 1024,
                float32_kib=4 * (weights + bn) / 1024,
                seconds=time.perf_counter() - start,
            )
        )
    return rows
