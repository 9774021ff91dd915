"""Quantizers: forward values with pseudo-gradients, reachable by string alias (as in larq).

Every quantizer exists twice: a plain function (``ste_sign(x)``) whose backward pass is a
pseudo-gradient, and a small :class:`Quantizer` module (``SteSign()``) that carries an integer
``precision`` (bits per value, read by the summary and by latent-free optimizers) and is
registered under an alias, so that ``get("ste_sign")`` builds one. Conventions: the sign of 0
is +1 by default (``sign``, ``ste_sign``, ``tanh_sign``, ``approx_sign``, ``swish_sign``,
``magnitude_aware_sign``) and -1 or 0 where a paper's code says so (``zero=``);
``ste_heaviside`` maps 0 to 0 by default (``zero=1`` for Heaviside with H(0) = 1) and
``ste_tern`` maps 0 to 0. Straight-through windows are inclusive (``|x| <= clip_value``) by
default and strict (``|x| < clip_value``) with ``strict=True``. Pseudo-gradients multiply the
upstream gradient ``g`` elementwise.

Every sign, step, straight-through and k-bit quantizer of the project's papers lives here,
as parameters of these functions rather than as copies:

======================= ==================================================================
paper                   what it uses
======================= ==================================================================
binary_feedback (A, B)  ``ste_sign(zero=-1, strict=...)``, ``sign(zero=-1)``,
                        ``tanh_sign(zero=-1)`` (sign(0) = -1 in both studies' code)
dwn                     ``ste_heaviside(clip_value=None)`` (LUT outputs, identity gradient)
eqprop_binary           ``heaviside(zero=1)`` with the ``window(-0.5, 0.5)`` derivative;
                        ``scaled_sign`` / ``mean_abs_scale`` (binary weights times alpha)
hadamrnn                ``sign`` (the Hadamard signs), ``uniform`` (k-bit U and V; with a
                        fixed ``scale`` for post-training activation quantization)
======================= ==================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .errors import BnnError, ConfigError
from .registry import Registry

__all__ = [
    "QUANTIZERS",
    "Quantizer",
    "register",
    "get",
    "available",
    "hard_sign",
    "heaviside",
    "window",
    "scaled_sign",
    "mean_abs_scale",
    "sign",
    "ste_sign",
    "tanh_sign",
    "approx_sign",
    "swish_sign",
    "magnitude_aware_sign",
    "ste_heaviside",
    "ste_tern",
    "uniform",
    "dorefa",
    "Sign",
    "SteSign",
    "TanhSign",
    "ApproxSign",
    "SwishSign",
    "MagnitudeAwareSign",
    "SteHeaviside",
    "SteTern",
    "Uniform",
    "DoReFa",
    "NoOp",
    "Lambda",
]

GradFn = Callable[[Tensor, Tensor], Tensor]


class _PseudoGradient(torch.autograd.Function):
    """Forward ``value(x)``, backward ``grad(x, g)``: the PyTorch form of ``tf.custom_gradient``."""

    @staticmethod
    def forward(ctx, x: Tensor, value: Callable[[Tensor], Tensor], grad: GradFn) -> Tensor:
        ctx.save_for_backward(x)
        ctx.grad = grad
        return value(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return ctx.grad(x, g), None, None


_ZEROS = (1, -1, 0)


def _check_zero(zero: Any, allowed: tuple = _ZEROS) -> int:
    if isinstance(zero, bool) or zero not in allowed:
        raise ConfigError(f"zero (the value at 0) must be one of {allowed}, got {zero!r}")
    return int(zero)


def hard_sign(x: Tensor, zero: int = 1) -> Tensor:
    """``+1 where x > 0, -1 where x < 0`` and ``zero`` (+1, -1 or 0) at 0, in ``x``'s dtype.

    The plain value, without a pseudo-gradient (autograd sees no gradient through it); the
    quantizer functions below use it as their forward pass.
    """
    if zero == 1:
        return 2 * (x >= 0).to(x.dtype) - 1
    if zero == -1:
        # sign(x) is in {-1, 0, 1}; shifting by -1/2 sends 0 to -1 and keeps the other signs.
        # Two passes, the second in place: several times faster on the CPU than a comparison
        # and a select (this runs on every binary weight at every step).
        return torch.sign(x).sub_(0.5).sign_()
    if zero == 0:
        return torch.sign(x)
    raise ConfigError(f"zero (the value at 0) must be one of {_ZEROS}, got {zero!r}")


def heaviside(x: Tensor, zero: int = 0) -> Tensor:
    """``1 where x > 0, 0 where x < 0`` and ``zero`` (0 or 1) at 0, in ``x``'s dtype (float32
    for an integer ``x``); no pseudo-gradient."""
    dtype = x.dtype if x.is_floating_point() else torch.float32
    if zero == 1:
        return (x >= 0).to(dtype)
    if zero == 0:
        return (x > 0).to(dtype)
    raise ConfigError(f"zero (the value at 0) must be 0 or 1, got {zero!r}")


def window(x: Tensor, low: float = -1.0, high: float = 1.0, *, strict: bool = False) -> Tensor:
    """The straight-through window ``1(low <= x <= high)`` (``low < x < high`` when ``strict``)
    in ``x``'s dtype: the derivative a pseudo-gradient multiplies by."""
    if strict:
        return ((x > low) & (x < high)).to(x.dtype)
    return ((x >= low) & (x <= high)).to(x.dtype)


def mean_abs_scale(x: Tensor, per_channel: bool = False, decimals: int | None = None) -> Tensor:
    """XNOR-Net's scale ``alpha = mean(|x|)``, one for the tensor (shape ``(1,)``) or one per
    output channel (dim 0), optionally rounded to ``decimals`` (EP's init rounds to 4).

    Computed row by row as ``sum(|row|) / numel`` in ``x``'s dtype, as EP's reference does."""
    rows = x.reshape(x.shape[0], -1) if per_channel else x.reshape(1, -1)
    values = [(row.abs().sum() / row.numel()).item() for row in rows]
    if decimals is not None:
        values = [round(value, decimals) for value in values]
    return torch.tensor(values, dtype=x.dtype)


def scaled_sign(x: Tensor, scale: Tensor | float, zero: int = 0) -> Tensor:
    """Binary weights times a scale: ``hard_sign(x, zero) * scale`` (XNOR-Net, binary EP).

    ``scale`` is a number, a 0-d tensor, or one value per output channel (dim 0); EP's
    weights keep ``torch.sign``'s 0 at 0 (``zero=0``), which a trained weight never holds.
    """
    values = hard_sign(x, zero)
    if isinstance(scale, Tensor) and scale.dim() == 1 and scale.numel() > 1:
        scale = scale.reshape((-1,) + (1,) * (x.dim() - 1))
    return values * scale


def _identity_grad(x: Tensor, g: Tensor) -> Tensor:
    return g


def _clipped_grad(clip_value: float | None, strict: bool = False) -> GradFn:
    if clip_value is None:
        return _identity_grad
    if strict:  # hardtanh's backward is exactly g * 1(-c < x < c), in one fused pass
        return lambda x, g: torch.ops.aten.hardtanh_backward(g, x, -clip_value, clip_value)
    return lambda x, g: g.masked_fill(x.abs() > clip_value, 0.0)


def _tanh_grad(x: Tensor, g: Tensor) -> Tensor:
    return g * (1 - torch.tanh(x) ** 2)


def _check_bits(bits: Any, name: str = "bits", high: int = 16) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= high:
        raise ConfigError(f"{name} must be an integer in 1..{high}, got {bits!r}")
    return bits


def _check_clip(clip_value: Any) -> float | None:
    if clip_value is None:
        return None
    if isinstance(clip_value, bool) or not isinstance(clip_value, int | float) or clip_value <= 0:
        raise ConfigError(f"clip_value must be a positive number or None, got {clip_value!r}")
    return float(clip_value)


def _sign_of(zero: int) -> Callable[[Tensor], Tensor]:
    _check_zero(zero)
    return lambda v: hard_sign(v, zero)


# ---------------------------------------------------------------------------- functions


def sign(x: Tensor, zero: int = 1) -> Tensor:
    """Sign with an identity gradient.

    Forward ``q = +1 if x > 0, -1 if x < 0`` and ``zero`` at 0 (default +1; binary_feedback's
    studies use -1); gradient ``g`` (identity).
    """
    return _PseudoGradient.apply(x, _sign_of(zero), _identity_grad)


def ste_sign(
    x: Tensor, clip_value: float | None = 1.0, *, zero: int = 1, strict: bool = False
) -> Tensor:
    """Sign with the clipped straight-through estimator (BinaryNet).

    Forward ``q = +1 if x > 0, -1 if x < 0``, ``zero`` at 0 (default +1); gradient
    ``g * 1(|x| <= clip_value)``, or ``g * 1(|x| < clip_value)`` when ``strict``.

    Args:
        x: input tensor.
        clip_value: gradient is zero outside the window; None gives the plain identity
            gradient. Default 1.0.
        zero: the value at 0: +1, -1 or 0. Default +1.
        strict: open window (zero gradient at ``|x| = clip_value``; binary_feedback study A's
            ``signsat``). Default False.

    References: Courbariaux, Hubara et al., "Binarized Neural Networks", arXiv 1602.02830.
    """
    return _PseudoGradient.apply(x, _sign_of(zero), _clipped_grad(clip_value, strict))


def tanh_sign(x: Tensor, zero: int = 1) -> Tensor:
    """Sign with the derivative of tanh as pseudo-gradient.

    Forward as :func:`sign` (``zero`` at 0, default +1); gradient ``g * (1 - tanh(x)^2)``
    (binary_feedback study A's ``signtanh``).
    """
    return _PseudoGradient.apply(x, _sign_of(zero), _tanh_grad)


def _approx_sign_grad(x: Tensor, g: Tensor) -> Tensor:
    abs_x = x.abs()
    return g * torch.where(abs_x <= 1, 2 - 2 * abs_x, torch.zeros_like(abs_x))


def approx_sign(x: Tensor) -> Tensor:
    """Sign with the piecewise-linear ApproxSign pseudo-gradient (Bi-Real Net).

    Forward ``q = +1 if x >= 0 else -1`` (sign(0) = +1); gradient ``g * (2 - 2|x|)`` where
    ``|x| <= 1``, else 0.

    References: Liu et al., "Bi-Real Net", arXiv 1808.00278.
    """
    return _PseudoGradient.apply(x, _sign_of(1), _approx_sign_grad)


def swish_sign(x: Tensor, beta: float = 5.0) -> Tensor:
    """Sign with the derivative of SignSwish as pseudo-gradient (BNN+).

    Forward ``q = +1 if x >= 0 else -1`` (sign(0) = +1); gradient
    ``g * beta * (2 - beta * x * tanh(beta * x / 2)) / (1 + cosh(beta * x))``.

    Args:
        x: input tensor.
        beta: sharpness of the SignSwish curve; larger is closer to sign. Default 5.0.

    References: Darabi et al., "BNN+: Improved Binary Network Training", arXiv 1812.11800.
    """

    def grad(x: Tensor, g: Tensor) -> Tensor:
        bx = beta * x
        return g * beta * (2 - bx * torch.tanh(bx / 2)) / (1 + torch.cosh(bx))

    return _PseudoGradient.apply(x, _sign_of(1), grad)


def _channel_mean_abs(x: Tensor) -> Tensor:
    """mean(|x|) over every dim but 0 (keepdim), or over all of a 0-D or 1-D tensor."""
    if x.dim() <= 1:
        return x.abs().mean()
    return x.abs().mean(dim=tuple(range(1, x.dim())), keepdim=True)


def magnitude_aware_sign(x: Tensor, clip_value: float | None = 1.0) -> Tensor:
    """Sign scaled by the mean magnitude of each output channel (Bi-Real Net weights).

    Forward ``q = sign(x) * s`` with sign(0) = +1 and ``s = mean(|x|)`` over every dim except
    dim 0 (one scale per output channel in PyTorch's weight layout; a single scalar for a 1-D
    tensor). ``s`` is detached, so the gradient is ``g * s * 1(|x| <= clip_value)``.

    Args:
        x: input tensor, usually a weight ``(out, in, ...)``.
        clip_value: as in :func:`ste_sign`. Default 1.0.

    References: Liu et al., "Bi-Real Net", arXiv 1808.00278.
    """
    return ste_sign(x, clip_value) * _channel_mean_abs(x).detach()


def ste_heaviside(
    x: Tensor, clip_value: float | None = 1.0, *, zero: int = 0, strict: bool = False
) -> Tensor:
    """Heaviside step {0, 1} with the clipped straight-through estimator.

    Forward ``q = 1 if x > 0, 0 if x < 0`` and ``zero`` (0 or 1) at 0; the output has ``x``'s
    dtype, float32 for an integer ``x``. Gradient ``g * 1(|x| <= clip_value)`` (``<`` when
    ``strict``), or ``g`` unchanged with ``clip_value=None`` (DWN's LUT outputs).

    Args:
        x: input tensor.
        clip_value: as in :func:`ste_sign`. Default 1.0.
        zero: value at 0, 0 or 1. Default 0.
        strict: open window. Default False.

    References: Bengio et al., "Estimating or Propagating Gradients Through Stochastic
    Neurons", arXiv 1308.3432.
    """
    _check_zero(zero, (0, 1))
    return _PseudoGradient.apply(x, lambda v: heaviside(v, zero), _clipped_grad(clip_value, strict))


def ste_tern(
    x: Tensor,
    threshold_value: float = 0.05,
    ternary_weight_networks: bool = False,
    clip_value: float | None = 1.0,
) -> Tensor:
    """Ternarization {-1, 0, +1} with the clipped straight-through estimator.

    Forward ``q = sign(x) * 1(|x| > t)`` (value at 0 is 0) with ``t = threshold_value``, or
    ``t = 0.7 * mean(|x|)`` over the whole tensor (detached) when ``ternary_weight_networks``;
    gradient ``g * 1(|x| <= clip_value)``.

    Args:
        x: input tensor.
        threshold_value: fixed threshold t. Default 0.05.
        ternary_weight_networks: use the TWN threshold 0.7 * mean(|x|) instead. Default False.
        clip_value: as in :func:`ste_sign`. Default 1.0.

    References: Li, Zhang, Liu, "Ternary Weight Networks", arXiv 1605.04711.
    """

    def value(v: Tensor) -> Tensor:
        t = 0.7 * v.abs().mean() if ternary_weight_networks else threshold_value
        return torch.sign(v) * (v.abs() > t).to(v.dtype)

    return _PseudoGradient.apply(x, value, _clipped_grad(clip_value))


def uniform(x: Tensor, bits: int = 4, scale: Tensor | float | None = None) -> Tensor:
    """HadamRNN's per-tensor symmetric uniform quantizer with an identity gradient.

    Forward: ``alpha = max(|min x|, |max x|)`` (detached; 1 when it is 0), ``c = 2**(bits-1)``,
    ``q = clamp(round(x * c / alpha), -c, c - 1) * alpha / c`` with ``torch.round`` (half to
    even). For 4 bits the levels are -8..7 times alpha/8, so the largest positive value is
    clipped to 7*alpha/8. Special case ``bits=1``: the clamp is to [-1, 1], giving ternary
    {-alpha, 0, +alpha} (2 bits of storage). Gradient ``g`` (identity, no clipping mask, nothing
    to alpha). Sign of 0: q(0) = 0.

    With a fixed ``scale`` (post-training quantization of activations, calibrated on data) the
    forward uses ``alpha = scale`` instead of the tensor's max-abs (values beyond it saturate;
    a scale of 0 gives zeros), and ``bits`` may go up to 32.

    Args:
        x: input tensor, usually a weight.
        bits: bit width, an integer in 1..16 (1..32 with ``scale``). Default 4.
        scale: fixed alpha, or None for the max-abs rule. Default None.

    Raises:
        ConfigError: ``bits`` is not an integer in 1..16 (1..32 with ``scale``).

    References: Foucault, Malgouyres, Mamalet, "HadamRNN: Binary and Sparse Ternary
    Orthogonal RNNs", ICLR 2025, arXiv 2502.00047.
    """
    c = 2 ** (_check_bits(bits, high=16 if scale is None else 32) - 1)
    high = 1 if bits == 1 else c - 1

    def value(v: Tensor) -> Tensor:
        if v.numel() == 0:
            return v.clone()
        if scale is not None:
            alpha = torch.as_tensor(scale).to(v.device, v.dtype)
            if float(alpha) == 0:
                return torch.zeros_like(v)
        else:
            alpha = v.abs().max()
            alpha = torch.where(alpha > 0, alpha, torch.ones_like(alpha))
        return torch.clamp(torch.round(v * c / alpha), -c, high) * alpha / c

    return _PseudoGradient.apply(x, value, _identity_grad)


def _round_ste(x: Tensor, levels: int) -> Tensor:
    """``round(x * levels) / levels`` with an identity gradient."""
    return _PseudoGradient.apply(x, lambda v: torch.round(v * levels) / levels, _identity_grad)


def dorefa(x: Tensor, bits: int = 2, mode: str = "activations") -> Tensor:
    """DoReFa-Net k-bit quantizer of activations (in [0, 1]) or weights (in [-1, 1]).

    With ``n = 2**bits - 1`` and ``quantize_k(v) = round(v * n) / n`` (rounding
    straight-through, ``torch.round`` half to even):

    - ``mode="activations"``: forward ``q = quantize_k(clamp(x, 0, 1))``; gradient
      ``g * 1(0 <= x <= 1)``.
    - ``mode="weights"``: forward ``w = tanh(x)``, ``w = w / (2 * max|w|) + 0.5``,
      ``q = 2 * quantize_k(w) - 1``; the gradient is autograd's through tanh and the
      normalisation, including through ``max|w|`` (as in larq and the DoReFa reference code),
      with only the rounding replaced by the identity. ``max|w| = 0`` is treated as 1.

    Args:
        x: input tensor.
        bits: bit width k, an integer in 1..16. Default 2.
        mode: ``"activations"`` or ``"weights"``. Default ``"activations"``.

    Raises:
        ConfigError: bad ``bits`` or ``mode``.

    References: Zhou et al., "DoReFa-Net", arXiv 1606.06160.
    """
    levels = 2 ** _check_bits(bits) - 1
    if mode == "activations":
        return _PseudoGradient.apply(
            x,
            lambda v: torch.round(torch.clamp(v, 0, 1) * levels) / levels,
            lambda v, g: g * ((v >= 0) & (v <= 1)).to(g.dtype),
        )
    if mode == "weights":
        w = torch.tanh(x)
        peak = w.abs().max() if w.numel() else w.new_ones(())
        peak = torch.where(peak > 0, peak, torch.ones_like(peak))
        return 2 * _round_ste(w / (2 * peak) + 0.5, levels) - 1
    raise ConfigError(f"dorefa mode must be 'activations' or 'weights', got {mode!r}")


# ------------------------------------------------------------------------------ modules


class Quantizer(nn.Module):
    """Base of the quantizer modules: a quantizing ``forward`` plus its storage ``precision``.

    ``precision`` is the number of bits a quantized value needs (32 when unknown); ``alias`` is
    the canonical name under which :func:`register` put the class. The constructor's
    arguments are kept as attributes of the same names, which :meth:`get_config` returns, so
    ``get(q.alias, **q.get_config())`` rebuilds an equal quantizer.
    """

    precision: int = 32
    alias: str = ""

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments of this quantizer, by name."""
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    def extra_repr(self) -> str:
        items = self.get_config()
        items.setdefault("precision", self.precision)
        return ", ".join(f"{key}={value!r}" for key, value in items.items())


#: Every quantizer class by name (the first alias given to :func:`register`) and alias.
QUANTIZERS: Registry[type[Quantizer]] = Registry("quantizer")


def register(*aliases: str) -> Callable[[type[Quantizer]], type[Quantizer]]:
    """Class decorator: make a :class:`Quantizer` subclass reachable by ``get(alias)``.

    The first alias is the canonical one and becomes the class's ``alias``.

    Raises:
        BnnError: no alias, or an alias already taken by another class.
    """
    if not aliases:
        raise BnnError("register() needs at least one alias")

    def decorate(cls: type[Quantizer]) -> type[Quantizer]:
        if not (isinstance(cls, type) and issubclass(cls, Quantizer)):
            raise BnnError(f"register() expects a Quantizer subclass, got {cls!r}")
        for alias in aliases:
            if alias in QUANTIZERS and QUANTIZERS.get(alias) is not cls:
                raise BnnError(
                    f"quantizer alias {alias!r} is already taken by {QUANTIZERS.get(alias)}"
                )
        QUANTIZERS.register(aliases[0], cls, aliases=aliases[1:])
        cls.alias = aliases[0]
        return cls

    return decorate


def available() -> list[str]:
    """Every registered alias, sorted (aliases of the same class each appear)."""
    return sorted([*QUANTIZERS.names(), *QUANTIZERS.aliases()])


def get(identifier: Any, **kwargs: Any) -> Quantizer | None:
    """Turn a user's quantizer choice into a :class:`Quantizer` module.

    Args:
        identifier: None (no quantizer: returns None); a registered alias such as
            ``"ste_sign"`` (a new instance built with ``kwargs``); a :class:`Quantizer`
            instance (returned as is); a Quantizer subclass (instantiated with ``kwargs``); or
            any other callable, wrapped in :class:`Lambda` (``kwargs`` may give ``precision``).
        **kwargs: constructor arguments.

    Raises:
        BnnError: unknown alias (the message lists the available ones).
        ConfigError: arguments the quantizer does not accept, or an identifier of another kind.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Quantizer):
        if kwargs:
            raise ConfigError(
                f"cannot apply {sorted(kwargs)} to the quantizer instance {identifier}"
            )
        return identifier
    if isinstance(identifier, str):
        cls = QUANTIZERS.get(identifier)
    elif isinstance(identifier, type) and issubclass(identifier, Quantizer):
        cls = identifier
    elif callable(identifier):
        return Lambda(identifier, **kwargs)
    else:
        raise ConfigError(f"cannot interpret {identifier!r} as a quantizer")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"quantizer {identifier!r}: {exc}") from exc


@register("sign")
class Sign(Quantizer):
    """Module form of :func:`sign` (identity gradient); precision 1.

    Args:
        zero: the value at 0: +1, -1 or 0. Default +1.
    """

    precision = 1

    def __init__(self, zero: int = 1) -> None:
        super().__init__()
        self.zero = _check_zero(zero)

    def forward(self, x: Tensor) -> Tensor:
        return sign(x, self.zero)


@register("ste_sign")
class SteSign(Quantizer):
    """Module form of :func:`ste_sign`; precision 1.

    Args:
        clip_value: gradient is zero outside the window; None: identity. Default 1.0.
        zero: the value at 0: +1, -1 or 0. Default +1.
        strict: open window ``|x| < clip_value``. Default False.
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0, zero: int = 1, strict: bool = False):
        super().__init__()
        self.clip_value = _check_clip(clip_value)
        self.zero = _check_zero(zero)
        self.strict = bool(strict)

    def forward(self, x: Tensor) -> Tensor:
        return ste_sign(x, self.clip_value, zero=self.zero, strict=self.strict)


@register("tanh_sign")
class TanhSign(Quantizer):
    """Module form of :func:`tanh_sign` (tanh-derivative pseudo-gradient); precision 1.

    Args:
        zero: the value at 0: +1, -1 or 0. Default +1.
    """

    precision = 1

    def __init__(self, zero: int = 1) -> None:
        super().__init__()
        self.zero = _check_zero(zero)

    def forward(self, x: Tensor) -> Tensor:
        return tanh_sign(x, self.zero)


@register("approx_sign")
class ApproxSign(Quantizer):
    """Module form of :func:`approx_sign` (Bi-Real Net pseudo-gradient); precision 1."""

    precision = 1

    def forward(self, x: Tensor) -> Tensor:
        return approx_sign(x)


@register("swish_sign")
class SwishSign(Quantizer):
    """Module form of :func:`swish_sign`; precision 1.

    Args:
        beta: sharpness of the SignSwish pseudo-gradient. Default 5.0.
    """

    precision = 1

    def __init__(self, beta: float = 5.0) -> None:
        super().__init__()
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        return swish_sign(x, self.beta)


@register("magnitude_aware_sign")
class MagnitudeAwareSign(Quantizer):
    """Module form of :func:`magnitude_aware_sign` (per-output-channel scale); precision 1.

    Args:
        clip_value: as in :class:`SteSign`. Default 1.0.
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0) -> None:
        super().__init__()
        self.clip_value = _check_clip(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return magnitude_aware_sign(x, self.clip_value)


@register("ste_heaviside")
class SteHeaviside(Quantizer):
    """Module form of :func:`ste_heaviside` ({0, 1}); precision 1.

    Args:
        clip_value: as in :class:`SteSign`; None for the identity gradient. Default 1.0.
        zero: the value at 0, 0 or 1. Default 0.
        strict: open window. Default False.
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0, zero: int = 0, strict: bool = False):
        super().__init__()
        self.clip_value = _check_clip(clip_value)
        self.zero = _check_zero(zero, (0, 1))
        self.strict = bool(strict)

    def forward(self, x: Tensor) -> Tensor:
        return ste_heaviside(x, self.clip_value, zero=self.zero, strict=self.strict)


@register("ste_tern")
class SteTern(Quantizer):
    """Module form of :func:`ste_tern` ({-1, 0, +1}); precision 2.

    Args:
        threshold_value: fixed threshold. Default 0.05.
        ternary_weight_networks: threshold 0.7 * mean(|x|) instead. Default False.
        clip_value: as in :class:`SteSign`. Default 1.0.
    """

    precision = 2

    def __init__(
        self,
        threshold_value: float = 0.05,
        ternary_weight_networks: bool = False,
        clip_value: float | None = 1.0,
    ) -> None:
        super().__init__()
        self.threshold_value = float(threshold_value)
        self.ternary_weight_networks = bool(ternary_weight_networks)
        self.clip_value = _check_clip(clip_value)

    def forward(self, x: Tensor) -> Tensor:
        return ste_tern(x, self.threshold_value, self.ternary_weight_networks, self.clip_value)


@register("uniform")
class Uniform(Quantizer):
    """Module form of :func:`uniform` (HadamRNN); precision ``bits``, but 2 when ``bits=1``.

    Args:
        bits: bit width in 1..16; 1 gives ternary values, which need 2 bits. Default 4.
    """

    def __init__(self, bits: int = 4) -> None:
        super().__init__()
        self.bits = _check_bits(bits)
        self.precision = 2 if bits == 1 else bits

    def forward(self, x: Tensor) -> Tensor:
        return uniform(x, self.bits)


@register("dorefa", "dorefa_quantizer")
class DoReFa(Quantizer):
    """Module form of :func:`dorefa`; precision ``bits``.

    Args:
        bits: bit width k in 1..16. Default 2.
        mode: ``"activations"`` or ``"weights"``. Default ``"activations"``.
    """

    def __init__(self, bits: int = 2, mode: str = "activations") -> None:
        super().__init__()
        if mode not in ("activations", "weights"):
            raise ConfigError(f"dorefa mode must be 'activations' or 'weights', got {mode!r}")
        self.bits = _check_bits(bits)
        self.mode = mode
        self.precision = bits

    def forward(self, x: Tensor) -> Tensor:
        return dorefa(x, self.bits, self.mode)


@register("noop")
class NoOp(Quantizer):
    """Identity (forward and gradient) that only marks a tensor's ``precision``.

    Use it for weights that are already quantized, e.g. after loading a bit-packed export.

    Args:
        precision: bits per value to report. Default 32.
    """

    def __init__(self, precision: int = 32) -> None:
        super().__init__()
        if isinstance(precision, bool) or not isinstance(precision, int) or precision < 1:
            raise ConfigError(f"precision must be a positive integer, got {precision!r}")
        self.precision = precision

    def forward(self, x: Tensor) -> Tensor:
        return x


class Lambda(Quantizer):
    """Wraps any callable ``fn(x) -> Tensor`` as a quantizer (what :func:`get` does for them).

    Args:
        fn: the quantizing function, with whatever gradient it defines.
        precision: bits per value to report. Default 32.
    """

    alias = "lambda"

    def __init__(self, fn: Callable[[Tensor], Tensor], precision: int = 32) -> None:
        super().__init__()
        self.fn = fn
        self.precision = int(precision)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)
