"""Direct Random Target Projection: a fixed random projection of the target trains each layer."""

from __future__ import annotations

from torch import Tensor

from .base import LocalRule, broadcast_signal, feature_size
from .regimes import FEEDBACK_INITS, Regime

__all__ = ["DRTP"]


class DRTP(LocalRule):
    """Direct Random Target Projection (Frenkel et al. 2021), the reference's fast variant.

    At the input ``h`` of every weight layer but the first, and of every local block, the
    gradient of the segment that produced ``h`` is set to the projected target::

        dL/dh := s @ P_m,   P_m: (C, features of h), fixed, never trained

    (repeated over H x W for conv inputs, over the tokens for 3-D inputs), backpropagated
    at once during the forward pass, and ``h`` is detached. ``s`` depends only on the label:
    study A's raw one-hot ``{0, 1}``, study B's centred one-hot ``onehot - 1/C``; its sign is
    taken as is, so e.g. ``grad W_1 = x^T ((s @ P_2) * act'(z_1))`` in a two-layer MLP. The
    output layer is trained by the regime's loss. One implementation serves both studies
    (the reference's hook-based ``--slow-drtp`` variant crashes; spec 7, bug 1).

    Args:
        regime, num_classes: see :class:`~binary_feedback.training.base.Rule`.
        bw_init: init of the matrices (a name of ``FEEDBACK_INITS``); default the regime's
            (study A U(-1, 1), study B N(0, 1); ``--bw-init``).

    References: Frenkel, Lefebvre, Bol, "Learning Without Feedback: Fixed Random Learning
    Signals Allow for Feedforward Training of Deep Neural Networks", Front. Neurosci. 2021.
    """

    name = "drtp"

    def __init__(
        self,
        regime: Regime | str,
        num_classes: int,
        *,
        bw_init: str | None = None,  # None: the regime's feedback_init
    ) -> None:
        super().__init__(regime, num_classes)
        init = bw_init or self.regime.feedback_init
        self.bw_init = FEEDBACK_INITS.canonical(init)

    def _train_segment(self, name: str, h: Tensor, y: Tensor) -> None:
        projection = self._matrix(name, feature_size(h), h, self.bw_init)
        target = self.regime.target_signal(y, self.num_classes, h.dtype)
        h.backward(broadcast_signal(target @ projection, h))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bw_init={self.bw_init}"
