"""Training and validation steps, per-epoch diagnostics and the whole run (reference
``training``), as the core runner's :class:`~bnn_shared.runner.Experiment`.

Adam over all parameters, StepLR once per epoch, no gradient clipping, full BPTT. Each epoch
logs ``train/loss``, ``train/accuracy``, ``train/flips`` (sign bits of HadamRNN's ``s``
changed in the epoch), ``val/loss``, ``val/accuracy`` (accumulated per sample), the copy
task's memoryless baseline ``baseline/loss`` = ``K ln(V-2) / T`` next to the validation
cross-entropy, the singular values of ``W`` (``sv/min``, ``sv/max``, ``sv/ratio``), ``lr`` and
``seconds``. :func:`bnn_shared.runner.fit` owns the loop (seed, device, run directory,
checkpoint and ``--resume``, epochs counted from 1); this module adds ``best.pt`` (best
validation), the final validation and test metrics (``final.csv``), the GLUE submission and
the reference's ``--save-network`` files.

The reference's TRAIN switches: ``COMPUTE_SV`` (the ``sv/*`` metrics, on by default),
``GET_GRADIENTS`` (``gradients/recurrent_1_<name>``: the epoch's mean over batches of mean
``|grad|`` of each parameter the recurrent layer owns directly), ``DISPLAY_EVERY`` k (a line
with the loss every k batches), ``DISPLAY_EPOCH`` (a line with the epoch's loss and
validation metrics) and ``ALTERNATE_GRADIENTS`` (:func:`set_alternate_phase`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from bnn_shared.config import to_dict
from bnn_shared.data.splits import Split, batches
from bnn_shared.errors import ConfigError, ShapeError
from bnn_shared.runner import Context, Experiment, RunSettings, fit
from bnn_shared.tracking import atomic_save, atomic_write_text
from torch import nn

from .config import Config
from .dataset_tools import Splits, load_splits
from .getters import (
    LOSSES,
    get_loss,
    get_metric,
    get_model,
    get_optimizer,
    get_scheduler,
)

__all__ = [
    "BEST_FILE",
    "HadamRNNExperiment",
    "evaluate",
    "recurrent_gradients",
    "run_training",
    "set_alternate_phase",
    "tf32_matmuls",
    "train_epoch",
    "weight_diagnostics",
]

BEST_FILE = "best.pt"


def _signs(model: nn.Module) -> torch.Tensor | None:
    signs = getattr(getattr(model, "recurrent", None), "signs", None)
    return signs().detach().clone() if signs is not None else None


def train_epoch(
    model: nn.Module,
    stream: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable,
    metric: Callable | None,
    device: torch.device,
    *,
    track_flips: bool = True,
    check_loss: Callable[[torch.Tensor, int], None] | None = None,
    gradients: bool = False,
    display: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """One pass over the batches ``stream``: mean ``train/loss``, ``train/accuracy`` (with a
    metric) and ``train/flips`` (sign flips of ``s``, for models with signs).

    ``check_loss(loss, step)`` sees every batch's loss before the backward pass (the runner's
    NaN/inf stop); ``gradients`` adds :func:`recurrent_gradients`' epoch means;
    ``display(step, loss)`` sees every batch's loss after its step (``DISPLAY_EVERY``)."""
    model.train()
    total_loss, total_metric, count, flips = 0.0, 0.0, 0, 0
    grad_sums: dict[str, float] = {}
    before = _signs(model) if track_flips else None
    for step, (x, y) in enumerate(stream):
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        if check_loss is not None:
            check_loss(loss, step)
        loss.backward()
        if gradients:
            for key, value in recurrent_gradients(model).items():
                grad_sums[key] = grad_sums.get(key, 0.0) + value
        optimizer.step()
        model.apply_constraints_()
        items = y.numel()
        total_loss += loss.item() * items
        if display is not None:
            display(step, loss.item())
        if metric is not None:
            total_metric += metric(logits.detach(), y).item()
        count += items
        if before is not None:
            after = _signs(model)
            flips += int((after != before).sum())
            before = after
    out = {"train/loss": total_loss / max(count, 1)}
    if metric is not None:
        out["train/accuracy"] = total_metric / max(count, 1)
    if before is not None:
        out["train/flips"] = flips
    batches_seen = step + 1 if count else 1
    out.update({key: total / batches_seen for key, total in grad_sums.items()})
    return out


def recurrent_gradients(model: nn.Module) -> dict[str, float]:
    """Mean ``|grad|`` of each parameter ``model.recurrent`` owns directly (HadamRNN: ``s``
    and ``bias``; a parametrized matrix's latent is not its own), 0 without a gradient, as
    ``gradients/recurrent_1_<name>`` (the reference's ``GET_GRADIENTS``)."""
    recurrent = getattr(model, "recurrent", None)
    if not isinstance(recurrent, nn.Module):
        return {}
    return {
        f"gradients/recurrent_1_{name}": 0.0 if p.grad is None else p.grad.abs().mean().item()
        for name, p in recurrent.named_parameters(recurse=False)
    }


def binary_latents(model: nn.Module) -> list[nn.Parameter]:
    """The latents of binary weights: HadamRNN's sign latent ``s`` (the reference's
    ``sign_vector``) and any parameter named ``sign_vector``."""
    latents = [p for name, p in model.named_parameters() if name.endswith("sign_vector")]
    recurrent = getattr(model, "recurrent", None)
    signs = getattr(recurrent, "s", None) if hasattr(recurrent, "signs") else None
    if isinstance(signs, nn.Parameter) and all(signs is not p for p in latents):
        latents.append(signs)
    return latents


def set_alternate_phase(model: nn.Module, epoch: int) -> None:
    """``ALTERNATE_GRADIENTS`` (spec B.3, the working single-layer version): in epochs 1, 3,
    5, ... the binary latents (:func:`binary_latents`) are frozen and everything else trains;
    in epochs 2, 4, ... only they train. The phase comes from the epoch number, so ``--resume``
    keeps it. Frozen parameters get no gradient (``zero_grad(set_to_none=True)``), so Adam
    leaves them exactly as they are (torch >= 2.0 behaviour; torch < 2.0 moved them by momentum).

    Raises:
        ConfigError: the model has no binary latents (every parameter would freeze in even
            epochs).
    """
    latents = binary_latents(model)
    if not latents:
        raise ConfigError(
            "TRAIN.ALTERNATE_GRADIENTS needs a model with binary latents (hadamrnn's signs)"
        )
    ids = {id(p) for p in latents}
    latent_phase = epoch % 2 == 0
    for p in model.parameters():
        p.requires_grad_((id(p) in ids) == latent_phase)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    cfg: Config,
    loss_fn: Callable,
    metric: Callable | None,
    device: torch.device,
    *,
    prefix: str,
    **forward: Any,
) -> dict[str, float]:
    """``<prefix>/loss`` and ``<prefix>/accuracy`` over ``split``, accumulated per sample
    (quirk 12 fixed); ``forward`` goes to the model (engine, PTQ quantizers)."""
    model.eval()
    size = cfg.train.val_batch_size or max(1, math.ceil(len(split) / 10))
    total_loss, total_metric, count = 0.0, 0.0, 0
    for x, y in batches(split, size):
        x, y = x.to(device), y.to(device)
        logits = model(x, **forward)
        items = y.numel()
        total_loss += loss_fn(logits, y).item() * items
        if metric is not None:
            total_metric += metric(logits, y).item()
        count += items
    out = {f"{prefix}/loss": total_loss / max(count, 1)}
    if metric is not None:
        out[f"{prefix}/accuracy"] = total_metric / max(count, 1)
    return out


@torch.no_grad()
def weight_diagnostics(model: nn.Module) -> dict[str, float]:
    """Singular values of the recurrent matrix: ``sv/min``, ``sv/max``, ``sv/ratio``."""
    recurrent = getattr(model, "recurrent", None)
    if recurrent is None:
        return {}
    values = torch.linalg.svdvals(recurrent.weight().detach().double().cpu())
    low, high = values.min().item(), values.max().item()
    return {"sv/min": low, "sv/max": high, "sv/ratio": high / low if low > 0 else math.inf}


@contextlib.contextmanager
def tf32_matmuls(allow: bool) -> Iterator[None]:
    """CUDA float32 matmuls and cuDNN convolutions in TF32 (``allow``) or not, restored after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


class HadamRNNExperiment(Experiment):
    """A HadamRNN run (any model of ``getters.MODELS``) as the core runner's hooks.

    Args:
        config: the validated :class:`~hadamrnn.config.Config`.
        save_network: also write the reference's ``<save_name>.pth`` (state dict) and
            ``<save_name>.txt`` (final metrics) in the run directory.
        save_name: their base name (default ``hadamrnn_<dataset>``).
        splits: the data, already loaded (default: ``load_splits(config.dataset)``).
    """

    seed_key = "model.seed"
    epochs_key = "train.n_epochs"
    resume_ignored = frozenset(
        {
            "torch_device",
            "use_wandb",
            "save_test_output",
            "eval_best",
            # reporting only: the training is the same
            "display_every",
            "display_epoch",
            "get_gradients",
            "compute_sv",
            "givens",
            "multiparameters",
        }
    )

    def __init__(
        self,
        config: Config,
        *,
        save_network: bool = False,
        save_name: str | None = None,
        splits: Splits | None = None,
    ) -> None:
        super().__init__(config)
        self.project = config.project
        self.save_network = save_network
        self.save_name = save_name
        self.splits = splits
        self.best_score = -math.inf

    def setup(self, ctx: Context) -> None:
        cfg = self.config
        settings = ctx.settings
        if self.splits is None:
            self.splits = load_splits(cfg.dataset, settings.data_dir, settings.download)
        check_sizes(cfg, self.splits)
        self.model = get_model(cfg).to(ctx.device)
        self.optimizer = get_optimizer(cfg, self.model)
        self.loss_fn, self.metric = get_loss(cfg), get_metric(cfg)
        self.scheduler = get_scheduler(cfg, self.optimizer)
        balanced = cfg.dataset.weighted_sampler
        self.balanced = self.splits.name.startswith("glue") if balanced is None else balanced

    def train_epoch(self, epoch: int, ctx: Context) -> dict[str, Any]:
        train = self.config.train
        if train.alternate_gradients:
            set_alternate_phase(self.model, epoch)
        stream = batches(
            self.splits.train,
            train.batch_size,
            shuffle=True,
            generator=ctx.generator,
            balanced=self.balanced,
            limit=train.max_batches,
        )
        shares = (ctx.take_share(x, y) for x, y in stream)  # under torchrun: this process's
        return train_epoch(
            self.model,
            ctx.progress(shares, desc="train"),
            self.optimizer,
            self.loss_fn,
            self.metric,
            ctx.device,
            track_flips=train.track_flips,
            check_loss=ctx.check_loss,
            gradients=train.get_gradients,
            display=self._display(epoch, ctx) if train.display_every else None,
        )

    def _display(self, epoch: int, ctx: Context) -> Callable[[int, float], None]:
        """``DISPLAY_EVERY`` k: the loss of every k-th batch (from 0), as the reference."""
        train = self.config.train
        total = math.ceil(len(self.splits.train) / train.batch_size)
        total = min(total, train.max_batches or total)

        def show(step: int, loss: float) -> None:
            if step % train.display_every == 0 and ctx.is_main:
                # only_loss: the loss before the LAMBDA_ORTH term (always 0 here)
                print(
                    f"loss {loss:.3f} only_loss {loss:.3f} batch {step}/{total} epoch {epoch}",
                    flush=True,
                )

        return show

    def evaluate(self, epoch: int, ctx: Context) -> dict[str, Any]:
        row = self._evaluate("val", ctx)
        baseline = self.splits.extra.get("baseline_loss")
        if baseline is not None:
            row["baseline/loss"] = baseline
        return row

    def end_epoch(self, epoch: int, row: dict[str, Any], ctx: Context) -> None:
        self.scheduler.step()
        if self.config.train.compute_sv:
            row.update(weight_diagnostics(self.model))
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.config.train.display_epoch and ctx.is_main:
            print(_epoch_line(epoch, row), flush=True)
        if "val/loss" in row and _score(row) > self.best_score:
            self.best_score = _score(row)
            state = {"model": self.model.state_dict(), "epoch": epoch}
            if ctx.is_main:
                atomic_save({**state, "config": to_dict(self.config)}, ctx.out_dir / BEST_FILE)

    def finish(self, ctx: Context) -> dict[str, Any]:
        """Validation and test metrics of the last (or, with ``TRAIN.EVAL_BEST``, the best
        validation) weights; for GLUE the submission file instead of test metrics."""
        best = ctx.out_dir / BEST_FILE
        ctx.group.barrier()  # under torchrun: rank 0 has written the last best.pt
        if self.config.train.eval_best and best.is_file():
            state = torch.load(best, map_location=ctx.device, weights_only=True)
            self.model.load_state_dict(state["model"])
        final = self._evaluate("val", ctx)
        if self.splits.test_labels:
            final.update(self._evaluate("test", ctx))
        elif self.config.train.save_test_output and ctx.is_main:
            final["submission"] = str(self._write_submission(ctx))
        if self.save_network and ctx.is_main:
            name = self.save_name or f"hadamrnn_{self.splits.name}"
            _save_network(self.model, final, ctx.out_dir, name)
        return final

    def extra_state(self) -> dict[str, Any]:
        return {"best_score": self.best_score}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.best_score = state.get("best_score", -math.inf)

    def _evaluate(self, split: str, ctx: Context) -> dict[str, float]:
        data = getattr(self.splits, split)
        return evaluate(
            self.model, data, self.config, self.loss_fn, self.metric, ctx.device, prefix=split
        )

    @torch.no_grad()
    def _write_submission(self, ctx: Context) -> Path:
        """GLUE test predictions as ``index<TAB>prediction`` (prediction = logit >= 0)."""
        self.model.eval()
        lines = ["index\tprediction"]
        index = 0
        for x, _ in batches(self.splits.test, self.config.train.val_batch_size or 256):
            for logit in self.model(x.to(ctx.device)).reshape(-1).tolist():
                lines.append(f"{index}\t{int(logit >= 0)}")
                index += 1
        name = {"glue_sst2": "SST-2", "glue_qqp": "QQP"}.get(self.splits.name, self.splits.name)
        path = ctx.out_dir / "glue_results" / f"{name}.tsv"
        atomic_write_text(path, "\n".join(lines) + "\n")
        return path


def check_sizes(cfg: Config, splits: Splits) -> None:
    """MODEL.INPUT_SIZE and MODEL.OUTPUT_SIZE against the data (before anything is written).

    Raises:
        ShapeError: the inputs have another feature size (for inputs that are not token ids),
            or the output size is not the number of classes (1 for a binary-logit loss).
    """
    model = cfg.model
    x, _ = splits.train.batch(torch.arange(1))
    if model.vocab_size is None and x.dim() == 3 and x.shape[-1] != model.input_size:
        raise ShapeError(
            f"MODEL.INPUT_SIZE is {model.input_size}, but the {splits.name} inputs have "
            f"{x.shape[-1]} feature(s) per step: set MODEL.INPUT_SIZE={x.shape[-1]}"
        )
    binary = LOSSES.canonical(cfg.train.loss_fn) == "bce_with_logits"
    classes = 1 if binary else splits.num_classes
    if model.output_size != classes:
        raise ShapeError(
            f"MODEL.OUTPUT_SIZE is {model.output_size}, but {splits.name} has {classes} "
            f"output(s) for TRAIN.LOSS_FN {cfg.train.loss_fn}: set MODEL.OUTPUT_SIZE={classes}"
        )


def _epoch_line(epoch: int, row: Mapping[str, Any]) -> str:
    """``DISPLAY_EPOCH``: the epoch's training loss and its validation values (none when
    the epoch was not validated)."""
    shown = {"loss": row["train/loss"], "only_loss": row["train/loss"]}
    shown.update({key: value for key, value in row.items() if key.startswith("val/")})
    return f"epoch {epoch}: " + "  ".join(f"{key} {value:.4g}" for key, value in shown.items())


def _score(metrics: Mapping[str, float]) -> float:
    """Larger is better: validation accuracy, else minus the validation loss."""
    return metrics["val/accuracy"] if "val/accuracy" in metrics else -metrics["val/loss"]


def _save_network(model: nn.Module, final: dict[str, Any], out_dir: Path, name: str) -> None:
    """The reference's outputs: ``<name>.pth`` (state dict) and ``<name>.txt`` (key: value)."""
    atomic_save(model.state_dict(), out_dir / f"{name}.pth")
    text = "".join(f"{key}: {value}\n" for key, value in final.items())
    atomic_write_text(out_dir / f"{name}.txt", text)


def run_training(
    cfg: Config,
    settings: RunSettings | None = None,
    *,
    save_network: bool = False,
    save_name: str | None = None,
    splits: Splits | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` through :func:`bnn_shared.runner.fit` and return the final metrics.

    Args:
        cfg: the run's config.
        settings: run directory, device, resume, wandb, ... (default: ``runs/hadamrnn``,
            ``TRAIN.TORCH_DEVICE`` and ``USE_WANDB``).
        save_network, save_name, splits: see :class:`HadamRNNExperiment`.

    ``TRAIN.ALLOW_TF32`` holds for the whole run (:func:`tf32_matmuls`) and is restored after.
    """
    if settings is None:
        settings = RunSettings(
            out_dir=Path("runs/hadamrnn"), device=cfg.train.torch_device, wandb=cfg.use_wandb
        )
    experiment = HadamRNNExperiment(
        cfg, save_network=save_network, save_name=save_name, splits=splits
    )
    with tf32_matmuls(cfg.train.allow_tf32):
        return fit(experiment, settings)
