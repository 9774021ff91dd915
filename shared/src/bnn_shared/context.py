"""What the runner hands to a package's hooks, and the settings every run has.

:class:`RunSettings` are the core's command-line flags as a schema; :class:`Context` is the
hooks' view of a running experiment (device, shuffling generator, batches and their shares
under torchrun, NaN check, progress, notes); :func:`resolve_device` and
:func:`check_out_dir` check the device and the run directory before anything is written.
See :mod:`bnn_shared.runner` for the loop itself.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from .config import ConfigModel
from .distributed import SINGLE, Group, SyncedOptimizer
from .errors import BnnError, ConfigError
from .tracking import Run
from .utils import parse_device

__all__ = [
    "Context",
    "NonFiniteLossError",
    "RunSettings",
    "check_out_dir",
    "resolve_device",
]


class NonFiniteLossError(BnnError):
    """The loss became NaN or infinite; the run stopped before logging that epoch."""


class RunSettings(ConfigModel):
    """What every run has, whatever its package: the core's command-line flags."""

    out_dir: Path = Field(Path("runs"), description="the run directory")
    resume: bool = Field(False, description="continue the run in out_dir from its checkpoint")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N, or N (-1: CPU)")
    data_dir: str | None = Field(None, description="where datasets live")
    download: bool = Field(False, description="download missing datasets")
    wandb: bool = Field(False, description="also log to Weights & Biases")
    quiet: bool = Field(False, description="no progress bars, notes or summary line")
    eval_every: int = Field(1, ge=1, description="evaluate every N epochs (and after the last)")


class Context:
    """What the hooks get from the runner: device, run directory, generator, batching."""

    def __init__(
        self, settings: RunSettings, device: torch.device, seed: int, group: Group = SINGLE
    ) -> None:
        self.settings = settings
        self.device = device
        self.seed = seed
        self.group = group
        self.generator = torch.Generator().manual_seed(seed)
        self.run: Run | None = None
        self.epoch = 0
        self.last_row: dict[str, Any] = {}
        self.samples = 0  # this process's samples of the epoch so far (ctx.batches)
        self.share = 1.0  # this process's share of the current global batch
        self._synced: list[SyncedOptimizer] = []

    @property
    def rank(self) -> int:
        return self.group.rank

    @property
    def world_size(self) -> int:
        return self.group.world_size

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's files (always, without torchrun)."""
        return self.group.is_main

    @property
    def out_dir(self) -> Path:
        return self.run.out_dir if self.run is not None else Path(self.settings.out_dir)

    @property
    def quiet(self) -> bool:
        return self.settings.quiet

    def progress(self, iterable: Iterable[Any], desc: str | None = None, **kwargs: Any):
        """A progress bar over ``iterable`` (off when quiet or not on a terminal)."""
        if self.run is None or not self.is_main:
            return iterable
        return self.run.progress(iterable, desc=desc, **kwargs)

    def batches(
        self,
        size: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        desc: str | None = None,
        shard: bool = True,
    ) -> Iterator[torch.Tensor]:
        """Index tensors of one epoch over ``size`` samples, shuffled with :attr:`generator`.

        Under torchrun each process gets its contiguous share of every global batch of
        ``batch_size`` (and the synchronised optimizer the share's weight), so that a step
        is the step of the global batch.

        Args:
            size: number of samples.
            batch_size: samples per batch.
            shuffle: a new random order (else ``0..size-1``).
            drop_last: leave out the last, partial batch (kept when it is the only one).
            desc: progress-bar text (default ``epoch E``).
            shard: yield this process's share (default); False yields every global batch
                whole, for a package that must draw random numbers per sample of the global
                batch (augmentation) before it takes its share with :meth:`take_share`.
        """
        order = torch.randperm(size, generator=self.generator) if shuffle else torch.arange(size)
        if drop_last and size >= batch_size:
            order = order[: size - size % batch_size]
        for indices in self.progress(order.split(batch_size), desc=desc or f"epoch {self.epoch}"):
            if not shard:
                yield indices
                continue
            local = self.group.shard(indices)
            self._count(len(local), len(indices))
            yield local

    def take_share(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This process's share (rows) of tensors that hold one global batch, for packages
        that build their batches themselves; without torchrun the tensors as they are.
        Counts the share in :attr:`samples` and weights the synchronised optimizer, as
        :meth:`batches` does."""
        size = len(tensors[0])
        if not self.group.active:
            self._count(size, size)
            return tensors
        rows = self.group.shard(torch.arange(size))
        self._count(len(rows), size)
        return tuple(t[rows[0] : rows[-1] + 1] if len(rows) else t[:0] for t in tensors)

    def _count(self, local: int, size: int) -> None:
        self.share = local / size if size else 0.0
        for optimizer in self._synced:
            optimizer.weight = self.share
        self.samples += local

    def sync_gradients_(self, tensors: list[torch.Tensor], reduction: str = "mean") -> None:
        """For updates made outside an optimizer (EP's flips, say): replace each gradient
        tensor by the global batch's, summing over the processes weighted by their share
        (``"mean"``: the tensors are means over the local batch) or as they are (``"sum"``).
        Nothing happens without torchrun."""
        self.group.sum_weighted_(tensors, self.share if reduction == "mean" else 1.0)

    def check_loss(self, loss: Any, step: int) -> None:
        """Stop the run with :class:`NonFiniteLossError` if ``loss`` is NaN or infinite."""
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the training loss became {value} in epoch {self.epoch}, step {step}; the run "
                "stopped, and its last good checkpoint and metrics are kept: lower the learning "
                "rate, or --resume from the last good epoch"
            )

    def log_batch(self, metrics: Mapping[str, Any]) -> None:
        """Per-batch metrics, to wandb only (when on)."""
        if self.run is not None and self.run.wandb_run is not None:
            self.run.wandb_run.log(dict(metrics))

    def note(self, message: str) -> None:
        """A line on stderr unless quiet (from rank 0 only)."""
        if not self.quiet and self.is_main:
            print(message, file=sys.stderr, flush=True)


def resolve_device(spec: str | int | None) -> torch.device:
    """:func:`~bnn_shared.utils.parse_device`, except that a GPU named by number (a paper's
    ``--device 0``) on a machine without CUDA gives the CPU after a one-line warning, as the
    papers' code did; an explicit ``cuda`` without a GPU stays an error."""
    text = "auto" if spec is None else str(spec).strip()
    if text.isdigit() and not torch.cuda.is_available():
        print(
            f"warning: --device {text} names a GPU, but none is available: running on the CPU",
            file=sys.stderr,
            flush=True,
        )
        return torch.device("cpu")
    return parse_device(text)


def check_out_dir(path: str | os.PathLike, *, resume: bool = False) -> Path:
    """Check, before anything is written, that ``path`` can be the run directory.

    Raises:
        ConfigError: ``path`` is a file, lies under a file, is not writable, or (with
            ``resume``) does not exist; the message names ``--out-dir``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out-dir {path} is a file; give a directory for the run")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out-dir {path} lies under {existing}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out-dir {path} is not writable (no write permission on {existing})")
    if resume and not path.is_dir():
        raise ConfigError(f"--resume: there is no run directory {path}; start without --resume")
    return path
