"""The neuron activations of binary EP, by name (``--activationFun``).

Each entry holds ``rho`` (what a neuron's state becomes, or sends), its straight-through
derivative ``rhop`` and the interval where ``rhop`` is 1 (the networks skip the ``rhop``
gate when the states, which lie in [0, 1], never leave that interval). The step and the
windows are the core's (:mod:`bnn_shared.quantizers`):

* ``hardsigm``: ``rho = clamp(x, 0, 1)``, ``rhop = quantizers.window(x, 0, 1)``;
* ``heaviside``: ``rho = quantizers.heaviside(x, zero=1)`` (H(0) = 1),
  ``rhop = quantizers.window(x, -0.5, 0.5)``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
from bnn_shared import quantizers
from bnn_shared.registry import Registry

__all__ = ["ACTIVATIONS", "Activation", "hardsigm"]

Tensor = torch.Tensor


def hardsigm(x: Tensor) -> Tensor:
    """``clamp(x, 0, 1)`` (a clamp, not a step: the bin_W networks' activation)."""
    return x.clamp(0, 1)


class Activation(NamedTuple):
    """An activation, its straight-through derivative and where that derivative is 1."""

    rho: Callable[[Tensor], Tensor]
    rhop: Callable[[Tensor], Tensor]
    window: tuple[float, float]


#: activation name -> :class:`Activation`
ACTIVATIONS: Registry[Activation] = Registry("activation", flag="--activationFun")
ACTIVATIONS.register(
    "hardsigm", Activation(hardsigm, partial(quantizers.window, low=0.0, high=1.0), (0.0, 1.0))
)
ACTIVATIONS.register(
    "heaviside",
    Activation(
        partial(quantizers.heaviside, zero=1),
        partial(quantizers.window, low=-0.5, high=0.5),
        (-0.5, 0.5),
    ),
)
