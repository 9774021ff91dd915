"""Activations of both studies: sign with straight-through estimators (STE), tanh, identity.

Every sign here maps 0 to -1: ``sign(x) = +1 if x > 0 else -1`` (spec quirk #21, as in both
reference implementations). The core's quantizers (``bnn_shared.quantizers.sign`` and
``ste_sign``) map 0 to +1, and ``ste_sign``'s window is inclusive only, so they cannot give
study A's values or its strict window; this module therefore defines its own autograd
function, with the pseudo-gradient chosen per activation:

========== ========================= =========================================
name       forward                   backward (upstream gradient g)
========== ========================= =========================================
signsat    sign(x), sign(0) = -1     g * 1(|x| < 1) (strict, study A) or
                                     g * 1(|x| <= 1) (``strict=False``, study B)
sign       sign(x)                   g (identity STE; study B's ``--unsat``)
signtanh   sign(x)                   g * (1 - tanh(x)^2)
tanh       tanh(x)                   g * (1 - tanh(x)^2) (autograd)
id         x                         g
========== ========================= =========================================

Each activation module can record, for monitoring, the share of its inputs that lie in the
saturated region ``|x| >= saturation_threshold`` (1 by default): set ``track_saturation`` to
True and read ``saturation`` (a detached 0-d tensor) after a forward pass.

References: Crulis, Serres, de Runz, Venturini, ACM SAC 2023 (doi 10.1145/3555776.3577674)
and arXiv 2408.04460; the saturated STE is BinaryNet's (Courbariaux, Hubara et al., arXiv
1602.02830).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from bnn_shared.errors import ConfigError
from bnn_shared.registry import Registry
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Identity",
    "SignSat",
    "SignTanh",
    "SignUnsat",
    "Tanh",
    "get_activation",
    "hard_sign",
    "sign_sat",
    "sign_tanh",
    "sign_unsat",
]

PseudoGrad = Callable[[Tensor, Tensor], Tensor]


def hard_sign(x: Tensor) -> Tensor:
    """``+1 where x > 0 else -1`` in ``x``'s dtype (sign(0) = -1); not differentiable."""
    # sign(x) is in {-1, 0, 1}; shifting by -1/2 sends 0 to -1 and keeps the other signs.
    # Two passes, the second in place: several times faster on the CPU than a comparison
    # and a select (this runs on every binary weight at every step).
    return torch.sign(x).sub_(0.5).sign_()


class _SignFunction(torch.autograd.Function):
    """Forward :func:`hard_sign`, backward ``pseudo_grad(x, g)``."""

    @staticmethod
    def forward(ctx, x: Tensor, pseudo_grad: PseudoGrad) -> Tensor:
        ctx.save_for_backward(x)
        ctx.pseudo_grad = pseudo_grad
        return hard_sign(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return ctx.pseudo_grad(x, g), None


def _identity_grad(x: Tensor, g: Tensor) -> Tensor:
    return g


def _strict_window_grad(x: Tensor, g: Tensor) -> Tensor:
    # hardtanh's backward is exactly g * 1(-1 < x < 1), in one fused pass
    return torch.ops.aten.hardtanh_backward(g, x, -1.0, 1.0)


def _inclusive_window_grad(x: Tensor, g: Tensor) -> Tensor:
    return g.masked_fill(x.abs() > 1, 0.0)


def _tanh_grad(x: Tensor, g: Tensor) -> Tensor:
    return g * (1 - torch.tanh(x) ** 2)


def sign_sat(x: Tensor, strict: bool = True) -> Tensor:
    """Sign with the saturated (hard-tanh) STE.

    Forward ``+1 if x > 0 else -1``; gradient ``g * 1(|x| < 1)`` when ``strict`` (study A's
    ``signsat``: zero at ``|x| = 1``), ``g * 1(|x| <= 1)`` otherwise (study B's ``Sign``).
    """
    return _SignFunction.apply(x, _strict_window_grad if strict else _inclusive_window_grad)


def sign_unsat(x: Tensor) -> Tensor:
    """Sign with the identity STE: forward ``+1 if x > 0 else -1``, gradient ``g``.

    Study A's ``sign`` activation and study B's ``SignUnsat`` (``--unsat``).
    """
    return _SignFunction.apply(x, _identity_grad)


def sign_tanh(x: Tensor) -> Tensor:
    """Sign with the tanh-derivative STE: forward ``+1 if x > 0 else -1``, gradient
    ``g * (1 - tanh(x)^2)`` (study A's ``signtanh``)."""
    return _SignFunction.apply(x, _tanh_grad)


class Activation(nn.Module):
    """Base of the activation modules: ``forward`` records saturation, then :meth:`activate`.

    Attributes:
        track_saturation: when True, each forward stores in ``saturation`` the share of
            inputs with ``|x| >= saturation_threshold``. Default False (no cost).
        saturation_threshold: bound of the saturated region. Default 1.0 (study B's
            "train/saturation"; study A's monitor used > 2 for tanh, which a caller may set).
        saturation: detached 0-d tensor of the last tracked forward, or None.
    """

    #: Bits per output value: 1 for the sign activations, 32 otherwise.
    precision: int = 32

    def __init__(self) -> None:
        super().__init__()
        self.track_saturation = False
        self.saturation_threshold = 1.0
        self.saturation: Tensor | None = None

    def activate(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.track_saturation:
            saturated = x.detach().abs() >= self.saturation_threshold
            self.saturation = saturated.to(torch.float32).mean()
        return self.activate(x)


class SignSat(Activation):
    """Module form of :func:`sign_sat`.

    Args:
        strict: gradient window ``|x| < 1`` (True, study A) or ``|x| <= 1`` (False, study B).
            Default True.
    """

    precision = 1

    def __init__(self, strict: bool = True) -> None:
        super().__init__()
        self.strict = bool(strict)

    def activate(self, x: Tensor) -> Tensor:
        return sign_sat(x, self.strict)

    def extra_repr(self) -> str:
        return f"strict={self.strict}"


class SignUnsat(Activation):
    """Module form of :func:`sign_unsat` (identity STE)."""

    precision = 1

    def activate(self, x: Tensor) -> Tensor:
        return sign_unsat(x)


class SignTanh(Activation):
    """Module form of :func:`sign_tanh` (tanh-derivative STE)."""

    precision = 1

    def activate(self, x: Tensor) -> Tensor:
        return sign_tanh(x)


class Tanh(Activation, nn.Tanh):
    """``tanh`` with its exact derivative; an ``nn.Tanh``, so binarisation replaces it."""

    def activate(self, x: Tensor) -> Tensor:
        return torch.tanh(x)


class Identity(Activation, nn.Identity):
    """No activation (study A's ``id``); an ``nn.Identity``."""

    def activate(self, x: Tensor) -> Tensor:
        return x


#: Study A's activation names (``--hidden-act`` / ``--last-act``) and their module classes.
ACTIVATIONS: Registry[type[Activation]] = Registry("activation", flag="--hidden-act/--last-act")
ACTIVATIONS.register("tanh", Tanh)
ACTIVATIONS.register("signsat", SignSat)
ACTIVATIONS.register("sign", SignUnsat)
ACTIVATIONS.register("signtanh", SignTanh)
ACTIVATIONS.register("id", Identity)


def get_activation(name: str, **options: Any) -> Activation:
    """A new activation module by name (case-insensitive), e.g. ``get_activation("signSat")``.

    Args:
        name: one of ``tanh``, ``signsat``, ``sign``, ``signtanh``, ``id``.
        **options: constructor arguments, e.g. ``strict=False`` for ``signsat``.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or option.
    """
    cls = ACTIVATIONS.get(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"activation {name!r}: {exc}") from exc
