"""``python -m eqprop_binary.main``: the reference CLI of binary Equilibrium Propagation.

Every flag of the reference ``main.py`` keeps its name, default, list order and meaning
(``--layersList`` input first; per-layer lists output layer first; ``--convList`` top conv
layer first, input channels last), so the paper's README commands run as written, with
``python -m eqprop_binary.main`` in place of ``python main.py``. Differences: ``--optim``
defaults to ``ep``; ``--device`` also takes ``cpu``, ``cuda`` and ``auto``, and ``--device N``
without a GPU runs on the CPU after a warning; ``--dataset`` is honoured by fc nets (the
reference always loaded MNIST) and takes ``digits`` (bundled, offline); and the flags below
the reference's are new (``--config FILE`` and ``--set KEY=VALUE`` for the same settings,
run tracking, and options that keep the reference's behaviour available where this
implementation fixes it).

This module only parses: the flags, a YAML file and ``--set`` overrides fill one validated
:class:`~eqprop_binary.settings.Settings`, and :func:`~eqprop_binary.experiment.train` runs it.
Each run writes ``results.csv``, ``Hyperparameters.txt``, ``checkpoint.pt`` (``--resume``
continues it), ``config.yaml``, ``metrics.csv`` and ``final.csv`` to
``<out-dir>/DATA-0-<archi>-<dataset>/<date>/S-<k>/``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bnn_shared.cli import run_cli

from .experiment import train
from .flags import build_parser, settings_from_args

__all__ = ["build_parser", "main", "settings_from_args", "train"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    train(
        settings_from_args(args),
        out_dir=args.out_dir,
        data_dir=args.data_dir,
        download=args.download,
        resume=args.resume,
        wandb=args.wandb,
        quiet=args.quiet,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
