"""Activations of both studies: sign with straight-through estimators (STE), tanh, identity.

Every sign here but Bi-Real's maps 0 to -1: ``sign(x) = +1 if x > 0 else -1`` (spec quirk
#21, as in both reference implementations). The sign activations are modules around the
core's quantizer functions (:mod:`bnn_shared.quantizers`) with ``zero=-1``; the
pseudo-gradient is chosen per activation:

========== ========================= ===============================================
name       forward                   backward (upstream gradient g)
========== ========================= ===============================================
signsat    sign(x), sign(0) = -1     g * 1(|x| < 1) (strict, study A) or
                                     g * 1(|x| <= 1) (``strict=False``, study B):
                                     ``quantizers.ste_sign(x, 1.0, zero=-1, strict=...)``
sign       sign(x)                   g (identity STE; study B's ``--unsat``):
                                     ``quantizers.sign(x, zero=-1)``
signtanh   sign(x)                   g * (1 - tanh(x)^2):
                                     ``quantizers.tanh_sign(x, zero=-1)``
BiRealAct  sign(x), sign(0) = 0      g * (2 - 2|x|) inside [-1, 1], else 0 (study B's
                                     ``--bireal-act``): the value of
                                     ``quantizers.hard_sign(x, zero=0)`` with the gradient
                                     of ``quantizers.approx_sign(x)``
tanh       tanh(x)                   g * (1 - tanh(x)^2) (autograd)
id         x                         g
========== ========================= ===============================================

Each activation module can record, for monitoring, the share of its inputs that lie in the
saturated region ``|x| >= saturation_threshold`` (1 by default): set ``track_saturation`` to
True and read ``saturation`` (a detached 0-d tensor) after a forward pass.

References: Crulis, Serres, de Runz, Venturini, ACM SAC 2023 (doi 10.1145/3555776.3577674)
and arXiv 2408.04460; the saturated STE is BinaryNet's (Courbariaux, Hubara et al., arXiv
1602.02830).
"""

from __future__ import annotations

from typing import Any

import torch
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError
from bnn_shared.registry import Registry
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BiRealAct",
    "Identity",
    "SignSat",
    "SignTanh",
    "SignUnsat",
    "Tanh",
    "get_activation",
]


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
    """Sign with the saturated (hard-tanh) STE: the core's ``ste_sign`` with sign(0) = -1.

    Args:
        strict: gradient window ``|x| < 1`` (True, study A) or ``|x| <= 1`` (False, study B).
            Default True.
    """

    precision = 1

    def __init__(self, strict: bool = True) -> None:
        super().__init__()
        self.strict = bool(strict)

    def activate(self, x: Tensor) -> Tensor:
        return quantizers.ste_sign(x, 1.0, zero=-1, strict=self.strict)

    def extra_repr(self) -> str:
        return f"strict={self.strict}"


class SignUnsat(Activation):
    """Sign with the identity STE: the core's ``sign`` with sign(0) = -1 (study A's ``sign``,
    study B's ``--unsat``)."""

    precision = 1

    def activate(self, x: Tensor) -> Tensor:
        return quantizers.sign(x, zero=-1)


class SignTanh(Activation):
    """Sign with the tanh-derivative STE: the core's ``tanh_sign`` with sign(0) = -1 (study
    A's ``signtanh``)."""

    precision = 1

    def activate(self, x: Tensor) -> Tensor:
        return quantizers.tanh_sign(x, zero=-1)


class BiRealAct(Activation):
    """Bi-Real Net's activation (study B's ``--bireal-act``, used with Biprop).

    Forward ``torch.sign`` (sign(0) = 0, as the reference); backward
    ``g * 2 * (1 - |clip(x, -1, 1)|)``, i.e. ``2 - 2|x|`` inside [-1, 1] and 0 outside. The
    core's ``approx_sign`` has this pseudo-gradient but maps 0 to +1, so the forward value is
    swapped for ``hard_sign(x, zero=0)`` without touching the gradient (the two differ only
    where ``x == 0``).

    References: Liu et al., "Bi-Real Net", arXiv 1808.00278.
    """

    precision = 1

    def activate(self, x: Tensor) -> Tensor:
        approx = quantizers.approx_sign(x)
        return approx + (quantizers.hard_sign(x.detach(), zero=0) - approx.detach())


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
