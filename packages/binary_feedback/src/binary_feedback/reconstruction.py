"""Study B's ``--reconstruction``: a VGG autoencoder trained to give back its input (spec A.4,
the reference's working version; quirk 24 fixed).

* Model: :class:`~.models.autoencoder.VGGAutoencoder` (``--model vgg11|vgg13|vgg16|vgg19``),
  input side a multiple of 32 (default 224; ``--image-size``), binarised like every study-B
  model (first encoder conv and last decoder conv full precision; ConvTranspose2d never).
* Target ``y = x``, in training and in evaluation (the reference fed class labels to the
  evaluation and crashed). ``--reconstruction-target image`` (default): the image in [0, 1],
  which the sigmoid output can reach; ``normalized``: the normalised input itself (the
  reference, roughly [-2.1, 2.6], partly unreachable).
* Loss: mean squared error (``bp``, or ``dfa`` with its 4-D feedback, a strided conv of B);
  other methods build one-hot targets and are refused.
* Metrics: ``train/loss``, ``<split>/loss`` (MSE), ``<split>/best_loss`` and, with the image
  target, ``<split>/psnr`` = 10 log10(1 / MSE) (data range 1); no accuracy. Early stopping
  watches the evaluated MSE as for classification.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from bnn_shared.errors import ShapeError
from bnn_shared.runner import Context
from torch import Tensor, nn

from .experiment import StudyBExperiment
from .models import BuiltModel, build_autoencoder
from .training import Rule
from .training.regimes import LOSSES, Regime

__all__ = ["RECONSTRUCTION", "ReconstructionExperiment", "TargetRule"]

LOSSES.register("mse", (F.mse_loss, F.mse_loss))
#: Study B's regime with a mean squared error on the image (feedback N(0, 1), Adam).
RECONSTRUCTION = Regime("reconstruction", "mse", "normal", "centred", "Adam")


class TargetRule:
    """A training rule that learns to give back its input: ``step(model, x, y, opt)`` runs the
    wrapped rule on ``(x, target(x))``; everything else is the wrapped rule's."""

    def __init__(self, rule: Rule, target) -> None:
        self.rule = rule
        self.target = target
        rule.batch_metrics = self._batch_metrics  # MSE, no accuracy

    def _batch_metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        return {"loss": float(F.mse_loss(output, y)), "correct": 0.0}

    def step(self, model: nn.Module, x: Tensor, y: Tensor, optimizer: Any) -> dict[str, float]:
        return self.rule.step(model, x, self.target(x), optimizer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rule, name)


class ReconstructionExperiment(StudyBExperiment):
    """Study B's experiment with a VGG autoencoder and the input as target (see the module)."""

    regime = RECONSTRUCTION  # type: ignore[assignment]

    def input_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        size = self.config.image_size or 224
        if size % 32:
            raise ShapeError(f"--reconstruction needs --image-size a multiple of 32, got {size}")
        return (shape[0], size, size)

    def network(self, in_shape: tuple[int, ...], num_classes: int) -> BuiltModel:
        return build_autoencoder(self.config.model, in_shape[0])

    def build(self, in_shape: tuple[int, ...], num_classes: int):
        # the images' normalisation as an affine map per channel: x_norm = x * scale + shift
        probe = torch.stack([torch.zeros(in_shape[0]), torch.ones(in_shape[0])])[..., None, None]
        shift, one = self.preprocess(probe)
        self._shift, self._scale = shift[None], (one - shift)[None]
        model, rule, optimizer = super().build(in_shape, max(num_classes, 2))
        return model, TargetRule(rule, self.target), optimizer

    def target(self, x: Tensor) -> Tensor:
        """The reconstruction target of a batch of model inputs (normalised images)."""
        if self.config.reconstruction_target == "normalized":
            return x
        return (x - self._shift.to(x.device)) / self._scale.to(x.device)

    def train_metrics(self, loss: float, accuracy: float, ctx: Context) -> dict[str, float]:
        return {"loss": loss}

    def evaluate(self, epoch: int, ctx: Context) -> dict[str, Any]:
        model = self.model
        total, count = 0.0, 0
        model.eval()
        with torch.no_grad():
            for start in range(0, len(self.x_test), self.batch_size):
                x = self.prepare(self.x_test[start : start + self.batch_size].to(ctx.device))
                total += float(F.mse_loss(model(x), self.target(x), reduction="sum"))
                count += x.numel()
        model.train()
        loss = total / max(count, 1)
        self.eval_losses.append(loss)
        split = self.eval_split
        row = {f"{split}/loss": loss, f"{split}/best_loss": min(self.eval_losses)}
        if self.config.reconstruction_target == "image":
            row[f"{split}/psnr"] = 10 * math.log10(1 / loss) if loss > 0 else math.inf
        return row

    def finish(self, ctx: Context) -> dict[str, Any]:
        super().finish(ctx)  # --save
        row: Mapping[str, Any] = ctx.last_row
        return {key: value for key, value in row.items() if "loss" in key or "psnr" in key}
