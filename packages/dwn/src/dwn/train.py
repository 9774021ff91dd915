"""Command line of DWN training: ``python -m dwn.train --config configs/dwn/mnist.yaml``.

Every key of :class:`~dwn.config.TrainConfig` is also a flag (``--epochs 1``,
``--layers 2000 1000``), ``--set KEY=VALUE`` overrides any key, and the core adds
``--data-dir --download --out-dir --resume --seed --device --wandb --quiet``. The run itself
is :func:`dwn.train_model` (callable from Python), trained by the core runner.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bnn_shared.cli import add_common_arguments, run_cli, run_settings
from bnn_shared.config import add_config_arguments, config_from_arguments

from .config import TrainConfig
from .datasets import load_arrays
from .experiment import DEFAULT_OUT_DIR, build_model, make_encoder, train_model

# Names this module had before the runner port, kept for `from dwn.train import ...`; the
# package exports the training function as `dwn.train_model` (`dwn.train` is this module).
train = train_model

__all__ = ["build_model", "load_arrays", "main", "make_encoder", "parse_args", "train"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags of ``python -m dwn.train``."""
    parser = argparse.ArgumentParser(
        prog="python -m dwn.train", description="Train a Differentiable Weightless Network."
    )
    parser.add_argument("--config", help="YAML file of settings (configs/dwn/*.yaml)")
    add_config_arguments(parser, TrainConfig)
    add_common_arguments(parser, out_dir=DEFAULT_OUT_DIR)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, validate the config and train; returns the exit status."""
    args = parse_args(argv)
    cfg = config_from_arguments(TrainConfig, args, path=args.config, overrides=args.overrides)
    train_model(cfg, run_settings(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
