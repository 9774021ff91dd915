"""Scoped replacement of the model's matmuls, for emulating another arithmetic (e.g. TF32).

Inside ``with use_arithmetic(Arithmetic(linear=...)):`` the dense layers of the models
(:class:`~hadamrnn.quantized_layers.QLinear`) and the ``sequential`` engine compute every
matmul with the given functions instead of ``torch.nn.functional.linear``; outside the block,
and in other threads, nothing changes (a :mod:`contextvars` variable, not a patch of torch).
``scripts/hadamrnn_copy_tf32.py`` uses it to train on TF32-rounded operands::

    with use_arithmetic(Arithmetic(linear=tf32_linear, recurrence=tf32_recurrence)):
        run_training(cfg, settings)   # needs MODEL.ENGINE=sequential
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import Tensor

__all__ = ["Arithmetic", "current_arithmetic", "use_arithmetic"]


@dataclass(frozen=True)
class Arithmetic:
    """How the model multiplies.

    Attributes:
        linear: ``linear(x, weight, bias=None) -> x @ weight.T + bias``, as
            ``torch.nn.functional.linear``: every dense layer and every step of the
            ``sequential`` engine (``h = linear(h, W, b) + linear(x_t, U)``).
        recurrence: optional ``recurrence(z, weight, bias) -> states``: all states
            ``(B, T, n)`` of ``h_t = W h_(t-1) + b + z_t`` (``h_0 = 0``, ``z = linear(x, U)``
            given), for a faster loop than one ``linear`` per step; used by the
            ``sequential`` engine for linear recurrences without state quantization.
    """

    linear: Callable[..., Tensor]
    recurrence: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None


_CURRENT: contextvars.ContextVar[Arithmetic | None] = contextvars.ContextVar(
    "hadamrnn_arithmetic", default=None
)


def current_arithmetic() -> Arithmetic | None:
    """The arithmetic of the enclosing :func:`use_arithmetic` block (None: torch's own)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_arithmetic(arithmetic: Arithmetic | None) -> Iterator[None]:
    """Within the block, the models compute their matmuls with ``arithmetic`` (None: torch's)."""
    token = _CURRENT.set(arithmetic)
    try:
        yield
    finally:
        _CURRENT.reset(token)
