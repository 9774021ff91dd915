"""The ``dwn`` row of ``hatch run demo``: a one-layer DWN on the bundled digits, offline."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bnn_shared.demo import DemoResult
from bnn_shared.summary import ModelSummary, summary

from .config import TrainConfig

__all__ = ["demo", "DEMO_CONFIG"]

#: A small first-layer-learnable DWN (see configs/dwn/digits.yaml); trains in seconds on CPU.
DEMO_CONFIG = dict(
    dataset="digits",
    encoder="distributive",
    bits=3,
    layers=[1000],
    n=6,
    mapping=["learnable"],
    tau=1 / 0.3,
    epochs=30,
    batch_size=32,
    lr=1e-2,
    step_size=14,
    gamma=0.1,
    seed=0,
)


def demo(*, quiet: bool = False) -> DemoResult:
    """Train the demo model and report its test accuracy and its size from the bit-aware
    summary of the shipped classifier (thermometer + LUT network, :mod:`dwn.exporting`)."""
    from .experiment import train_model

    cfg = TrainConfig(**DEMO_CONFIG)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        final = train_model(cfg, out_dir=out_dir, device="cpu", quiet=True)
        stats = _summary(Path(out_dir))
    return DemoResult(
        package="dwn",
        model=f"DWN {sum(cfg.layers)} LUT-{cfg.n}, GroupSum",
        dataset="digits",
        metric="test_acc",
        value=final["test/accuracy"],
        weight_bits="1",  # truth tables: one bit per entry; wiring indices of ceil(log2 I) bits
        size_kib=stats.memory_bytes / 1024,
        float32_kib=stats.float32_bytes / 1024,
        seconds=time.perf_counter() - start,
    )


def _summary(run_dir: Path) -> ModelSummary:
    from bnn_shared.export.__main__ import read_run

    from .exporting import from_run

    run = from_run(*read_run(run_dir, None))
    return summary(run.model, **run.summary_kwargs, print_fn=None)
