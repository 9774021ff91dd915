"""The ``hadamrnn`` rows of ``hatch run demo``: binary HadamRNN next to the float ORNN on
sequential 8x8 digits (64 steps x 1 pixel), offline, in seconds each."""

from __future__ import annotations

import tempfile
import time

from bnn_shared.demo import DemoResult

__all__ = ["demo", "model_bits", "DEMO_OVERRIDES"]

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


def model_bits(name: str, n: int, d_in: int, d_out: int, bits: int | None) -> tuple[int, int]:
    """(quantized storage, float-32 storage) in bits of a single-layer model.

    HadamRNN: U and V at ``bits``, W = n sign bits, biases and two scales in float-32.
    Float models: every parameter in float-32 (W as a dense n x n matrix).
    """
    float32 = 32 * (n * d_in + n * n + n + d_out * n + d_out)
    if name != "hadamrnn":
        return float32, float32
    return bits * (n * d_in + d_out * n) + n + 32 * (n + d_out + 2), float32


def _run(model_name: str) -> tuple[float, float]:
    from bnn_shared.runner import RunSettings

    from .config import load
    from .training import run_training

    overrides = [f"{k}={v}" for k, v in {**DEMO_OVERRIDES, "model.name": model_name}.items()]
    cfg = load(None, overrides)
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
        size, float32 = model_bits(name, 64, 1, 10, 4)
        rows.append(
            DemoResult(
                package="hadamrnn",
                model=label,
                dataset="sdigits",
                metric="test_acc",
                value=accuracy,
                weight_bits=weight_bits,
                size_kib=size / 8 / 1024,
                float32_kib=float32 / 8 / 1024,
                seconds=seconds,
            )
        )
    return rows
