"""Entry point (reference ``launch_train.py``): ``python -m hadamrnn.train --config FILE``.

Flags: ``--config`` (taken literally), ``--set KEY=VALUE`` (any config key, e.g.
``--set TRAIN.LR=1e-3 MODEL.ENGINE=sequential``), ``--device``, ``--wandb`` (alias
``--use_wandb``), ``--save-network`` / ``--save-name`` (also with underscores), and the core's
``--data-dir``, ``--download``, ``--out-dir``, ``--resume``, ``--quiet``. It builds the
validated :class:`~hadamrnn.config.Config` and the core's run settings, and calls
:func:`hadamrnn.training.run_training` (which trains through :func:`bnn_shared.runner.fit`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bnn_shared.cli import add_common_arguments, run_cli, run_settings

from .config import load
from .training import run_training

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hadamrnn.train",
        description="Train HadamRNN / Block-HadamRNN (or the ORNN, QORNN, LSTM baselines).",
    )
    parser.add_argument("--config", help="YAML config (configs/hadamrnn/<task>.yaml)")
    parser.add_argument(
        "--device", default=None, help="overrides TRAIN.TORCH_DEVICE (auto, cpu, cuda:N)"
    )
    parser.add_argument(
        "--wandb",
        "--use_wandb",
        "--use-wandb",
        dest="wandb",
        action="store_true",
        default=None,
        help="log to Weights & Biases (also on with USE_WANDB: true)",
    )
    parser.add_argument(
        "--save-network",
        "--save_network",
        dest="save_network",
        action="store_true",
        help="write <out-dir>/<save-name>.pth and .txt at the end (reference outputs)",
    )
    parser.add_argument(
        "--save-name",
        "--save_name",
        dest="save_name",
        default=None,
        help="base name of the --save-network files (default hadamrnn_<dataset>)",
    )
    add_common_arguments(parser, out_dir="runs/hadamrnn", runtime=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load(args.config, args.overrides)
    settings = run_settings(
        args,
        device=args.device or cfg.train.torch_device,
        wandb=cfg.use_wandb if args.wandb is None else args.wandb,
    )
    final = run_training(cfg, settings, save_network=args.save_network, save_name=args.save_name)
    if args.quiet:
        return 0
    print(
        "  ".join(
            f"{key} {value:.6g}" if isinstance(value, float) else f"{key} {value}"
            for key, value in final.items()
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
