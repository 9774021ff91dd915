"""Training of DWN classifiers: an experiment of the core runner, :func:`bnn_shared.runner.fit`.

Reproduces the reference example (examples/mnist.py and the tutorial notebook): a
thermometer encoder fitted on the training features, LUT layers, GroupSum, Adam with StepLR,
cross-entropy on the GroupSum scores, the test split evaluated after every epoch. At the end
the model is exported (``model.dwn`` in the run directory) and its integer-only compiled copy
is checked against the PyTorch predictions on the test split.

Metrics (``metrics.csv``, one row per epoch from 1): ``train/loss``, ``train/accuracy``,
``test/loss``, ``test/accuracy``, ``lr`` (after the epoch's StepLR step), ``seconds``;
``final.csv`` adds ``export/agreement`` (share of test samples on which the compiled model
predicts the PyTorch model's class) and ``export/test_accuracy`` (the compiled model's).

Example::

    cfg = TrainConfig(dataset="digits", layers=[100], mapping=["random"], epochs=1)
    final = train_model(cfg, out_dir="runs/dwn_digits", device="cpu")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from bnn_shared.runner import Context, Experiment, RunSettings, fit
from torch import nn

from .binarization import ENCODERS, Thermometer
from .config import TrainConfig
from .datasets import load_arrays
from .export import export, load_compiled
from .lut_layer import LUTLayer
from .utils import GroupSum

__all__ = [
    "DEFAULT_OUT_DIR",
    "DWNExperiment",
    "build_model",
    "evaluate_model",
    "make_encoder",
    "train_model",
]

#: The run directory when none is given.
DEFAULT_OUT_DIR = "runs/dwn"


def make_encoder(cfg: TrainConfig) -> Thermometer:
    """The thermometer encoder named by ``cfg.encoder`` (not yet fitted)."""
    return ENCODERS.get(cfg.encoder)(cfg.bits, feature_wise=cfg.feature_wise)


def build_model(cfg: TrainConfig, in_bits: int, num_classes: int) -> nn.Sequential:
    """LUT layers as in ``cfg.layers`` / ``cfg.mapping``, then ``GroupSum(classes, tau)``."""
    layers: list[nn.Module] = []
    width = in_bits
    for size, mapping in zip(cfg.layers, cfg.mapping, strict=True):
        layers.append(
            LUTLayer(
                width,
                size,
                cfg.n,
                mapping=mapping,
                alpha=cfg.alpha,
                beta=cfg.beta,
                lm_tau=cfg.lm_tau,
                backend=cfg.backend,
                efd=cfg.efd,
            )
        )
        width = size
    layers.append(GroupSum(num_classes, tau=cfg.tau))
    return nn.Sequential(*layers)


def evaluate_model(
    model: nn.Module, bits: torch.Tensor, labels: torch.Tensor, batch: int, device: torch.device
) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy and predicted classes of ``model`` in eval mode."""
    model.eval()
    losses, preds = [], []
    with torch.no_grad():
        for start in range(0, len(bits), batch):
            x = bits[start : start + batch].to(device).float()
            y = labels[start : start + batch].to(device)
            out = model(x)
            losses.append(nn.functional.cross_entropy(out, y, reduction="sum").item())
            preds.append(out.argmax(1).cpu())
    predictions = torch.cat(preds)
    accuracy = (predictions == labels).float().mean().item()
    return sum(losses) / len(bits), accuracy, predictions


class DWNExperiment(Experiment):
    """One DWN training run: the hooks :func:`bnn_shared.runner.fit` calls.

    Args:
        config: the validated :class:`~dwn.config.TrainConfig`.
    """

    config: TrainConfig
    project = "dwn"
    resume_ignored = frozenset({"export"})

    def setup(self, ctx: Context) -> None:
        cfg, settings = self.config, ctx.settings
        x_train, self.y_train, self.x_test, self.y_test, classes = load_arrays(
            cfg, settings.data_dir, settings.download
        )
        self.encoder = make_encoder(cfg).fit(x_train)
        # Bits are 0/1: keep them as uint8 (4x less memory than float) until a batch is used.
        self.bits_train = self.encoder.binarize(x_train).flatten(1).to(torch.uint8)
        self.bits_test = self.encoder.binarize(self.x_test).flatten(1).to(torch.uint8)
        self.model = build_model(cfg, self.bits_train.shape[1], classes).to(ctx.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, cfg.step_size, cfg.gamma)

    def train_epoch(self, epoch: int, ctx: Context) -> dict[str, Any]:
        cfg, model, optimizer = self.config, self.model, self.optimizer
        model.train()
        size = len(self.bits_train)
        total_loss, correct = 0.0, 0
        batches = ctx.batches(size, cfg.batch_size, desc=f"epoch {epoch}/{cfg.epochs}")
        for step, idx in enumerate(batches):
            x = self.bits_train[idx].to(ctx.device).float()
            y = self.y_train[idx].to(ctx.device)
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            value = loss.item()
            ctx.check_loss(value, step)
            total_loss += value * len(idx)
            correct += (out.argmax(1) == y).sum().item()
        seen = ctx.samples  # this process's samples (all of them without torchrun)
        return {"train/loss": total_loss / seen, "train/accuracy": correct / seen}

    def evaluate(self, epoch: int, ctx: Context) -> dict[str, Any]:
        loss, accuracy, _ = self._evaluate_test(ctx)
        return {"test/loss": loss, "test/accuracy": accuracy}

    def end_epoch(self, epoch: int, row: dict[str, Any], ctx: Context) -> None:
        super().end_epoch(epoch, row, ctx)
        row["lr"] = self.optimizer.param_groups[0]["lr"]

    def finish(self, ctx: Context) -> dict[str, Any]:
        final = dict(ctx.last_row)
        if self.config.export and ctx.is_main:
            final.update(self.export_and_check(ctx.out_dir, ctx))
        return final

    def export_and_check(self, out_dir: str | Path, ctx: Context) -> dict[str, float]:
        """Export to ``out_dir/model.dwn`` and compare the integer-only copy's test
        predictions with PyTorch's: ``export/agreement`` and ``export/test_accuracy``."""
        path = export(self.model, self.encoder, Path(out_dir) / "model.dwn")
        _, _, predictions = self._evaluate_test(ctx)
        compiled = load_compiled(path)
        compiled_predictions = torch.as_tensor(np.asarray(compiled.predict(self.x_test.numpy())))
        return {
            "export/agreement": (compiled_predictions == predictions).float().mean().item(),
            "export/test_accuracy": (compiled_predictions == self.y_test).float().mean().item(),
        }

    def _evaluate_test(self, ctx: Context) -> tuple[float, float, torch.Tensor]:
        batch = self.config.test_batch_size
        return evaluate_model(self.model, self.bits_test, self.y_test, batch, ctx.device)


def train_model(
    cfg: TrainConfig, settings: RunSettings | None = None, **options: Any
) -> dict[str, Any]:
    """Train, evaluate after every epoch and export; returns the final metrics.

    Args:
        cfg: the run's settings.
        settings: the runner's settings (run directory, device, data, tracking).
        **options: instead of ``settings``, its fields as keywords: ``out_dir`` (default
            ``runs/dwn``), ``data_dir``, ``download``, ``resume``, ``device``, ``wandb``,
            ``quiet``.
    """
    if settings is None:
        settings = RunSettings(**{"out_dir": DEFAULT_OUT_DIR, **options})
    elif options:
        settings = RunSettings(**{**settings.model_dump(), **options})
    return fit(DWNExperiment(cfg), settings)
