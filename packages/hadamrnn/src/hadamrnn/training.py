"""Training and validation steps, per-epoch diagnostics and the whole run (reference
``training``).

Adam over all parameters, StepLR once per epoch, no gradient clipping, full BPTT. Each epoch
logs the training loss and metric, the validation loss and metric (accumulated per sample),
the learning rate, the sign flips of HadamRNN's ``s`` and the singular values of ``W``; the
copy task logs its cross-entropy next to the memoryless baseline ``K ln(V-2) / T``. The run
directory (core tracking) holds ``config.yaml``, ``metrics.csv``, ``checkpoint.pt`` (last
epoch, for ``--resume``) and ``best.pt`` (best validation).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from bnn_shared.tracking import DEFAULT_RESUME_IGNORED_KEYS, Run, atomic_save, atomic_write_text
from bnn_shared.utils import parse_device, seed_everything
from torch import nn

from .config import Config, as_dict
from .dataset_tools import Splits, batches, load_splits
from .getters import get_loss, get_metric, get_model, get_optimizer, get_scheduler

__all__ = ["train_epoch", "evaluate", "weight_diagnostics", "run_training", "BEST_FILE"]

BEST_FILE = "best.pt"
RESUME_IGNORED = DEFAULT_RESUME_IGNORED_KEYS | {
    "n_epochs",
    "torch_device",
    "use_wandb",
    "save_test_output",
    "eval_best",
}


def _signs(model: nn.Module) -> torch.Tensor | None:
    signs = getattr(getattr(model, "recurrent", None), "signs", None)
    return signs().detach().clone() if signs is not None else None


def train_epoch(
    model,
    split,
    cfg: Config,
    optimizer,
    loss_fn,
    metric,
    device,
    generator,
    progress=lambda it, **_: it,
    balanced: bool = False,
) -> dict[str, float]:
    """One pass over ``split``; returns mean loss, metric and sign flips of ``s``."""
    model.train()
    total_loss, total_metric, count, flips = 0.0, 0.0, 0, 0
    before = _signs(model) if cfg.train.track_flips else None
    stream = batches(
        split,
        cfg.train.batch_size,
        shuffle=True,
        generator=generator,
        balanced=balanced,
        limit=cfg.train.max_batches,
    )
    for x, y in progress(stream, desc="train"):
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        model.apply_constraints_()
        items = y.numel()
        total_loss += loss.item() * items
        if metric is not None:
            total_metric += metric(logits.detach(), y).item()
        count += items
        if before is not None:
            after = _signs(model)
            flips += int((after != before).sum())
            before = after
    out = {"train_loss": total_loss / max(count, 1)}
    if metric is not None:
        out["train_acc"] = total_metric / max(count, 1)
    if cfg.train.track_flips and before is not None:
        out["flips"] = flips
    return out


@torch.no_grad()
def evaluate(
    model, split, cfg: Config, loss_fn, metric, device, *, prefix: str, **forward
) -> dict[str, float]:
    """Mean loss and metric over ``split``, accumulated per sample (quirk 12 fixed)."""
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
    out = {f"{prefix}_loss": total_loss / max(count, 1)}
    if metric is not None:
        out[f"{prefix}_acc"] = total_metric / max(count, 1)
    return out


@torch.no_grad()
def weight_diagnostics(model: nn.Module) -> dict[str, float]:
    """Singular values of the recurrent matrix: ``sv_min``, ``sv_max``, ``sv_ratio``."""
    recurrent = getattr(model, "recurrent", None)
    if recurrent is None:
        return {}
    values = torch.linalg.svdvals(recurrent.weight().detach().double().cpu())
    low, high = values.min().item(), values.max().item()
    return {"sv_min": low, "sv_max": high, "sv_ratio": high / low if low > 0 else math.inf}


def _score(metrics: dict[str, float]) -> float:
    """Larger is better: validation accuracy, else minus the validation loss."""
    return metrics["val_acc"] if "val_acc" in metrics else -metrics["val_loss"]


@contextlib.contextmanager
def tf32_matmuls(allow: bool) -> Iterator[None]:
    """CUDA float32 matmuls and cuDNN convolutions in TF32 (``allow``) or not, restored after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def run_training(
    cfg: Config,
    *,
    out_dir: str | Path = "runs/hadamrnn",
    data_dir: str | None = None,
    download: bool = False,
    resume: bool = False,
    device: str | None = None,
    wandb: bool | None = None,
    quiet: bool = False,
    save_network: bool = False,
    save_name: str | None = None,
    splits: Splits | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` in ``out_dir`` and return the final metrics (test on the last epoch's
    weights, or the best validation's with ``TRAIN.EVAL_BEST``)."""
    device = parse_device(device or cfg.train.torch_device)
    seed_everything(cfg.model.seed)
    splits = splits or load_splits(cfg.dataset, data_dir, download)
    model = get_model(cfg).to(device)
    optimizer, loss_fn, metric = get_optimizer(cfg, model), get_loss(cfg), get_metric(cfg)
    scheduler = get_scheduler(cfg, optimizer)
    generator = torch.Generator().manual_seed(cfg.model.seed)
    balanced = cfg.dataset.weighted_sampler
    balanced = splits.name.startswith("glue") if balanced is None else balanced
    baseline = splits.extra.get("baseline_loss")
    use_wandb = cfg.use_wandb if wandb is None else wandb
    with tf32_matmuls(cfg.train.allow_tf32), Run(
        out_dir,
        as_dict(cfg),
        resume=resume,
        use_wandb=use_wandb,
        quiet=quiet,
        project=cfg.project,
        ignore_keys=RESUME_IGNORED,
        defaults=as_dict(Config()),
    ) as run:
        start = run.restore(model, optimizer, scheduler)
        if "shuffle_rng" in run.extra:
            generator.set_state(run.extra["shuffle_rng"])
        best = run.extra.get("best_score", -math.inf)
        for epoch in range(start, cfg.train.n_epochs):
            began = time.perf_counter()
            row = train_epoch(
                model,
                splits.train,
                cfg,
                optimizer,
                loss_fn,
                metric,
                device,
                generator,
                run.progress,
                balanced,
            )
            scheduler.step()
            row.update(evaluate(model, splits.val, cfg, loss_fn, metric, device, prefix="val"))
            if baseline is not None:
                row["naive_baseline"] = baseline
            row.update(weight_diagnostics(model))
            row["lr"] = optimizer.param_groups[0]["lr"]
            row["seconds"] = time.perf_counter() - began
            if _score(row) > best:
                best = _score(row)
                state = {"model": model.state_dict(), "epoch": epoch, "config": as_dict(cfg)}
                atomic_save(state, run.out_dir / BEST_FILE)
            run.log(epoch, **row)
            run.save_checkpoint(
                epoch,
                model,
                optimizer,
                scheduler,
                shuffle_rng=generator.get_state(),
                best_score=best,
            )
        final = _finish(cfg, model, splits, loss_fn, metric, device, run.out_dir)
        if save_network:
            _save_network(model, final, run.out_dir, save_name or f"hadamrnn_{splits.name}")
        run.finish(**final)
    return final


def _finish(cfg, model, splits, loss_fn, metric, device, out_dir: Path) -> dict[str, Any]:
    best = out_dir / BEST_FILE
    if cfg.train.eval_best and best.is_file():
        model.load_state_dict(torch.load(best, map_location=device, weights_only=True)["model"])
    final = evaluate(model, splits.val, cfg, loss_fn, metric, device, prefix="val")
    if splits.test_labels:
        final.update(evaluate(model, splits.test, cfg, loss_fn, metric, device, prefix="test"))
    elif cfg.train.save_test_output:
        final["submission"] = str(_write_submission(model, splits, cfg, device, out_dir))
    return final


@torch.no_grad()
def _write_submission(model, splits: Splits, cfg: Config, device, out_dir: Path) -> Path:
    """GLUE test predictions as ``index<TAB>prediction`` (prediction = logit >= 0)."""
    model.eval()
    lines = ["index\tprediction"]
    index = 0
    for x, _ in batches(splits.test, cfg.train.val_batch_size or 256):
        for logit in model(x.to(device)).reshape(-1).tolist():
            lines.append(f"{index}\t{int(logit >= 0)}")
            index += 1
    name = {"glue_sst2": "SST-2", "glue_qqp": "QQP"}.get(splits.name, splits.name)
    path = out_dir / "glue_results" / f"{name}.tsv"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _save_network(model: nn.Module, final: dict[str, Any], out_dir: Path, name: str) -> None:
    """The reference's outputs: ``<name>.pth`` (state dict) and ``<name>.txt`` (key: value)."""
    atomic_save(model.state_dict(), out_dir / f"{name}.pth")
    text = "".join(f"{key}: {value}\n" for key, value in final.items())
    atomic_write_text(out_dir / f"{name}.txt", text)
