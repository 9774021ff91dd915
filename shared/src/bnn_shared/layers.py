"""Quantized layers: ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` with larq's quantizer slots.

A quant layer keeps a latent float ``weight`` (the parameter the optimizer updates) and holds
references to two quantizers: ``input_quantizer`` applied to the input and ``kernel_quantizer``
applied to the weight at every forward. ``quantized_weight()`` returns the tensor the forward
pass really uses; ``bnn_shared.export.save_binary`` stores it bit-packed. Without quantizers a
quant layer computes exactly what its PyTorch parent computes, and its ``state_dict`` has the
same keys, so float checkpoints load into it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import quantizers
from .errors import ConfigError
from .quantizers import Quantizer

__all__ = [
    "QuantLayerMixin",
    "QuantLinear",
    "QuantConv1d",
    "QuantConv2d",
    "clip_weights_",
    "latent_weight",
]

#: What ``input_quantizer`` / ``kernel_quantizer`` accept: anything :func:`quantizers.get` takes.
QuantizerLike = str | Quantizer | type[Quantizer] | Callable[[Tensor], Tensor] | None


class QuantLayerMixin:
    """Quantizer slots shared by every quant layer (mix in before the ``nn`` layer class).

    Provides ``input_quantizer`` and ``kernel_quantizer`` (child modules or None),
    :meth:`quantize_input`, :meth:`quantized_weight` and the ``input_precision`` /
    ``kernel_precision`` properties read by the bit-aware summary.
    """

    weight: nn.Parameter
    input_quantizer: Quantizer | None
    kernel_quantizer: Quantizer | None

    def _init_quantizers(self, input_quantizer: QuantizerLike, kernel_quantizer: QuantizerLike):
        self.register_module("input_quantizer", quantizers.get(input_quantizer))
        self.register_module("kernel_quantizer", quantizers.get(kernel_quantizer))

    def quantize_input(self, x: Tensor) -> Tensor:
        """The input as the layer sees it: ``input_quantizer(x)``, or ``x`` without one."""
        return x if self.input_quantizer is None else self.input_quantizer(x)

    def quantized_weight(self) -> Tensor:
        """The weight the forward pass uses: ``kernel_quantizer(weight)``, or ``weight``.

        Differentiable with respect to the latent float ``weight`` (through the quantizer's
        pseudo-gradient); call it under ``torch.no_grad()`` to read or save the binary weight.
        """
        return self.weight if self.kernel_quantizer is None else self.kernel_quantizer(self.weight)

    @property
    def kernel_precision(self) -> int:
        """Bits per weight value: the kernel quantizer's ``precision``, 32 without one."""
        return 32 if self.kernel_quantizer is None else int(self.kernel_quantizer.precision)

    @property
    def weight_precision(self) -> int:
        """Bits per value of :meth:`quantized_weight` (the name every quantized layer of the
        project uses; equal to :attr:`kernel_precision`)."""
        return self.kernel_precision

    @property
    def input_precision(self) -> int:
        """Bits per input value: the input quantizer's ``precision``, 32 without one."""
        return 32 if self.input_quantizer is None else int(self.input_quantizer.precision)


class QuantLinear(QuantLayerMixin, nn.Linear):
    """``nn.Linear`` with quantized input and weight: ``y = q_in(x) @ q_k(W).T + b``.

    Why are my trained weights floats? ``weight`` is the latent float weight the optimizer
    updates; it is never overwritten. ``quantized_weight()`` returns the binary/ternary tensor
    used in forward (e.g. exactly ±1 with ``kernel_quantizer="ste_sign"``), and
    ``bnn_shared.export.save_binary`` stores it bit-packed. The bias is not quantized.

    Args:
        in_features, out_features, bias, device, dtype: as in ``nn.Linear``.
        input_quantizer: quantizer of the input (anything ``quantizers.get`` accepts, e.g.
            ``"ste_sign"``). Default None (float input).
        kernel_quantizer: quantizer of the weight. Default None (float weight).

    References: larq ``QuantDense`` (Geiger & Team, "Larq", JOSS 2020).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self._init_quantizers(input_quantizer, kernel_quantizer)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self.quantize_input(x), self.quantized_weight(), self.bias)


def _pad_widths(padding: Any, kernel_size: tuple, dilation: tuple) -> tuple[int, ...]:
    """Widths for ``F.pad`` (last dim first) equal to a conv's zero padding."""
    if padding == "valid":
        pairs = [(0, 0) for _ in kernel_size]
    elif padding == "same":  # the split PyTorch uses: the extra pixel goes right/bottom
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation, strict=True)]
        pairs = [(total // 2, total - total // 2) for total in totals]
    else:
        pairs = [(p, p) for p in padding]
    return tuple(width for pair in reversed(pairs) for width in pair)


class _QuantConvMixin(QuantLayerMixin):
    """Forward of the quant convolutions, with larq's ``pad_values``."""

    _conv = staticmethod(F.conv2d)
    padding: Any
    padding_mode: str

    def _init_conv(
        self, input_quantizer: QuantizerLike, kernel_quantizer: QuantizerLike, pad_values: float
    ) -> None:
        self._init_quantizers(input_quantizer, kernel_quantizer)
        if pad_values != 0 and self.padding_mode != "zeros":
            raise ConfigError(
                f"pad_values={pad_values!r} needs padding_mode='zeros', got {self.padding_mode!r}"
            )
        self.pad_values = float(pad_values)

    def forward(self, x: Tensor) -> Tensor:
        x, weight = self.quantize_input(x), self.quantized_weight()
        widths = _pad_widths(self.padding, self.kernel_size, self.dilation)
        if self.pad_values == 0 or not any(widths):
            return self._conv_forward(x, weight, self.bias)
        # Padding after quantization keeps e.g. binary inputs binary with pad_values=1.0.
        x = F.pad(x, widths, value=self.pad_values)
        return self._conv(x, weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.pad_values == 0 else f"{text}, pad_values={self.pad_values}"


_CONV_DOC = """``nn.Conv{n}d`` with quantized input and weight: ``conv(pad(q_in(x)), q_k(W)) + b``.

    Why are my trained weights floats? ``weight`` is the latent float weight the optimizer
    updates; it is never overwritten. ``quantized_weight()`` returns the binary/ternary tensor
    used in forward (e.g. exactly ±1 with ``kernel_quantizer="ste_sign"``), and
    ``bnn_shared.export.save_binary`` stores it bit-packed. The bias is not quantized.

    Args:
        in_channels, ..., dtype: as in ``nn.Conv{n}d`` (string padding "same"/"valid" included).
        input_quantizer: quantizer of the input (anything ``quantizers.get`` accepts, e.g.
            ``"ste_sign"``). Default None (float input).
        kernel_quantizer: quantizer of the weight. Default None (float weight).
        pad_values: value of the zero padding (``padding_mode="zeros"`` only), applied after
            the input quantizer; 1.0 keeps binary inputs binary. Default 0.0.

    Raises:
        ConfigError: ``pad_values`` other than 0 with a ``padding_mode`` other than "zeros".

    References: larq ``QuantConv{n}D`` (Geiger & Team, "Larq", JOSS 2020).
    """


class QuantConv2d(_QuantConvMixin, nn.Conv2d):
    __doc__ = _CONV_DOC.format(n=2)
    _conv = staticmethod(F.conv2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        pad_values: float = 0.0,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )
        self._init_conv(input_quantizer, kernel_quantizer, pad_values)


class QuantConv1d(_QuantConvMixin, nn.Conv1d):
    __doc__ = _CONV_DOC.format(n=1)
    _conv = staticmethod(F.conv1d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: str | int | tuple[int] = 0,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        input_quantizer: QuantizerLike = None,
        kernel_quantizer: QuantizerLike = None,
        pad_values: float = 0.0,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )
        self._init_conv(input_quantizer, kernel_quantizer, pad_values)


def latent_weight(module: nn.Module) -> Tensor:
    """The float weight the optimizer updates: ``parametrizations.weight.original`` for a
    parametrized weight, ``weight`` otherwise."""
    chain = getattr(getattr(module, "parametrizations", None), "weight", None)
    return chain.original if chain is not None else module.weight


def _has_latent_quantized_weight(module: nn.Module) -> bool:
    """A quant layer with a kernel quantizer other than NoOp, or a weight parametrized by a
    quantizer: a layer whose ``weight`` is a latent float weight."""
    chain = getattr(getattr(module, "parametrizations", None), "weight", None)
    if chain is not None and any(
        isinstance(p, Quantizer) and not isinstance(p, quantizers.NoOp) for p in chain
    ):
        return True
    quantizer = (
        getattr(module, "kernel_quantizer", None) if isinstance(module, QuantLayerMixin) else None
    )
    return quantizer is not None and not isinstance(quantizer, quantizers.NoOp)


def clip_weights_(
    module: nn.Module,
    clip_value: float = 1.0,
    *,
    select: Callable[[nn.Module], bool] | None = None,
) -> nn.Module:
    """Clamp in place to [-clip_value, clip_value] the latent weights of quantized layers.

    larq's ``weight_clip`` constraint: call it after each optimizer step so that latent
    weights stay where the clipped pseudo-gradients are non-zero. By default it touches every
    layer of ``module`` (itself included) whose weight is latent: a quant layer with a kernel
    quantizer other than :class:`NoOp` (whose weights are already quantized values), or a
    weight parametrized by a quantizer (``torch.nn.utils.parametrize``; its
    ``parametrizations.weight.original`` is clamped). ``select`` chooses the layers instead,
    e.g. ``lambda m: isinstance(m, nn.Linear)`` to clip float weights too (binary_feedback's
    study A). Biases are never clipped. Runs under no_grad, one fused clamp over all weights.

    Args:
        module: a layer or a model containing some.
        clip_value: positive bound. Default 1.0.
        select: ``select(layer) -> bool`` picks the layers to clip. Default: layers with a
            latent quantized weight (above).

    Returns:
        ``module``, for chaining.

    Raises:
        ConfigError: ``clip_value`` is not positive.
    """
    if not clip_value > 0:
        raise ConfigError(f"clip_value must be positive, got {clip_value!r}")
    chosen = _has_latent_quantized_weight if select is None else select
    weights = [latent_weight(layer) for layer in module.modules() if chosen(layer)]
    if weights:
        with torch.no_grad():
            torch._foreach_clamp_min_(weights, -clip_value)
            torch._foreach_clamp_max_(weights, clip_value)
    return module
