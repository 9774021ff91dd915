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
    """Train the demo MLP with DFA and with DRTP; one row each, sized by the core's summary."""
    from bnn_shared.summary import summary

    from .experiment import train_model
    from .exporting import build, model_config
    from .train import parse

    rows = []
    for method in ("DFA", "DRTP"):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out_dir:
            argv = [*shlex.split(DEMO_COMMAND), "--method", method, "--out-dir", out_dir, "--quiet"]
            config, settings = parse(argv)
            final = train_model(config, settings)
        values = model_config(config)
        # the size of the model the run trains: binary hidden weights, float output and BN
        size = summary(build("study_a", values), tuple(values["in_shape"]), print_fn=None)
        hidden = "-".join(map(str, config.hidden))
        rows.append(
            DemoResult(
                package="binary_feedback",
                model=f"{method} MLP 64-{hidden}-10, binary W+A, BN",
                dataset="digits",
                metric="best_test_acc",  # best-epoch test accuracy, the study's metric
                value=final["test/best_accuracy"],
                weight_bits="1/32",  # binary hidden weights; full-precision output and BN
                size_kib=size.memory_bytes / 1024,
                float32_kib=size.float32_bytes / 1024,
                seconds=time.perf_counter() - start,
            )
        )
    return rows
