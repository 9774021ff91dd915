"""The ``hadamrnn`` rows of ``hatch run demo``: binary HadamRNN next to the float ORNN on
sequential 8x8 digits (64 steps x 1 pixel), offline, in seconds each."""

from __future__ import annotations

import tempfile
import time

from bnn_shared.demo import DemoResult

__all__ = ["demo", "model_sizes", "DEMO_OVERRIDES"]

#: The demo's settings (the sdigits config, written out so that the demo needs no file).
DEMO_OVERRIDES = {
    "dataset.name": "sdigits",
    "model.hidden_size": 64,
    "model.input_size": 1,
    "model.output_size": 10,
    "model.seed": 0,
    "train.batch_size": 32,
    "train.n_epochs": 30,
    "train.lr": 5e-3,
    "train.gamma": 0.98,
    "train.torch_device": "cpu",
}


def model_sizes(name: str) -> tuple[float, float]:
    """(size, float-32 size) in bytes of the demo's model ``name`` from the bit-aware summary
    (:func:`bnn_shared.summary.summary`): HadamRNN counts its signs at 1 bit, ``U`` and ``V``
    at 4 bits and the biases at 32; float models count every parameter at 32 bits."""
    from bnn_shared.summary import summary

    from .config import load
    from .exporting import summary_kwargs
    from .getters import get_model

    cfg = load(None, _overrides(name))
    result = summary(get_model(cfg), **summary_kwargs(cfg), print_fn=None)
    return result.memory_bytes, result.float32_bytes


def _overrides(model_name: str) -> list[str]:
    return [f"{k}={v}" for k, v in {**DEMO_OVERRIDES, "model.name": model_name}.items()]


def _run(model_name: str) -> tuple[float, float]:
    from bnn_shared.runner import RunSettings

    from .config import load
    from .training import run_training

    cfg = load(None, _overrides(model_name))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        final = run_training(cfg, RunSettings(out_dir=out_dir, quiet=True, device="cpu"))
    return final["test/accuracy"], time.perf_counter() - start


def demo(*, quiet: bool = False) -> list[DemoResult]:
    """Train binary HadamRNN and the float ORNN (hidden 64) and report their test accuracy."""
    rows = []
    labels = {"hadamrnn": ("HadamRNN n=64, 4-bit U/V", "1/4/32"), "ornn": ("ORNN n=64", "32")}
    for name, (label, weight_bits) in labels.items():
        accuracy, seconds = _run(name)
        size, float32 = model_sizes(name)
        rows.append(
            DemoResult(
                package="hadamrnn",
                model=label,
                dataset="sdigits",
                metric="test_acc",
                value=accuracy,
                weight_bits=weight_bits,
                size_kib=size / 1024,
                float32_kib=float32 / 1024,
                seconds=seconds,
            )
        )
    return rows
