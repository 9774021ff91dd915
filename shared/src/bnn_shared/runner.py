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
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import BaseModel

from .config import to_dict
from .context import (
    Context,
    NonFiniteLossError,
    RunSettings,
    check_out_dir,
    resolve_device,
)
from .distributed import Group, SyncedOptimizer, init_from_env
from .errors import CheckpointError, ConfigError
from .tracking import DEFAULT_RESUME_IGNORED_KEYS, Run
from .utils import seed_everything

__all__ = [
    "Context",
    "Experiment",
    "NonFiniteLossError",
    "RunSettings",
    "check_out_dir",
    "fit",
    "resolve_device",
]


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
    config = {**to_dict(experiment.config), "run": _run_record(settings, device, experiment)}
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


def _run_record(
    settings: RunSettings, device: torch.device, experiment: Experiment
) -> dict[str, Any]:
    """The run's environment; ``package`` (the experiment's top-level package) tells
    ``python -m bnn_shared.export`` which package rebuilds the model."""
    package = type(experiment).__module__.split(".")[0]
    return {"device": str(device), "data_dir": settings.data_dir, "package": package}


def _choose_seed(experiment: Experiment, settings: RunSettings) -> int:
    """The config's seed; without one, the stored one on ``--resume``, else a new draw (the
    caller writes it into the config, so that ``config.yaml`` records it)."""
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
