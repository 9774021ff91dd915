"""The two studies' regimes: what a study optimises and how its random matrices look.

A *regime* (:class:`Regime`) names a study's loss (:data:`LOSSES`), the init of its DFA/DRTP
feedback matrices (:data:`FEEDBACK_INITS`) and its DRTP target (:data:`DRTP_TARGETS`):
:data:`STUDY_A` is the SAC 2023 MLP study, :data:`STUDY_B` the arXiv 2408.04460 extension
(both in :data:`REGIMES`). Every name is looked up in a registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from bnn_shared.registry import Registry
from torch import Tensor, nn

__all__ = [
    "DRTP_TARGETS",
    "FEEDBACK_INITS",
    "LOSSES",
    "REGIMES",
    "STUDY_A",
    "STUDY_B",
    "Regime",
    "centred_target",
    "get_regime",
    "onehot_target",
    "plus_minus_one",
    "squared_error_mean",
    "squared_error_sum",
]

LossFn = Callable[[Tensor, Tensor], Tensor]


def plus_minus_one(y: Tensor, like: Tensor) -> Tensor:
    """Study A's output encoding: ``2 * onehot(y) - 1`` in ``like``'s dtype."""
    return 2 * F.one_hot(y, like.shape[-1]).to(like.dtype) - 1


def squared_error_sum(output: Tensor, y: Tensor) -> Tensor:
    """Study A's objective ``sum_{n,c} (y_hat - t)^2`` with ``t = 2 onehot - 1``.

    Its gradient w.r.t. the output is the per-sample error ``e = 2 (y_hat - t)`` (not averaged),
    so every weight gradient is summed over the batch, as in the NumPy reference.
    """
    return (output - plus_minus_one(y, output)).pow(2).sum()


def squared_error_mean(output: Tensor, y: Tensor) -> Tensor:
    """Study A's logged loss: ``mean (y_hat - t)^2`` over every entry of the batch."""
    return (output - plus_minus_one(y, output)).pow(2).mean()


#: loss name -> (training objective, logged loss), both on the model output and labels.
LOSSES: Registry[tuple[LossFn, LossFn]] = Registry("loss", flag="loss")
LOSSES.register("squared_error", (squared_error_sum, squared_error_mean))
LOSSES.register("cross_entropy", (F.cross_entropy, F.cross_entropy))


def onehot_target(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """Raw one-hot ``{0, 1}`` (study A's DRTP target)."""
    return F.one_hot(y, num_classes).to(dtype)


def centred_target(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """Centred one-hot ``onehot - 1/C`` (study B's DRTP target and HSIC labels)."""
    return onehot_target(y, num_classes, dtype) - 1.0 / num_classes


#: DRTP target name -> ``fn(y, num_classes, dtype)``.
DRTP_TARGETS: Registry[Callable[[Tensor, int, torch.dtype], Tensor]] = Registry(
    "DRTP target", flag="drtp_target"
)
DRTP_TARGETS.register("onehot", onehot_target)
DRTP_TARGETS.register("centred", centred_target)

#: Feedback-matrix init name -> in-place initialiser of a ``(C, features)`` tensor. The
#: Kaiming variants use fan_in (= features) and the linear gain, as the study-B reference.
FEEDBACK_INITS: Registry[Callable[[Tensor], Any]] = Registry("feedback init", flag="bw_init")
FEEDBACK_INITS.register("uniform", lambda t: t.uniform_(-1.0, 1.0))
FEEDBACK_INITS.register("normal", lambda t: t.normal_())
FEEDBACK_INITS.register(
    "kaiming_uniform", lambda t: nn.init.kaiming_uniform_(t, nonlinearity="linear")
)
FEEDBACK_INITS.register(
    "kaiming_normal", lambda t: nn.init.kaiming_normal_(t, nonlinearity="linear")
)


@dataclass(frozen=True)
class Regime:
    """What a study optimises, and the shape of its fixed random matrices and targets.

    Args:
        name: short name, used in reprs and logs.
        loss: key of :data:`LOSSES`: ``"squared_error"`` (study A; the model output is already
            tanh-ed) or ``"cross_entropy"`` (study B; the output is logits).
        feedback_init: key of :data:`FEEDBACK_INITS` for DFA/DRTP matrices: ``"uniform"``
            U(-1, 1) (study A) or ``"normal"`` N(0, 1) (study B's default ``--bw-init``).
        drtp_target: key of :data:`DRTP_TARGETS`: ``"onehot"`` (study A) or ``"centred"``.
        optimizer: name of the ``torch.optim`` class the study uses (the trainer builds it).
    """

    name: str
    loss: str
    feedback_init: str
    drtp_target: str
    optimizer: str

    def __post_init__(self) -> None:
        LOSSES.canonical(self.loss)
        FEEDBACK_INITS.canonical(self.feedback_init)
        DRTP_TARGETS.canonical(self.drtp_target)

    def training_loss(self, output: Tensor, y: Tensor) -> Tensor:
        """The objective whose gradient drives learning."""
        return LOSSES.get(self.loss)[0](output, y)

    def logged_loss(self, output: Tensor, y: Tensor) -> Tensor:
        """The loss the study logs (study A: a mean, although it trains on a sum)."""
        return LOSSES.get(self.loss)[1](output, y)

    def target_signal(self, y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
        """DRTP's target ``s`` (``(N, C)``), projected to each layer by its matrix."""
        return DRTP_TARGETS.get(self.drtp_target)(y, num_classes, dtype)


#: Study A (SAC 2023, NumPy MLPs): summed squared error on tanh outputs, plain SGD.
STUDY_A = Regime("study_a", "squared_error", "uniform", "onehot", "SGD")
#: Study B (arXiv 2408.04460, PyTorch): mean cross-entropy on logits, Adam.
STUDY_B = Regime("study_b", "cross_entropy", "normal", "centred", "Adam")
REGIMES: Registry[Regime] = Registry("regime", flag="regime")
REGIMES.register("study_a", STUDY_A)
REGIMES.register("study_b", STUDY_B)


def get_regime(regime: Regime | str) -> Regime:
    """A :class:`Regime`, or the preset named ``"study_a"`` / ``"study_b"`` (any case)."""
    if isinstance(regime, Regime):
        return regime
    return REGIMES.get(str(regime))
