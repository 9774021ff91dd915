"""Backpropagation (the studies' "BP" / "GD"): plain autograd through the sign STEs."""

from __future__ import annotations

from torch import Tensor, nn

from .base import Rule

__all__ = ["BP"]


class BP(Rule):
    """Backpropagation: ``loss.backward()`` through every layer, activation STE and BN.

    The loss is the regime's: study A's summed squared error on the tanh output (so the
    gradients are batch sums, as in the NumPy reference), study B's mean cross-entropy.
    Binary layers pass the error down through their binary weights and give the latent
    weights the straight-through gradient.

    Args:
        regime, num_classes: see :class:`~binary_feedback.training.base.Rule`.
    """

    name = "bp"

    def _compute_gradients(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        output = model(x)
        self.regime.training_loss(output, y).backward()
        return output
