"""``python -m eqprop_binary.main``: the reference CLI of binary Equilibrium Propagation.

Every flag of the reference ``main.py`` keeps its name, default, list order and meaning
(``--layersList`` input first; per-layer lists output layer first; ``--convList`` top conv
layer first, input channels last), so the paper's README commands run as written, with
``python -m eqprop_binary.main`` in place of ``python main.py``. Differences: ``--optim``
defaults to ``ep``; ``--device`` also takes ``cpu``, ``cuda`` and ``auto``; ``--dataset``
is honoured by fc nets (the reference always loaded MNIST) and takes ``digits`` (bundled,
offline); and the flags below the reference's are new (run tracking and options that keep
the reference's behaviour available where this implementation fixes it).

Each run writes ``results.csv``, ``Hyperparameters.txt``, ``checkpoint.pt`` (``--resume``
continues it), ``config.yaml`` and ``metrics.csv`` to
``<out-dir>/DATA-0-<archi>-<dataset>/<date>/S-<k>/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from bnn_shared.cli import add_common_arguments, run_cli
from bnn_shared.tracking import Run
from bnn_shared.utils import parse_device, seed_everything

from .network import EPNetwork, build_network
from .settings import Settings
from .tools import (
    load_data,
    results_row,
    run_directory,
    save_hyperparameters,
    test_epoch,
    train_epoch,
    write_results,
)

__all__ = ["build_parser", "main", "train"]

DEFAULTS = Settings()


def _float(text: str) -> float:
    """A float; ``8e-8--conv_threshold`` (a README typo) gets a pointed message."""
    try:
        return float(text)
    except ValueError:
        head, sep, tail = text.partition("--")
        if sep and tail:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number: a space is missing before '--{tail}'"
            ) from None
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eqprop_binary.main",
        description="Binary Equilibrium Propagation (Laydevant et al., CVPRW 2021).",
    )
    d = DEFAULTS

    def add(*flags: str, **kwargs: Any) -> None:
        parser.add_argument(*flags, **kwargs)

    add("--device", default=d.device, help="-1: CPU, N: cuda:N; also cpu, cuda, auto")
    add("--archi", default=d.archi, help="fc or conv (default: %(default)s)")
    add(
        "--layersList",
        "--layerList",
        nargs="+",
        type=int,
        default=d.layersList,
        help="fc layer sizes, input first (conv: the classifier layers)",
    )
    add(
        "--convList",
        "-convList",
        nargs="+",
        type=int,
        default=d.convList,
        help="conv channels, top conv layer first, input channels last",
    )
    add("--padding", type=int, default=d.padding, metavar="P", help="convolution padding")
    add("--kernelSize", type=int, default=d.kernelSize, metavar="KSize", help="kernel size")
    add("--Fpool", type=int, default=d.Fpool, metavar="Fp", help="pooling size and stride")
    add("--optim", default=d.optim, help="ep or bptt (default: %(default)s)")
    add("--activationFun", default=d.activationFun, help="hardsigm or heaviside")
    add("--T", type=int, default=d.T, metavar="T", help="free-phase steps")
    add("--Kmax", type=int, default=d.Kmax, metavar="Kmax", help="nudged-phase steps")
    add("--gamma_neur", type=_float, default=d.gamma_neur, help="leaky-integrator rate")
    add("--beta", type=_float, default=d.beta, help="nudging strength")
    add("--random_beta", type=int, default=d.random_beta, help="1: random sign per batch")
    add("--binary_settings", default=d.binary_settings, help="bin_W or bin_W_N")
    for name, text in (
        ("gamma", "fc momentum rates, output layer first"),
        ("classi_gamma", "classifier momentum rates (conv)"),
        ("conv_gamma", "conv momentum rates, top conv first"),
        ("gradThreshold", "fc flip thresholds, output layer first"),
        ("classi_threshold", "classifier flip thresholds (conv)"),
        ("conv_threshold", "conv flip thresholds, top conv first"),
    ):
        add(f"--{name}", nargs="+", type=_float, default=getattr(d, name), help=text)
    add("--rho_threshold", type=_float, default=d.rho_threshold, help="theta of H(s - theta)")
    add("--expand_output", type=int, default=d.expand_output, help="output neurons per class")
    add("--dataset", default=d.dataset, help="mnist, cifar10, digits, fashion_mnist")
    add(
        "--lrBias",
        nargs="+",
        type=_float,
        default=d.lrBias,
        help="bias learning rates (fc output first; conv nets: classifier, then conv top first)",
    )
    add("--batchSize", type=int, default=d.batchSize, help="training batch size")
    add("--test_batchSize", type=int, default=d.test_batchSize, help="test batch size")
    add("--epochs", type=int, default=d.epochs, metavar="N", help="training epochs")
    add("--learnAlpha", type=int, default=d.learnAlpha, help="1: learn the scaling factors")
    add(
        "--lrAlpha",
        nargs="+",
        type=_float,
        default=d.lrAlpha,
        help="scaling-factor learning rates (same layout as --lrBias)",
    )
    add(
        "--decayLrAlpha",
        type=_float,
        default=d.decayLrAlpha,
        help="divide the --lrAlpha rates by this ...",
    )
    add(
        "--epochDecayLrAlpha",
        type=int,
        default=d.epochDecayLrAlpha,
        help="... from this epoch on (1-based)",
    )
    group = parser.add_argument_group("options of this implementation")
    group.add_argument(
        "--nudge",
        default=d.nudge,
        choices=["current", "free"],
        help="output nudge beta*(y - s_out) with the current output (default) or with the "
        "free-phase output held fixed, as the reference code does for bin_W_N networks",
    )
    group.add_argument(
        "--clamp_output",
        type=int,
        default=d.clamp_output,
        help="conv bin_W: 1 clamps the nudged output to [0, 1] (the reference does not)",
    )
    group.add_argument(
        "--flip_rule",
        default=d.flip_rule,
        choices=["auto", ">", ">="],
        help="flip test; auto: '>' for fc and '>=' for conv nets, as in the reference",
    )
    add_common_arguments(parser, out_dir="runs/eqprop_binary", seed=d.seed)
    return parser


class _Optimizers:
    """The flip optimizer and the bias SGD, saved and restored as one."""

    def __init__(self, net: EPNetwork):
        self.net = net

    def state_dict(self) -> dict:
        return self.net.optimizer_state()

    def load_state_dict(self, state: dict) -> None:
        self.net.load_optimizer_state(state)


def train(
    cfg: Settings,
    *,
    out_dir: str | Path = "runs/eqprop_binary",
    data_dir: str | None = None,
    download: bool = False,
    resume: bool = False,
    wandb: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train and test every epoch; returns the last row of ``results.csv`` and the run
    directory (key ``run_dir``)."""
    cfg.validate()
    device = parse_device(cfg.device)
    seed_everything(cfg.seed)
    x_train, y_train, x_test, y_test = load_data(cfg, data_dir, download)
    net = build_network(cfg, tuple(x_train.shape[1:])).to(device)
    run_dir = run_directory(out_dir, cfg, resume)
    generator = torch.Generator().manual_seed(cfg.seed)
    config = {**asdict(cfg), "data_dir": data_dir}
    last: dict[str, Any] = {}
    with Run(
        run_dir, config, resume=resume, use_wandb=wandb, quiet=quiet, project="eqprop_binary"
    ) as run:
        first = max(run.restore(net, _Optimizers(net)), 1)
        if "generator" in run.extra:
            generator.set_state(run.extra["generator"])
        save_hyperparameters(cfg, run_dir)
        for epoch in range(first, cfg.epochs + 1):
            desc = f"epoch {epoch}/{cfg.epochs}"
            progress = lambda batches, desc=desc: run.progress(batches, desc=desc)  # noqa: E731
            train_stats = train_epoch(
                net, x_train, y_train, epoch, generator, device, progress=progress
            )
            test_stats = test_epoch(net, x_test, y_test, device)
            row = results_row(net, epoch, train_stats, test_stats)
            run.log(epoch, **{k: v for k, v in row.items() if k != "Epoch"})
            write_results(
                [{"Epoch": r["epoch"], **_without(r, "epoch")} for r in run.metrics.rows],
                Path(run_dir) / "results.csv",
            )
            run.save_checkpoint(epoch, net, _Optimizers(net), generator=generator.get_state())
            last = row
            if not quiet:
                print(
                    f"epoch {epoch}/{cfg.epochs}: train error {row['Ave_Train_Error']:.2f} % | "
                    f"test error {row['Ave_Test_Error']:.2f} % | {row['Seconds']:.1f} s",
                    flush=True,
                )
        summary = {k: last[k] for k in ("Ave_Train_Error", "Ave_Test_Error") if k in last}
        run.finish(**summary)
    return {**last, "run_dir": str(run_dir)}


def _without(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != key}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = Settings.from_namespace(args)
    train(
        cfg,
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
