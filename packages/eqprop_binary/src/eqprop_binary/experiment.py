"""A run of binary EP through the core runner: :class:`EqPropExperiment` and :func:`train`.

The runner (:func:`bnn_shared.runner.fit`) owns seeding, the device, the run directory,
the epoch loop, checkpoints and ``--resume``; the experiment loads the data, builds the
network, runs the training and test epochs of :mod:`.tools` and writes the reference's own
files, ``results.csv`` and ``Hyperparameters.txt``, next to the runner's ``config.yaml``,
``metrics.csv``, ``checkpoint.pt`` and ``final.csv`` in
``<out-dir>/DATA-0-<archi>-<dataset>/<date>/S-<k>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from bnn_shared.distributed import init_from_env
from bnn_shared.runner import Context, Experiment, RunSettings, fit
from bnn_shared.utils import parse_device

from .dynamics import EPNetwork
from .network import build_network
from .settings import Settings
from .tools import (
    is_cifar10,
    layer_names,
    load_data,
    results_row,
    run_directory,
    save_hyperparameters,
    test_epoch,
    train_epoch,
    write_results,
)

__all__ = ["EqPropExperiment", "train"]


class _Optimizers:
    """The flip optimizer and the bias SGD, saved and restored as one."""

    def __init__(self, net: EPNetwork):
        self.net = net

    def state_dict(self) -> dict:
        return self.net.optimizer_state()

    def load_state_dict(self, state: dict) -> None:
        self.net.load_optimizer_state(state)


class EqPropExperiment(Experiment):
    """Binary EP (or truncated BPTT) on an image dataset, tested after every epoch.

    Args:
        config: the run's :class:`Settings`.
    """

    config: Settings
    project = "eqprop_binary"

    def setup(self, ctx: Context) -> None:
        cfg = self.config
        data = load_data(cfg, ctx.settings.data_dir, ctx.settings.download)
        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.augment = is_cifar10(cfg.dataset)
        self.model = build_network(cfg, tuple(self.x_train.shape[1:])).to(ctx.device)
        self.optimizer = _Optimizers(self.model)
        self.layers = layer_names(self.model)
        if ctx.world_size > 1:  # the flips and bias steps use the global batch's gradients
            self.model.gradient_sync = ctx.sync_gradients_

    def train_epoch(self, epoch: int, ctx: Context) -> dict[str, Any]:
        return train_epoch(self.model, self.x_train, self.y_train, epoch, ctx, augment=self.augment)

    def evaluate(self, epoch: int, ctx: Context) -> dict[str, Any]:
        return test_epoch(self.model, self.x_test, self.y_test, ctx.device)

    def end_epoch(self, epoch: int, row: dict[str, Any], ctx: Context) -> None:
        """Rewrite ``results.csv`` (every epoch so far) and ``Hyperparameters.txt``."""
        if not ctx.is_main:
            return
        save_hyperparameters(self.config, ctx.out_dir)
        rows = [*(ctx.run.metrics.rows if ctx.run else []), {"epoch": epoch, **row}]
        write_results([results_row(r, self.layers) for r in rows], ctx.out_dir / "results.csv")
        if not ctx.quiet:
            print(
                f"epoch {epoch}/{self.config.epochs}: train error {row['train/error']:.2f} % | "
                f"test error {row['test/error']:.2f} % | {row['seconds']:.1f} s",
                flush=True,
            )

    def finish(self, ctx: Context) -> dict[str, Any]:
        """``final.csv``: the last epoch's training and test errors (in %)."""
        return {k: ctx.last_row[k] for k in ("train/error", "test/error") if k in ctx.last_row}


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
    """Train and test every epoch in a new run directory below ``out_dir`` (with
    ``resume``: ``out_dir`` itself when it holds a checkpoint, else its newest run).

    ``cfg.device`` picks the device (``-1``: CPU; ``N``: ``cuda:N``, the CPU after a warning
    when there is no GPU). Returns the final metrics (``train/error``, ``test/error``, in
    %) and the run directory (key ``run_dir``).
    """
    # under torchrun every process must use rank 0's choice of the new S-k directory
    gpu = torch.cuda.is_available() and parse_device(cfg.device).type == "cuda"
    group = init_from_env(torch.device("cuda" if gpu else "cpu"))
    run_dir = group.broadcast_object(run_directory(out_dir, cfg, resume))
    settings = RunSettings(
        out_dir=run_dir,
        resume=resume,
        device=cfg.device,
        data_dir=data_dir,
        download=download,
        wandb=wandb,
        quiet=quiet,
    )
    final = fit(EqPropExperiment(cfg), settings)
    return {**final, "run_dir": str(run_dir)}
