"""The ``dwn`` row of ``hatch run demo``: a one-layer DWN on the bundled digits, offline."""

from __future__ import annotations

import tempfile
import time

from bnn_shared.demo import DemoResult

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
    """Train the demo model, export it, and report the compiled model's test accuracy."""
    from .experiment import train_model

    cfg = TrainConfig(**DEMO_CONFIG)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        final = train_model(cfg, out_dir=out_dir, device="cpu", quiet=True)
        size = _exported_size(out_dir)
    luts = sum(cfg.layers)
    return DemoResult(
        package="dwn",
        model=f"DWN {luts} LUT-{cfg.n}, GroupSum",
        dataset="digits",
        metric="test_acc",
        value=final["test/accuracy"],
        weight_bits="1",  # truth tables: one bit per entry; wiring and thresholds aside
        size_kib=size / 1024,
        float32_kib=luts * 2**cfg.n * 4 / 1024,
        seconds=time.perf_counter() - start,
    )


def _exported_size(out_dir: str) -> int:
    from .export import load_compiled

    return int(load_compiled(f"{out_dir}/model.dwn").size_bytes)
