"""A run of either study, as hooks of the core's runner (:func:`bnn_shared.runner.fit`).

:class:`BinaryFeedbackExperiment` is the body of the loop both studies share: an epoch of
``rule.step`` over shuffled batches with the weights clipped after each step, evaluation
on the held-out split with the best epoch's confusion matrix, study A's monitoring and the
``verbose`` lines. What differs between the studies is a method of
:class:`StudyAExperiment` or :class:`StudyBExperiment`:

=================  ====================================  ====================================
part               study A                               study B
=================  ====================================  ====================================
inputs             scaled to [-1, 1]                     normalised, resized per batch
held-out split     test                                  test with ``test_set``, else ``val``
model              :class:`~.models.MLP`                 a registered model, binarised
optimizer          SGD                                   ``opt`` with weight decay ``wd``
batches            ``batch_size``, last partial dropped  ``bs``, flipped or augmented
clipping           every weight to ``weight_clipping``   binarised weights to [-1, 1]
train metrics      the full train set at the epoch end   running means over the epoch
early stopping     no                                    evaluated loss fell <= delta in 4
=================  ====================================  ====================================

:func:`train_model` runs the experiment of a config's study (the schema type chooses it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from bnn_shared.layers import clip_weights_
from bnn_shared.runner import Context, Experiment, RunSettings, fit
from torch import Tensor, nn

from . import data
from .commons.layers import is_binarized, is_linear
from .config import StudyAConfig, StudyBConfig, StudyConfig
from .evaluation import (
    BATCH_FILE,
    CONFUSION_FILE,
    MONITOR_SAMPLES,
    BatchLog,
    BatchMonitor,
    evaluate_model,
    model_size,
    monitor,
    write_confusion,
)
from .models import MLP, MODELS, remove_skips
from .study_b_run import StudyBRunParts
from .training import RULES, Rule, get_rule
from .utils.binary import binarize_activations, binarize_weights
from .utils.biprop import apply_biprop, bireal_activations

__all__ = [
    "BinaryFeedbackExperiment",
    "DEFAULT_OUT_DIR",
    "StudyAExperiment",
    "StudyBExperiment",
    "build",
    "experiment_for",
    "train_model",
]

#: Where a run goes when no settings say otherwise (the CLI's ``--out-dir`` default).
DEFAULT_OUT_DIR = "runs/binary_feedback"


class BinaryFeedbackExperiment(Experiment):
    """The hooks both studies share; a subclass supplies the study's parts (see the module).

    Metrics per epoch: ``train/loss``, ``train/accuracy`` (study A also ``train/f1``,
    ``train/precision``), ``seconds`` (the training steps), ``<split>/loss``,
    ``<split>/accuracy``, ``<split>/f1``, ``<split>/precision`` and
    ``<split>/best_accuracy`` (``split``: ``test`` or ``val``), and with ``monitor`` the
    ``monitor/layer_{j}_...`` values of :func:`~.evaluation.monitor`.
    """

    config: StudyConfig
    #: The training rules' regime (a name of ``training.REGIMES``).
    regime: ClassVar[str]
    #: Leave out the last, partial batch of an epoch.
    drop_last: ClassVar[bool] = False
    resume_ignored = frozenset({"verbose", "no_wandb", "run_name"})

    def __init__(self, config: StudyConfig) -> None:
        super().__init__(config)
        self.project = f"binary_feedback-{config.dataset}"
        self.rule: Rule | None = None
        self.best = 0.0  # best held-out accuracy so far
        self.eval_losses: list[float] = []  # held-out loss of every evaluation (early stopping)

    # -- the study's parts ---------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        raise NotImplementedError

    @property
    def eval_split(self) -> str:
        """The held-out split's metric prefix."""
        return "test"

    def preprocess(self, x: Tensor) -> Tensor:
        """Images in [0, 1] -> the inputs the study feeds (whole splits, once)."""
        return x

    def split(self, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, seed: int):
        """The training and held-out data, from the dataset's train and test splits."""
        return x_train, y_train, x_test, y_test

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The model's input shape for images of ``shape``."""
        return shape

    def prepare(self, x: Tensor) -> Tensor:
        """A batch as the model takes it (on the device)."""
        return x

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A prepared training batch, augmented with draws from ``generator``."""
        return x

    def build_model(self, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        raise NotImplementedError

    def rule_options(self) -> dict[str, Any]:
        """The training rule's own options."""
        return {}

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        raise NotImplementedError

    def clip(self, model: nn.Module) -> None:
        """Clip the weights after a training step."""
        raise NotImplementedError

    def train_metrics(self, loss: float, accuracy: float, ctx: Context) -> dict[str, float]:
        """The epoch's train metrics, given the running means of its batches."""
        return {"loss": loss, "accuracy": accuracy}

    def measure_step(
        self, epoch: int, stats: Mapping[str, float], size: int, ctx: Context
    ) -> dict[str, float]:
        """Per-batch values measured after a step (before clipping), logged with the batch's
        loss (W&B); none by default."""
        return {}

    def after_step(self, step: int, ctx: Context) -> None:
        """Called after each training step (and its clipping) of an epoch; ``step`` from 0."""

    # -- building ------------------------------------------------------------------------------

    def build(self, in_shape: tuple[int, ...], num_classes: int):
        """The model (binarised as configured), the training rule and the optimizer."""
        model = self.build_model(in_shape, num_classes)
        rule = get_rule(
            self.config.method, regime=self.regime, num_classes=num_classes, **self.rule_options()
        )
        return model, rule, self.build_optimizer(model)

    # -- the runner's hooks --------------------------------------------------------------------

    def setup(self, ctx: Context) -> None:
        settings = ctx.settings
        x_train, y_train, x_test, y_test = data.load_splits(
            self.config.dataset, settings.data_dir, settings.download
        )
        x_train, x_test = self.preprocess(x_train), self.preprocess(x_test)
        splits = self.split(x_train, y_train, x_test, y_test, ctx.seed)
        self.x_train, self.y_train, self.x_test, self.y_test = splits
        self.num_classes = int(max(self.y_train.max(), self.y_test.max())) + 1
        self.in_shape = self.input_shape(tuple(self.x_train.shape[1:]))
        self.model, self.rule, self.optimizer = self.build(self.in_shape, self.num_classes)
        self.model.to(ctx.device)

    def train_epoch(self, epoch: int, ctx: Context) -> dict[str, Any]:
        began = time.perf_counter()
        self.model.train()
        seen = correct = 0
        loss_sum = 0.0
        batches = ctx.batches(
            len(self.y_train),
            self.batch_size,
            drop_last=self.drop_last,
            desc=f"epoch {epoch}/{self.epochs}",
            shard=False,
        )
        for step, idx in enumerate(batches):
            # the flips and augmentations draw per sample of the global batch, so that every
            # process draws what one process would; then each keeps its share (torchrun)
            xb = self.augment(self.prepare(self.x_train[idx].to(ctx.device)), ctx.generator)
            xb, yb = ctx.take_share(xb, self.y_train[idx].to(ctx.device))
            stats = self.rule.step(self.model, xb, yb, self.optimizer)
            ctx.check_loss(stats["loss"], step)
            measured = self.measure_step(epoch, stats, len(yb), ctx)
            self.clip(self.model)
            self.after_step(step, ctx)
            seen += len(yb)
            correct += stats["correct"]
            loss_sum += stats["loss"] * len(yb)
            ctx.log_batch(
                {
                    "batch/loss": stats["loss"],
                    "batch/accuracy": stats["correct"] / len(yb),
                    **measured,
                }
            )
        seconds = time.perf_counter() - began
        metrics = self.train_metrics(loss_sum / max(seen, 1), correct / max(seen, 1), ctx)
        return {**{f"train/{key}": value for key, value in metrics.items()}, "seconds": seconds}

    def evaluate(self, epoch: int, ctx: Context) -> dict[str, Any]:
        predicted: list = []
        stats = evaluate_model(
            self.model, self.rule, self.x_test, self.y_test, ctx.device, self.prepare,
            predictions=predicted,
        )  # fmt: skip
        if (stats["accuracy"] > self.best or epoch == 1) and ctx.is_main:  # the best epoch's
            true = self.y_test.numpy()
            write_confusion(
                ctx.out_dir / CONFUSION_FILE, true, predicted[0], self.num_classes, epoch
            )
        self._plot_confusion(ctx, predicted[0])
        self.best = max(self.best, stats["accuracy"])
        self.eval_losses.append(stats["loss"])
        split = self.eval_split
        row = {f"{split}/{key}": value for key, value in stats.items()}
        row[f"{split}/best_accuracy"] = self.best
        return row

    def end_epoch(self, epoch: int, row: dict[str, Any], ctx: Context) -> None:
        if self.config.monitor:
            x, y = self.x_train[:MONITOR_SAMPLES], self.y_train[:MONITOR_SAMPLES]
            row.update(monitor(self.model, x, y, ctx.device, self.prepare))
        if self.config.verbose and not ctx.quiet and ctx.is_main:
            print(f"epoch {epoch}: " + " | ".join(f"{k} {v:.4f}" for k, v in row.items()))

    def finish(self, ctx: Context) -> dict[str, Any]:
        """The last epoch's accuracies (train, held-out, best held-out)."""
        return {key: value for key, value in ctx.last_row.items() if "accuracy" in key}

    def extra_state(self) -> dict[str, Any]:
        """The rule's fixed random matrices, the best accuracy and the evaluated losses."""
        state = {"best": self.best, "eval_losses": list(self.eval_losses)}
        return {**state, "rule": self.rule.state_dict()}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        if "rule" in state:
            self.rule.load_state_dict(state["rule"])
        self.best = float(state.get("best", 0.0))
        self.eval_losses = list(state.get("eval_losses", []))

    def _plot_confusion(self, ctx: Context, predicted) -> None:
        wandb_run = ctx.run.wandb_run if ctx.run is not None else None
        if wandb_run is None:
            return
        import wandb

        plot = wandb.plot.confusion_matrix(y_true=self.y_test.tolist(), preds=predicted.tolist())
        wandb_run.log({f"{self.eval_split}/confusion": plot})


class StudyAExperiment(BinaryFeedbackExperiment):
    """Study A (SAC 2023): an MLP, summed squared error, SGD, every weight clipped (when
        ``weight_clipping`` is set).

        As the reference, it prints the model size (normal and bit-packed) before training and
        measures its per-batch statistics after every step (:class:`~.evaluation.BatchMonitor`):
        one row per step in ``batches.csv``, their epoch means in ``metrics.csv``, a line per
        batch with ``verbose`` 2. W&B project ``wandb_project`` (the study's "<dataset as typed>
    custom"); ``dtype`` float64 computes as the study's NumPy code does; ``run_name`` ``auto`` names
        the run "<METHOD> <binarised|continuous> <hidden act>".
    """

    config: StudyAConfig
    regime = "study_a"
    drop_last = True  # as the reference
    grad_reduction = "sum"  # the summed squared error: torchrun sums the processes' gradients
    # the per-batch statistics do not change the training: a run may be resumed without them
    resume_ignored = BinaryFeedbackExperiment.resume_ignored | {"batch_stats"}

    def __init__(self, config: StudyAConfig) -> None:
        super().__init__(config)
        self.project = config.wandb_project
        self.batch_monitor: BatchMonitor | None = None
        self.batch_log: BatchLog | None = None
        self.size: dict[str, int] = {}

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def run_name(self) -> str | None:
        """``run_name``, with ``auto`` as the reference: "<METHOD> <binarised|continuous>
        <hidden act>"."""
        config = self.config
        if config.run_name != "auto":
            return config.run_name
        kind = "binarised" if config.binarize else "continuous"
        return f"{config.method.upper()} {kind} {config.hidden_act}"

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        if self.config.batch_stats:
            self.batch_monitor = BatchMonitor(self.model)
        normal, packed = model_size(self.model)
        self.size = {"model_size/normal_bytes": normal, "model_size/packed_bytes": packed}
        if not ctx.quiet and ctx.is_main:
            print(f"model size: normal {normal} B, packed {packed} B", flush=True)

    def train_epoch(self, epoch: int, ctx: Context) -> dict[str, Any]:
        wandb_run = ctx.run.wandb_run if ctx.run is not None else None
        if wandb_run is not None and self.run_name and wandb_run.name != self.run_name:
            wandb_run.name = self.run_name
        if self.batch_log is None and self.batch_monitor is not None:  # first epoch here
            path = ctx.out_dir / BATCH_FILE
            self.batch_log = BatchLog(path, epoch, ctx.settings.resume, write=ctx.is_main)
        metrics = super().train_epoch(epoch, ctx)
        return {**metrics, **(self.batch_log.end_epoch() if self.batch_log else {})}

    def measure_step(
        self, epoch: int, stats: Mapping[str, float], size: int, ctx: Context
    ) -> dict[str, float]:
        """The step's :class:`~.evaluation.BatchMonitor` values (a ``batches.csv`` row)."""
        if self.batch_monitor is None:  # --no-batch-stats
            return {}
        values = self.batch_monitor.measure()
        row = self.batch_log.add(epoch, {"batch/loss": stats["loss"], **values})
        if self.config.verbose >= 2 and not ctx.quiet and ctx.is_main:
            text = " | ".join(f"{k} {v:.6g}" for k, v in row.items() if "/" in k)
            print(f"epoch {epoch} step {row['step']}: {text}", flush=True)
        return values

    def end_epoch(self, epoch: int, row: dict[str, Any], ctx: Context) -> None:
        super().end_epoch(epoch, row, ctx)
        row.update(self.size)

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.config.dtype)

    def preprocess(self, x: Tensor) -> Tensor:
        return data.scale_study_a(x).to(self.dtype)

    def build_model(self, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        config = self.config
        return MLP(
            math.prod(in_shape),
            num_classes,
            config.hidden,
            hidden_act=config.hidden_act,
            last_act=config.last_act,
            bn=config.bn,
            sn=config.sn,
            binarize=config.binarize,
            binarize_last=config.binarize_last,
            weight_ste=config.weight_ste,
            init=config.init,
            dtype=self.dtype,
        )

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.config.lr, foreach=True)

    def clip(self, model: nn.Module) -> None:
        if self.config.weight_clipping is not None:  # None: no clipping (the study's default)
            clip_weights_(model, self.config.weight_clipping, select=is_linear)

    def train_metrics(self, loss: float, accuracy: float, ctx: Context) -> dict[str, float]:
        """The full training set at the epoch end, batch norm in eval mode (as the study)."""
        return evaluate_model(
            self.model, self.rule, self.x_train, self.y_train, ctx.device, self.prepare
        )


class StudyBExperiment(StudyBRunParts, BinaryFeedbackExperiment):
    """Study B (arXiv 2408.04460): registered models, cross-entropy, ``opt``, early stopping."""

    config: StudyBConfig
    regime = "study_b"

    @property
    def batch_size(self) -> int:
        return self.config.bs

    @property
    def eval_split(self) -> str:
        return "test" if self.config.test_set else "val"

    def preprocess(self, x: Tensor) -> Tensor:
        return data.normalize_study_b(x, self.config.dataset)

    def split(self, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, seed: int):
        if self.config.test_set:
            return x_train, y_train, x_test, y_test
        splits = data.validation_split(x_train, y_train, self.config.train_fraction, seed)
        if getattr(self.config, "val_train_transforms", False):  # the reference (quirk 27)
            x_val = data.augment_study_b(
                splits[2], torch.Generator().manual_seed(seed), self.config.dataset,
                self.config.augment,
            )  # fmt: skip
            splits = (splits[0], splits[1], x_val, splits[3])
        return splits

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        model = MODELS.canonical(self.config.model)
        size = data.input_size(model, shape[-1], self.config.image_size)
        return (shape[0], size, size)

    def prepare(self, x: Tensor) -> Tensor:
        return data.resize(x, self.in_shape[-2:])

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return data.augment_study_b(x, generator, self.config.dataset, self.config.augment)

    def build_model(self, in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        config = self.config
        model, fp_layers, _ = self.network(in_shape, num_classes)
        if config.remove_skips:
            remove_skips(model)
        if config.biprop is not None:  # every weight layer, before the activations change
            apply_biprop(model, config.biprop)
        if config.binary_weights:
            binarize_weights(model, keep_fp=fp_layers)
        if config.binary_act:
            binarize_activations(model, unsat=config.unsat)
        elif config.bireal_act:  # ignored with binary_act, as the reference
            bireal_activations(model)
        return model

    def rule_options(self) -> dict[str, Any]:
        config = self.config
        accepted = set(RULES.get(config.method).option_names())
        candidates = {
            "bw_init": config.bw_init,
            "gamma": config.hsic_gamma,
            "mode": config.hsic_mode,
            "gain": config.pepita_gain,
            "gain_mode": config.pepita_gain_mode,
            "mut_prob": config.mut_prob,
            "accuracy": config.ls_accuracy,
            "c": config.spsa_c,
            "pert": config.spsa_g_pert,
            "slow": config.slow_drtp,
        }
        return {key: value for key, value in candidates.items() if key in accepted}

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cls = getattr(torch.optim, self.config.opt)
        return cls(model.parameters(), lr=self.config.lr, weight_decay=self.config.wd)

    def clip(self, model: nn.Module) -> None:
        clip_weights_(model, 1.0, select=is_binarized)

    def should_stop(self, epoch: int, row: Mapping[str, Any]) -> bool:
        """Once the evaluated loss fell by at most ``early_stopping_delta`` in 4 evaluations."""
        losses = self.eval_losses
        return len(losses) >= 5 and losses[-5] - losses[-1] <= self.config.early_stopping_delta


#: The experiments, each for its study's schema.
EXPERIMENTS: dict[type[StudyConfig], type[BinaryFeedbackExperiment]] = {
    StudyAConfig: StudyAExperiment,
    StudyBConfig: StudyBExperiment,
}


def experiment_for(config: StudyConfig) -> BinaryFeedbackExperiment:
    """The experiment of ``config``'s study (chosen by the schema's type)."""
    cls = EXPERIMENTS.get(type(config))
    if isinstance(config, StudyBConfig) and config.reconstruction:
        from .reconstruction import ReconstructionExperiment

        cls = ReconstructionExperiment
    if cls is None:
        raise TypeError(f"no experiment for {type(config).__name__}; expected a study schema")
    return cls(config)


def build(config: StudyConfig, in_shape: tuple[int, ...], num_classes: int):
    """``(model, rule, optimizer)`` of ``config``'s study for inputs of ``in_shape``."""
    return experiment_for(config).build(tuple(in_shape), num_classes)


def train_model(config: StudyConfig, settings: RunSettings | None = None) -> dict[str, Any]:
    """Train a run of ``config``'s study through the core's runner.

    Args:
        config: a :class:`~.config.StudyAConfig` or :class:`~.config.StudyBConfig`.
        settings: run directory, device, data, tracking (default: the CLI's defaults,
            ``runs/binary_feedback``).

    Returns:
        The final metrics (also in ``final.csv``): ``train/accuracy``, the held-out
        ``test/accuracy`` (or ``val/accuracy``) and its ``best_accuracy``.
    """
    return fit(experiment_for(config), settings or RunSettings(out_dir=DEFAULT_OUT_DIR))
