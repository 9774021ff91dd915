"""The one experiment loop every package trains through.

A package describes what is its own as an :class:`Experiment` (in the spirit of Lightning's
module hooks): build the model and data, run one training epoch, evaluate, write its paper's
own files, compute the final metrics. :func:`fit` owns everything else, written once:

* seeding (a run without a seed draws one, stores it in ``config.yaml`` and ``--resume``
  reuses it) and the device (``--device 0`` without a GPU runs on the CPU after a warning, as
  the papers' code did; ``--device cuda`` without one is an error);
* the run directory (:class:`~bnn_shared.tracking.Run`: ``config.yaml``, atomic
  ``metrics.csv`` and ``checkpoint.pt``, ``final.csv``, ``--resume``), progress bars, wandb;
* the epoch loop, counted from 1, with evaluation every ``eval_every`` epochs and at the end;
* the shuffling generator (:attr:`Context.generator`), saved and restored with the
  checkpoint, and :meth:`Context.batches` to cut an epoch into batches;
* NaN/inf detection: a non-finite loss stops the run with exit code 2 naming the epoch and
  step, before the epoch is logged or checkpointed, so the last good checkpoint and metrics
  stay intact and ``--resume`` continues from them;
* a clean finish: ``final.csv``, the summary line, wandb closed.

Metric names follow one scheme: ``<split>/<metric>`` (``train/loss``, ``train/accuracy``,
``test/accuracy``, ``val/loss``, ...), plus ``lr`` and ``seconds``; a paper's own files keep
their own columns (written by its :meth:`Experiment.end_epoch`).

Example (a whole package's training)::

    class Classifier(Experiment):
        def setup(self, ctx):
            self.x, self.y, info = load_tensors("digits", "train")
            self.model = build(...).to(ctx.device)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)

        def train_epoch(self, epoch, ctx):
            total = 0.0
            for step, idx in enumerate(ctx.batches(len(self.y), self.config.batch_size)):
                loss = ...
                ctx.check_loss(loss, step)
            return {"train/loss": total / len(self.y)}

        def evaluate(self, epoch, ctx):
            return {"test/accuracy": ...}

    final = fit(Classifier(config), RunSettings(out_dir="runs/x", seed=0))
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel, Field

from .config import ConfigModel, to_dict
from .distributed import SINGLE, Group, SyncedOptimizer, init_from_env
from .errors import BnnError, CheckpointError, ConfigError
from .tracking import DEFAULT_RESUME_IGNORED_KEYS, Run
from .utils import parse_device, seed_everything

__all__ = [
    "Context",
    "Experiment",
    "NonFiniteLossError",
    "RunSettings",
    "check_out_dir",
    "fit",
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


class Experiment:
    """A paper's part of a run: the hooks :func:`fit` calls. Subclass and override.

    Attributes set by the subclass:
        config: the package's validated settings (a :class:`ConfigModel`); written to
            ``config.yaml`` and compared on ``--resume``.
        project: the wandb project.
        seed_key: dotted key of the seed in ``config`` (None: the config holds no seed and
            the runner draws one).
        epochs_key: dotted key of the number of epochs in ``config``.
        resume_ignored: further config keys that may change between a run and its resumption
            (the epochs, device, paths and output switches are always ignored).
        grad_reduction: ``"mean"`` when the training loss is a mean over the batch, ``"sum"``
            when it is a sum; under torchrun the gradients of the processes are combined so
            that a step is the global batch's step.
        model, optimizer, scheduler: set in :meth:`setup`; saved in and restored from the
            checkpoint when present (anything with ``state_dict`` / ``load_state_dict``).
            Under torchrun ``optimizer`` is replaced after setup by a
            :class:`~bnn_shared.distributed.SyncedOptimizer` around it: use
            ``self.optimizer`` at step time. Write files only where ``ctx.is_main``.
    """

    config: BaseModel
    project: str = "bnn"
    seed_key: str | None = "seed"
    epochs_key: str = "epochs"
    resume_ignored: frozenset[str] = frozenset()
    grad_reduction: str = "mean"
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None

    def __init__(self, config: BaseModel) -> None:
        self.config = config

    # -- hooks ---------------------------------------------------------------------------------

    def setup(self, ctx: Context) -> None:
        """Load the data, build the model, optimizer and scheduler (after seeding)."""

    def train_epoch(self, epoch: int, ctx: Context) -> dict[str, Any]:
        """Train one epoch; return its metrics (``train/loss``, ``train/accuracy``, ...) as
        means over the samples this process trained on (``ctx.samples``): under torchrun
        the runner averages them over the processes, weighted by their sample counts."""
        raise NotImplementedError

    def evaluate(self, epoch: int, ctx: Context) -> dict[str, Any]:
        """Metrics on the held-out split(s) after ``epoch`` (``test/accuracy``, ...)."""
        return {}

    def end_epoch(self, epoch: int, row: dict[str, Any], ctx: Context) -> None:
        """After the epoch's row is complete and before it is logged: step schedulers,
        write the paper's own files, keep best weights. May add entries to ``row``."""
        if self.scheduler is not None:
            self.scheduler.step()

    def should_stop(self, epoch: int, row: Mapping[str, Any]) -> bool:
        """Early stopping: True ends training after this epoch (logged and checkpointed)."""
        return False

    def finish(self, ctx: Context) -> dict[str, Any]:
        """The final metrics (written to ``final.csv``); default: the last epoch's row."""
        return dict(ctx.last_row)

    def extra_state(self) -> dict[str, Any]:
        """More state for the checkpoint (plain data: tensors, numbers, lists, dicts)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    # -- helpers -------------------------------------------------------------------------------

    @property
    def epochs(self) -> int:
        return int(_get(self.config, self.epochs_key))


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
        rows = self.group.shard(torch.arange(size))
        self._count(len(rows), size)
        if not self.group.active:
            return tensors
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
        warnings.warn(
            f"--device {text} names a GPU, but none is available: running on the CPU",
            stacklevel=2,
        )
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


def fit(experiment: Experiment, settings: RunSettings) -> dict[str, Any]:
    """Run ``experiment`` to the end in ``settings.out_dir``; returns the final metrics.

    Raises:
        BnnError: a user error (bad settings, missing files, a loss that is not finite,
            a checkpoint that does not fit); the CLI prints it as one line, exit code 2.
    """
    check_out_dir(settings.out_dir, resume=settings.resume)
    device = resolve_device(settings.device)
    group = init_from_env(device)
    if group.active and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", group.local_rank)
    try:
        return _fit(experiment, settings, device, group)
    finally:
        group.close()


def _fit(
    experiment: Experiment, settings: RunSettings, device: torch.device, group: Group
) -> dict[str, Any]:
    seed = group.broadcast_object(_choose_seed(experiment, settings))
    if experiment.seed_key is not None:
        _set(experiment.config, experiment.seed_key, seed)
    seed_everything(seed)
    ctx = Context(settings, device, seed, group)
    experiment.setup(ctx)
    if group.active and experiment.optimizer is not None:
        experiment.optimizer = SyncedOptimizer(
            experiment.optimizer, group, experiment.grad_reduction
        )
        ctx._synced.append(experiment.optimizer)
    epochs = experiment.epochs
    config = {**to_dict(experiment.config), "run": _run_record(settings, device)}
    ignored = (
        DEFAULT_RESUME_IGNORED_KEYS
        | {"run", experiment.epochs_key}
        | set(experiment.resume_ignored)
    )
    with Run(
        settings.out_dir,
        config,
        resume=settings.resume,
        use_wandb=settings.wandb,
        quiet=settings.quiet,
        project=experiment.project,
        ignore_keys=ignored,
        defaults={**(_defaults(experiment.config) or {}), "run": config["run"]},
        writer=group.is_main,
    ) as run:
        ctx.run = run
        first = max(run.restore(experiment.model, experiment.optimizer, experiment.scheduler), 1)
        stored_world = run.extra.get("world_size", group.world_size)
        if stored_world != group.world_size:
            raise CheckpointError(
                f"cannot resume {settings.out_dir}: it was trained on {stored_world} "
                f"process(es), and this run has {group.world_size}; resume with "
                f"torchrun --nproc-per-node {stored_world}"
            )
        if "generator" in run.extra:
            ctx.generator.set_state(run.extra["generator"])
        experiment.load_extra_state(run.extra.get("experiment", {}))
        if run.metrics.rows:
            ctx.last_row = dict(run.metrics.rows[-1])
        for epoch in range(first, epochs + 1):
            ctx.epoch = epoch
            began = time.perf_counter()
            ctx.samples = 0
            row = dict(experiment.train_epoch(epoch, ctx))
            row = group.weighted_mean(row, float(ctx.samples or 1))
            _check_row(row, epoch)
            if epoch % settings.eval_every == 0 or epoch == epochs:
                row.update(experiment.evaluate(epoch, ctx))
            experiment.end_epoch(epoch, row, ctx)
            row.setdefault("seconds", time.perf_counter() - began)
            run.log(epoch, **row)
            run.save_checkpoint(
                epoch,
                experiment.model,
                experiment.optimizer,
                experiment.scheduler,
                generator=ctx.generator.get_state(),
                experiment=experiment.extra_state(),
                world_size=group.world_size,
            )
            ctx.last_row = row
            if experiment.should_stop(epoch, row):
                ctx.note(f"early stopping after epoch {epoch}")
                break
        final = experiment.finish(ctx)
        run.finish(**final)
    return final


def _check_row(row: Mapping[str, Any], epoch: int) -> None:
    for key, value in row.items():
        if key.endswith("loss") and isinstance(value, float) and not math.isfinite(value):
            raise NonFiniteLossError(
                f"{key} became {value} in epoch {epoch}; the run stopped, and its last good "
                "checkpoint and metrics are kept: lower the learning rate, or --resume"
            )


def _defaults(config: BaseModel) -> dict[str, Any] | None:
    """The config class's defaults as plain data (a key that an old checkpoint lacks then
    counts as having its default on resume), or None when it has required keys."""
    try:
        return to_dict(type(config)())
    except (ValueError, TypeError):
        return None


def _run_record(settings: RunSettings, device: torch.device) -> dict[str, Any]:
    return {"device": str(device), "data_dir": settings.data_dir}


def _choose_seed(experiment: Experiment, settings: RunSettings) -> int:
    """The config's seed; without one, the stored one on ``--resume``, else a new draw that
    is written into the config (so ``config.yaml`` records it)."""
    if experiment.seed_key is None:
        return 0
    seed = _get(experiment.config, experiment.seed_key)
    if seed is None:
        stored = Path(settings.out_dir) / "config.yaml"
        if settings.resume and stored.is_file():
            data = yaml.safe_load(stored.read_text(encoding="utf-8")) or {}
            seed = _get_plain(data, experiment.seed_key)
        if seed is None:
            seed = secrets.randbelow(2**31)
        _set(experiment.config, experiment.seed_key, int(seed))
    return int(seed)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _get_plain(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _set(obj: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        obj = getattr(obj, part)
    try:
        setattr(obj, last, value)
    except ValueError as exc:
        raise ConfigError(f"cannot set {dotted} to {value!r}: {exc}") from exc
