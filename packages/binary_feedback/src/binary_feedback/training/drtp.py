"""Direct Random Target Projection: a fixed random projection of the target trains each layer."""

from __future__ import annotations

from functools import partial

from bnn_shared.errors import ShapeError
from torch import Tensor, nn

from .base import LocalRule, broadcast_signal, feature_size, weight_layers
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
    output layer is trained by the regime's loss. One implementation serves both studies.

    ``slow=True`` (study B's ``--slow-drtp``) is the reference's hook-based variant, which
    crashes at start there (spec 7, quirk 1: its class takes no ``init``); here it works and
    honours ``bw_init`` (quirk 32). Nothing is detached: the model runs forward in train
    mode, a full backward hook on every Linear / Conv1d / Conv2d but the first *replaces* the
    gradient w.r.t. the layer's input by ``s @ P_m`` (broadcast as above), and the regime's
    loss is backpropagated. The output layer's weights thus get the true gradient, every
    other weight the projected target passed back through its local BN and STE; skip paths
    still carry backprop (memory as BP's) and residual blocks are not hooked. A hooked layer
    with more than one tensor input is a ShapeError.

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
        slow: bool = False,  # True: the hook variant (--slow-drtp)
    ) -> None:
        super().__init__(regime, num_classes)
        init = bw_init or self.regime.feedback_init
        self.bw_init = FEEDBACK_INITS.canonical(init)
        self.slow = bool(slow)
        self._target: Tensor | None = None

    # -- the hook variant (slow=True)

    def _register(self, model: nn.Module) -> None:
        if not self.slow:
            super()._register(model)
            return
        for name, module in list(weight_layers(model).items())[1:]:
            self._handles.append(module.register_forward_pre_hook(partial(self._draw, name)))
            hook = partial(self._replace_input_grad, name)
            self._handles.append(module.register_full_backward_hook(hook))
        for module in model.modules():  # a full backward hook forbids in-place edits
            if getattr(module, "inplace", False) is True:
                module.inplace = False

    def _draw(self, name: str, module: nn.Module, args: tuple) -> None:
        """Draw the layer's matrix at the first batch (in the forward pass, layer order)."""
        h = args[0]
        if self._active and h.requires_grad:
            self._matrix(name, feature_size(h), h, self.bw_init)

    def _replace_input_grad(self, name: str, module: nn.Module, grad_input, grad_output):
        if not self._active or self._target is None or grad_input[0] is None:
            return None  # the first hooked input may need no grad
        if len(grad_input) > 1:
            raise ShapeError(f"drtp (slow): layer {name!r} has {len(grad_input)} inputs")
        like = grad_input[0]
        target = self.regime.target_signal(self._target, self.num_classes, like.dtype)
        return (broadcast_signal(target @ self.matrices[name], like),)

    def _compute_gradients(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        if not self.slow:
            return super()._compute_gradients(model, x, y)
        self._target = y  # the labels; the target is made in each gradient's dtype
        try:
            output = model(x)
            self.regime.training_loss(output, y).backward()
        finally:
            self._target = None
        return output

    # -- the fast variant (default)

    def _train_segment(self, name: str, h: Tensor, y: Tensor) -> None:
        projection = self._matrix(name, feature_size(h), h, self.bw_init)
        target = self.regime.target_signal(y, self.num_classes, h.dtype)
        h.backward(broadcast_signal(target @ projection, h))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bw_init={self.bw_init}, slow={self.slow}"
