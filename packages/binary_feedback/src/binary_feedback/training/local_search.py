"""Local search (study B's ``ls``): random sign flips of one layer, kept when they help."""

from __future__ import annotations

from typing import Any

import torch
from bnn_shared.errors import ConfigError
from torch import Tensor, nn

from .base import Rule, training_mode, weight_layers
from .regimes import Regime

__all__ = ["LocalSearch", "pick"]


def pick(candidates: list[Any]) -> Any:
    """One of ``candidates``, uniformly, from torch's global generator."""
    if not candidates:
        raise ConfigError("the model has no layer this training method can pick")
    return candidates[int(torch.randint(len(candidates), ()))]


class LocalSearch(Rule):
    """Study B's local search (``--method ls``): a gradient-free hill climb on each batch.

    Under ``no_grad`` and in eval mode (BN running statistics, no dropout):

    1. pick one Linear / Conv1d / Conv2d uniformly, the full-precision first and last
       layers included;
    2. fitness ``f1`` of the batch: the regime's loss, or minus the accuracy with
       ``accuracy=True`` (``--ls-accuracy``);
    3. negate the entries of each of its parameters (the latent weight of a binarised layer,
       which flips its sign, and the bias) where ``torch.rand(shape) < mut_prob`` (drawn on
       the CPU);
    4. keep the flip only if the new fitness ``f2 < f1`` strictly, else restore.

    A train-mode forward under ``no_grad`` then updates the BN running statistics. The
    optimizer is never stepped, so ``--lr``, ``--opt`` and ``--wd`` have no effect; the
    logged loss and predictions are those of the kept weights (eval mode).

    Args:
        regime, num_classes: see :class:`~binary_feedback.training.base.Rule`.
        mut_prob: probability of flipping each entry (``--mut-prob``, default 0.1).
        accuracy: fitness is the batch accuracy instead of the loss (``--ls-accuracy``).
    """

    name = "ls"

    def __init__(
        self,
        regime: Regime | str,
        num_classes: int,
        *,
        mut_prob: float = 0.1,
        accuracy: bool = False,
    ) -> None:
        super().__init__(regime, num_classes)
        if isinstance(mut_prob, bool) or not isinstance(mut_prob, int | float):
            raise ConfigError(f"ls: mut_prob must be a number in [0, 1], got {mut_prob!r}")
        if not 0 <= mut_prob <= 1:
            raise ConfigError(f"ls: mut_prob must be a number in [0, 1], got {mut_prob!r}")
        self.mut_prob = float(mut_prob)
        self.accuracy = bool(accuracy)

    def fitness(self, output: Tensor, y: Tensor) -> float:
        """What the search minimises: the regime's loss, or minus the accuracy."""
        if self.accuracy:
            return -float((output.argmax(dim=-1) == y).double().mean())
        return float(self.regime.training_loss(output, y))

    def step(self, model: nn.Module, x: Tensor, y: Tensor, optimizer: Any) -> dict[str, float]:
        """One flip trial on the batch; the optimizer is left alone."""
        if self._model is not model:
            self.prepare(model)
        with torch.no_grad():
            with training_mode(model, False):
                output = self._search(model, x, y)
            with training_mode(model, True):
                model(x)  # BN running statistics, as the reference's train-mode pass
        return self.batch_metrics(output, y)

    def _search(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        module = pick(list(weight_layers(model).values()))
        params = list(module.parameters())
        saved = [p.detach().clone() for p in params]
        before = model(x)
        first = self.fitness(before, y)
        for p in params:
            mask = torch.rand(p.shape) < self.mut_prob  # on the CPU, as the reference
            p.copy_(torch.where(mask.to(p.device), -p, p))
        after = model(x)
        if self.fitness(after, y) < first:
            return after
        for p, value in zip(params, saved, strict=True):
            p.copy_(value)
        return before

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mut_prob={self.mut_prob}, accuracy={self.accuracy}"
