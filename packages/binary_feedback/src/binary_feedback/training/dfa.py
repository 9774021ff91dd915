"""Direct Feedback Alignment: the output error sent to every layer by a fixed random matrix."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from bnn_shared.errors import ShapeError
from torch import Tensor, nn

from .base import Rule, broadcast_signal, feature_size, output_error, weight_layers
from .regimes import FEEDBACK_INITS, Regime

__all__ = ["DFA"]


class DFA(Rule):
    """Direct Feedback Alignment (Nøkland 2016), as in both studies' references.

    With ``e = dLoss/d y_hat`` (study A: ``2 (y_hat - t)`` per sample; study B:
    ``(softmax - onehot) / N``), the gradient w.r.t. the input ``h`` of every weight layer m
    but the first is *replaced* by the projected error::

        dL/dh := e @ B_m,   B_m: (C, features of h), fixed, never trained

    repeated over H x W for conv inputs and over the tokens for 3-D inputs (Mixer; Conv1d
    included, whose matrix maps to the last dim). The replaced gradient flows back through the
    preceding BN and activation STE into the previous weight layer, so
    ``grad W_{m-1} = h_{m-2}^T ((e @ B_m) * act'(z_{m-1}))``; the output layer gets the true
    gradient. Study A's "signal at the activation output" (spec 2.3) is the same rule.

    With an image target (``--reconstruction``, a 4-D ``y``), ``e`` is ``(N, C_t, H_t, W_t)``
    and a conv layer's input ``(N, C, H, W)`` gets ``conv2d(e, B_m, stride=k)`` instead, with
    ``B_m: (C, C_t, k_h, k_w)`` fixed and kernel = stride = ``(H_t // H, W_t // W)`` (spec A.4).

    Implementation: a full backward hook on each hooked layer (the reference's mechanism);
    in-place modules (``inplace=True`` ReLU, Dropout) are switched to out-of-place by
    :meth:`prepare`, since a full backward hook forbids in-place edits of its outputs. A
    model that declares ``feedback_chain = True`` (no skip path: each hooked layer's input
    feeds that layer only) is trained the detached way, which gives the same gradients
    without the input-gradient products the hooks would discard.

    Args:
        regime, num_classes: see :class:`~binary_feedback.training.base.Rule`.
        bw_init: init of the matrices (a name of ``FEEDBACK_INITS``); default the regime's
            (study A U(-1, 1), study B N(0, 1); ``--bw-init``).
        detach: False (default, the published rule): nothing is detached, so skip paths
            still carry true backprop of the downstream signal and memory equals BP's.
            True: every hooked layer's input is detached in the forward pass and receives
            ``e @ B_m`` directly; each segment is then trained only by its own signal and
            its graph is freed early.

    References: Nøkland, "Direct Feedback Alignment Provides Learning in Deep Neural
    Networks", NeurIPS 2016; Crulis et al., SAC 2023 and arXiv 2408.04460.
    """

    name = "dfa"

    def __init__(
        self,
        regime: Regime | str,
        num_classes: int,
        *,
        bw_init: str | None = None,  # None: the regime's feedback_init
        detach: bool = False,  # True: detached variant (not what the tables measure)
    ) -> None:
        super().__init__(regime, num_classes)
        init = bw_init or self.regime.feedback_init
        self.bw_init = FEEDBACK_INITS.canonical(init)
        self.detach = bool(detach)
        self._cut = self.detach  # detach in the forward pass (set per model by _register)
        self._error: Tensor | None = None
        self._detached: list[tuple[str, Tensor]] = []
        self._image_target: tuple[int, ...] | None = None  # a 4-D target's shape (A.4)

    def _register(self, model: nn.Module) -> None:
        # A chain (each hooked layer's input feeds that layer only, no skip path) gets the
        # same gradients from either variant; the detached one skips the input-gradient
        # products ``delta @ W`` that the full backward hooks would compute and throw away.
        self._cut = self.detach or getattr(model, "feedback_chain", False) is True
        hooked = list(weight_layers(model).items())[1:]  # the first layer's input needs no grad
        for name, module in hooked:
            self._handles.append(module.register_forward_pre_hook(partial(self._pre_hook, name)))
            if not self._cut:
                hook = partial(self._replace_input_grad, name)
                self._handles.append(module.register_full_backward_hook(hook))
        if not self._cut:
            for module in model.modules():
                if getattr(module, "inplace", False) is True:
                    module.inplace = False

    def _pre_hook(self, name: str, module: nn.Module, args: tuple) -> tuple | None:
        """Draw the layer's matrix at the first batch; detach the input in detached mode."""
        h = args[0]
        if not (self._active and h.requires_grad):
            return None
        if self._image_target is not None:
            self._conv_matrix(name, h)
        else:
            self._matrix(name, feature_size(h), h, self.bw_init)
        if not self._cut:
            return None
        self._detached.append((name, h))
        return (h.detach(), *args[1:])

    def _replace_input_grad(self, name: str, module: nn.Module, grad_input, grad_output):
        """Full backward hook: dL/d input := broadcast(e @ B_m)."""
        if not self._active or grad_input[0] is None or self._error is None:
            return None
        signal = self._signal(name, grad_input[0])
        return (signal, *grad_input[1:])

    def _signal(self, name: str, like: Tensor) -> Tensor:
        if self._error.dim() == 4:  # an image target: a strided conv of B (spec A.4)
            matrix = self.matrices[name]
            return F.conv2d(self._error, matrix, stride=tuple(matrix.shape[-2:]))
        return broadcast_signal(self._error @ self.matrices[name], like)

    def _conv_matrix(self, name: str, h: Tensor) -> Tensor:
        """The fixed ``(C_in, C_target, kh, kw)`` feedback of a layer whose input ``h`` is
        ``(N, C_in, H, W)``, for a target ``(N, C_target, H_t, W_t)``: kernel = stride =
        ``(H_t // H, W_t // W)``, drawn per ``bw_init`` at first use (reconstruction, A.4)."""
        target = self._image_target
        if h.dim() != 4 or target[-2] % h.shape[-2] or target[-1] % h.shape[-1]:
            raise ShapeError(
                f"dfa: an image target {tuple(target[1:])} needs conv inputs whose sides divide "
                f"its own; layer {name!r} gets {tuple(h.shape[1:])}"
            )
        shape = (h.shape[1], target[1], target[-2] // h.shape[-2], target[-1] // h.shape[-1])

        def draw() -> Tensor:
            matrix = torch.empty(shape, dtype=h.dtype)
            FEEDBACK_INITS.get(self.bw_init)(matrix)
            return matrix

        return self._stored(name, shape, h, draw)

    def _compute_gradients(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        self._detached.clear()
        self._image_target = tuple(y.shape) if y.dim() == 4 else None
        try:
            output = model(x)
            self._error = output_error(self.regime.training_loss(output, y), output)
            tensors = [output] + [h for _, h in self._detached]
            grads = [self._error] + [self._signal(name, h) for name, h in self._detached]
            torch.autograd.backward(tensors, grads)
        finally:
            self._error = None
            self._detached.clear()
        return output

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bw_init={self.bw_init}, detach={self.detach}"
