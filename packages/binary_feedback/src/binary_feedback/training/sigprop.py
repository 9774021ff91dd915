"""SigpropTL (Sigprop target loop; "PEPITA" in study B's code): learning from a second,
error-modulated forward pass, without any backward pass through the hidden layers."""

from __future__ import annotations

import torch
from bnn_shared.layers import latent_weight
from bnn_shared.quantizers import Quantizer
from torch import Tensor, nn

from ..commons import Activation, StudyABatchNorm1d
from .base import (
    WEIGHT_TYPES,
    Rule,
    check_choice,
    output_error,
    output_layer,
    training_mode,
    weight_layers,
)
from .regimes import Regime

__all__ = [
    "ACTIVATION_TYPES",
    "NORM_TYPES",
    "is_activation",
    "layer_gradients",
    "pair_layers",
    "SigpropTL",
]

#: Modules that end a weight layer's segment: this package's activations, the core's
#: quantizer modules and torch's activations. Others join by carrying ``is_activation = True``.
ACTIVATION_TYPES = (
    Activation,
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.Sigmoid,
    nn.Softmax,
    nn.Softplus,
    nn.SELU,
    nn.ELU,
    nn.CELU,
    nn.GELU,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.Mish,
    Quantizer,
)
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, StudyABatchNorm1d, nn.GroupNorm, nn.LayerNorm)


def is_activation(module: nn.Module) -> bool:
    """Whether ``module`` is an activation (the end of a weight layer's segment)."""
    return isinstance(module, ACTIVATION_TYPES) or getattr(module, "is_activation", False) is True


def layer_gradients(module: nn.Module, pre: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
    """Weight and bias gradients ``delta^T pre`` summed over the batch (the reference's scaling).

    ``pre`` is the layer input, ``delta`` has the layer output's shape. Conv2d: the conv
    weight gradient divided by the number of output positions H x W; Conv1d: divided by the
    output length; Linear on a 3-D (token) input: summed over tokens, divided by
    ``out_features``. The bias gradient is ``delta`` summed over the batch and positions.
    """
    shape = latent_weight(module).shape
    if isinstance(module, nn.Conv2d):
        grad = torch.nn.grad.conv2d_weight(
            pre, shape, delta, module.stride, module.padding, module.dilation, module.groups
        )
        return grad / (delta.shape[2] * delta.shape[3]), delta.sum(dim=(0, 2, 3))
    if isinstance(module, nn.Conv1d):
        grad = torch.nn.grad.conv1d_weight(
            pre, shape, delta, module.stride, module.padding, module.dilation, module.groups
        )
        return grad / delta.shape[2], delta.sum(dim=(0, 2))
    rows = delta.reshape(-1, delta.shape[-1])
    grad = rows.T @ pre.reshape(-1, pre.shape[-1])
    if delta.dim() > 2:
        grad = grad / module.out_features
    return grad, rows.sum(dim=0)


def pair_layers(model: nn.Module, x: Tensor, head: nn.Module) -> dict[nn.Module, nn.Module]:
    """Structure pass: pair each weight layer (but ``head``) with the activation after it.

    Runs one eval-mode, no-grad forward on ``x`` recording the calls of the weight layers
    and activations (those inside a weight layer, such as quantizers, excluded). A weight
    layer is paired with the next activation called after it, or with itself (its own
    output is used) when another weight layer comes first or when the activation's output
    has another shape (a pooling in between).
    """
    weights = list(weight_layers(model).values())
    inner = {id(sub) for w in weights for sub in w.modules() if sub is not w}
    calls: list[tuple[nn.Module, torch.Size]] = []

    def record(module: nn.Module, args: tuple, output: Tensor) -> None:
        calls.append((module, output.shape))

    watched = [
        m
        for m in model.modules()
        if id(m) not in inner and (isinstance(m, WEIGHT_TYPES) or is_activation(m))
    ]
    handles = [m.register_forward_hook(record) for m in watched]
    try:
        with training_mode(model, False), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return _pair_calls(calls, head)


def _pair_calls(calls: list[tuple[nn.Module, torch.Size]], head: nn.Module) -> dict:
    pairs: dict[nn.Module, nn.Module] = {}
    pending: tuple[nn.Module, torch.Size] | None = None  # weight layer awaiting its activation
    for module, shape in calls:
        if isinstance(module, WEIGHT_TYPES):
            if pending is not None:
                pairs[pending[0]] = pending[0]
            pending = None if module is head else (module, shape)
        elif pending is not None:
            weight, weight_shape = pending
            pairs[weight] = module if shape == weight_shape else weight
            pending = None
    if pending is not None:
        pairs[pending[0]] = pending[0]
    return pairs


def _accumulate(param: Tensor, grad: Tensor) -> None:
    param.grad = grad if param.grad is None else param.grad + grad


def _halves(t: Tensor) -> tuple[Tensor, Tensor]:
    """The clean and the modulated halves of a second-pass tensor."""
    n = t.shape[0] // 2
    return t[:n], t[n:]


def _affine_view(module: nn.Module, param: Tensor, like: Tensor) -> Tensor:
    if isinstance(module, nn.LayerNorm):
        return param
    return param.view(1, -1, *([1] * (like.dim() - 2)))


def _affine_sum(module: nn.Module, t: Tensor, param: Tensor) -> Tensor:
    if isinstance(module, nn.LayerNorm):
        return t.sum(dim=tuple(range(t.dim() - param.dim())))
    return t.sum(dim=[d for d in range(t.dim()) if d != 1])


class SigpropTL(Rule):
    """SigpropTL / PEPITA as in study B's reference (spec 3.5), one step in five parts.

    1. Structure (first batch): each weight layer but the output layer is paired with the
       activation after it (:func:`pair_layers`).
    2. Pass 1 in eval mode, without grad up to the output layer: ``y_hat``, the regime's
       loss, backward (the output layer's true gradient) and ``e = dLoss/d y_hat``.
    3. ``x_err = x + reshape(e @ F)``, ``F`` (C, D) fixed, D = input size per sample,
       drawn N(0, 1/D) (Kaiming normal, fan_in, linear).
    4. Pass 2 without grad on ``[x; x_err]``; for each pair, ``delta = h - h_err`` at the
       activation output and ``grad W = delta^T x_pre`` (:func:`layer_gradients`), written
       onto the latent weights (bypassing the Sign STE).
    5. ``optimizer.step()``: ``W -= lr (h - h_err) x^T`` for SGD, PEPITA's sign.

    The reference's quirks are the defaults (spec 7, items 4-7); each has an option.

    Args:
        regime, num_classes: see :class:`~binary_feedback.training.base.Rule`.
        gain: ``--pepita-gain``. Default 1.0.
        gain_mode: ``"reference"`` (default): F ~ N(0, 1/D) whatever the gain, as in the
            published runs (Kaiming init with a linear nonlinearity ignores its ``a``);
            ``"fixed"``: F is scaled by ``gain``.
        second_pass: ``"train"`` (default, reference): pass 2 in train mode, so BN uses the
            2N batch statistics (and updates its running stats) and the two halves get
            different dropout masks; ``"eval"``: pass 2 in eval mode.
        train_norm_affine: False (default, reference): BN/LayerNorm/GroupNorm affine
            parameters get no gradient and stay at init; True: they get the same rule at
            their own output, ``grad gamma = sum delta * x_hat``, ``grad beta = sum delta``.
        presynaptic: ``"clean"`` (default, reference): ``x_pre`` is the clean half's layer
            input; ``"modulated"``: the modulated half's (the original PEPITA).

    References: Dellaferrera, Kreiman, "Error-driven Input Modulation: Solving the Credit
    Assignment Problem without a Backward Pass" (PEPITA), ICML 2022; Kohan et al.,
    "Signal Propagation" (Sigprop), 2022; Crulis et al., arXiv 2408.04460.
    """

    name = "sigprop"

    def __init__(
        self,
        regime: Regime | str,
        num_classes: int,
        *,
        gain: float = 1.0,  # --pepita-gain
        gain_mode: str = "reference",  # "reference": gain ignored; "fixed": F scaled by gain
        second_pass: str = "train",  # mode of the modulated pass: "train" or "eval"
        train_norm_affine: bool = False,  # give norm layers' affine parameters a gradient
        presynaptic: str = "clean",  # input of the update: "clean" or "modulated" half
    ) -> None:
        super().__init__(regime, num_classes)
        self.gain = float(gain)
        self.gain_mode = check_choice("gain_mode", gain_mode, ("reference", "fixed"), self.name)
        self.second_pass = check_choice("second_pass", second_pass, ("train", "eval"), self.name)
        self.train_norm_affine = bool(train_norm_affine)
        choices = ("clean", "modulated")
        self.presynaptic = check_choice("presynaptic", presynaptic, choices, self.name)
        self._pairs: dict[nn.Module, nn.Module] | None = None
        self._phase: str | None = None  # "first" / "second" while a pass runs
        self._inputs: dict[nn.Module, Tensor] = {}
        self._awaiting: dict[nn.Module, nn.Module] = {}  # partner -> weight layer

    # -- hooks

    def _register(self, model: nn.Module) -> None:
        self._pairs = None
        head = output_layer(model)
        self._handles.append(head.register_forward_pre_hook(self._grad_from_head))

    def _grad_from_head(self, module: nn.Module, args: tuple) -> None:
        """Pass 1 runs without grad until the output layer, with grad from there on."""
        if self._phase == "first":
            torch.set_grad_enabled(True)

    def _discover(self, model: nn.Module, x: Tensor) -> None:
        self._pairs = pair_layers(model, x, output_layer(model))
        for weight in self._pairs:
            self._handles.append(weight.register_forward_pre_hook(self._store_input))
        for partner in set(self._pairs.values()):
            self._handles.append(partner.register_forward_hook(self._apply_delta))
        if self.train_norm_affine:
            for module in model.modules():
                if isinstance(module, NORM_TYPES) and module.weight is not None:
                    self._handles.append(module.register_forward_hook(self._norm_delta))

    def _presynaptic(self, t: Tensor) -> Tensor:
        clean, modulated = _halves(t)
        return clean if self.presynaptic == "clean" else modulated

    def _store_input(self, module: nn.Module, args: tuple) -> None:
        if self._phase != "second":
            return
        quantize = getattr(module, "quantize_input", None)  # quant layers: the input they use
        pre = args[0] if quantize is None else quantize(args[0])
        self._inputs[module] = self._presynaptic(pre)
        self._awaiting[self._pairs[module]] = module

    def _apply_delta(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        weight = self._awaiting.pop(module, None) if self._phase == "second" else None
        if weight is None:
            return
        clean, modulated = _halves(output)
        grad_w, grad_b = layer_gradients(weight, self._inputs.pop(weight), clean - modulated)
        _accumulate(latent_weight(weight), grad_w)
        if weight.bias is not None:
            _accumulate(weight.bias, grad_b)

    def _norm_delta(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        if self._phase != "second":
            return
        clean, modulated = _halves(output)
        delta, post = clean - modulated, self._presynaptic(output)
        gamma = torch.where(module.weight == 0, torch.ones_like(module.weight), module.weight)
        beta = module.bias if module.bias is not None else torch.zeros_like(gamma)
        x_hat = (post - _affine_view(module, beta, post)) / _affine_view(module, gamma, post)
        _accumulate(module.weight, _affine_sum(module, delta * x_hat, module.weight))
        if module.bias is not None:
            _accumulate(module.bias, _affine_sum(module, delta, module.bias))

    # -- step

    def _compute_gradients(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        if self._pairs is None:
            self._discover(model, x)
        output, error = self._first_pass(model, x, y)
        feedback = self._matrix("F", x[0].numel(), x, "kaiming_normal")
        if self.gain_mode == "fixed":
            feedback = feedback * self.gain
        self._second_pass(model, torch.cat([x, x + (error @ feedback).view_as(x)]))
        return output

    def _first_pass(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        self._phase = "first"
        try:
            with training_mode(model, False), torch.no_grad():
                output = model(x)  # the output layer's pre-hook turns grad on
        finally:
            self._phase = None
        error = output_error(self.regime.training_loss(output, y), output)
        output.backward(error)
        return output, error

    def _second_pass(self, model: nn.Module, batch: Tensor) -> None:
        self._phase = "second"
        try:
            with training_mode(model, self.second_pass == "train"), torch.no_grad():
                model(batch)
        finally:
            self._phase = None
            self._inputs.clear()
            self._awaiting.clear()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, gain={self.gain}, gain_mode={self.gain_mode}, "
            f"second_pass={self.second_pass}, train_norm_affine={self.train_norm_affine}, "
            f"presynaptic={self.presynaptic}"
        )
