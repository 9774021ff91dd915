"""The neuron activations of binary EP, by name (``--activationFun``).

Each entry holds ``rho`` (what a neuron's state becomes, or sends), its straight-through
derivative ``rhop`` and the interval where ``rhop`` is 1 (the networks skip the ``rhop``
gate when the states, which lie in [0, 1], never leave that interval).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from bnn_shared.registry import Registry

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "hardsigm",
    "hardsigm_prime",
    "heaviside",
    "heaviside_prime",
]

Tensor = torch.Tensor


def hardsigm(x: Tensor) -> Tensor:
    """``clamp(x, 0, 1)``."""
    return x.clamp(0, 1)


def hardsigm_prime(x: Tensor) -> Tensor:
    """1 where 0 <= x <= 1, else 0."""
    return ((x >= 0) & (x <= 1)).to(x.dtype)


def heaviside(x: Tensor) -> Tensor:
    """1 where x >= 0 (x = 0 maps to 1), else 0."""
    return (x >= 0).to(x.dtype)


def heaviside_prime(x: Tensor) -> Tensor:
    """The straight-through window: 1 where -0.5 <= x <= 0.5."""
    return ((x >= -0.5) & (x <= 0.5)).to(x.dtype)


class Activation(NamedTuple):
    """An activation, its straight-through derivative and where that derivative is 1."""

    rho: Callable[[Tensor], Tensor]
    rhop: Callable[[Tensor], Tensor]
    window: tuple[float, float]


#: activation name -> :class:`Activation`
ACTIVATIONS: Registry[Activation] = Registry("activation", flag="--activationFun")
ACTIVATIONS.register("hardsigm", Activation(hardsigm, hardsigm_prime, (0.0, 1.0)))
ACTIVATIONS.register("heaviside", Activation(heaviside, heaviside_prime, (-0.5, 0.5)))
