"""The ``eqprop_binary`` row of ``hatch run demo``: fc bin_W trained by EP on the bundled
digits, offline, in seconds."""

from __future__ import annotations

import shlex
import tempfile
import time

from bnn_shared.demo import DemoResult

__all__ = ["demo", "DEMO_COMMAND"]

#: Section 3's setting (binary weights, hardsigm, random-sign beta 0.3) on 8x8 digits.
DEMO_COMMAND = (
    "--device cpu --dataset digits --archi fc --optim ep --binary_settings bin_W "
    "--layersList 64 1024 10 --activationFun hardsigm --T 20 --Kmax 8 --beta 0.3 "
    "--random_beta 1 --gamma 1e-4 1e-3 --gradThreshold 5e-6 5e-6 --lrBias 0.025 0.05 "
    "--batchSize 32 --epochs 20 --learnAlpha 0 --seed 0"
)


def demo(*, quiet: bool = False) -> DemoResult:
    """Train the demo network and report its test accuracy (the free phase's output) and
    its size from the bit-aware summary (1-bit weights, float32 biases and scales)."""
    from bnn_shared.summary import summary

    from .experiment import train
    from .exporting import build, model_config
    from .flags import build_parser, settings_from_args

    cfg = settings_from_args(build_parser().parse_args(shlex.split(DEMO_COMMAND)))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        final = train(cfg, out_dir=out_dir, quiet=True)
    seconds = time.perf_counter() - start
    config = model_config(cfg)  # the size depends on the architecture only
    net = build(f"{cfg.archi}_{cfg.binary_settings}", config)
    stats = summary(net, input_size=tuple(config["input_shape"]), print_fn=None if quiet else print)
    return DemoResult(
        package="eqprop_binary",
        model="EP fc 64-1024-10, bin_W",
        dataset="digits",
        metric="test_acc",
        value=1 - final["test/error"] / 100,
        weight_bits="1/32",  # binary weights; float biases and one scale per layer
        size_kib=stats.memory_bytes / 1024,
        float32_kib=stats.float32_bytes / 1024,
        seconds=seconds,
    )
