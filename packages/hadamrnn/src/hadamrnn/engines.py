"""Engines that evaluate ``h_t = W h_(t-1) + b + U x_t`` (``h_0 = 0``) over a whole sequence.

Selected by name (``MODEL.ENGINE: sequential|parallel``) from the registry :data:`ENGINES`;
every engine has the
signature ``engine(rec, x, *, all_states, nonlinearity=None, state_quantizer=None)`` with
``rec`` a :class:`~hadamrnn.quantized_layers.LinearRecurrence` and ``x`` ``(B, T, d)``, and
returns the last state ``(B, n)`` or, with ``all_states``, every state ``(B, T, n)``.
States are row vectors, so ``W h`` is written ``h @ W.T`` (``rec.step``).

* ``sequential``: the reference loop, one dense ``h @ W.T + x_t @ U.T + b`` per time step
  (the matrices materialised once per forward, as under the reference's
  ``parametrize.cached()``). It also supports a nonlinearity fed back into the recurrence
  (QORNN's ``linear_recurrent: false``) and a state quantizer (post-training quantization).
* ``parallel``: uses the linearity.

  - Last state: ``h_T = sum_k W^k (U x_(T-k) + b) = sum_k K_k f_(T-k)`` with the kernel
    ``K_k = W^k M`` (``M = [U | b]`` and ``f = [x | 1]`` when ``d + 1 <= n``, else ``M = I``
    and ``f = U x + b``). The kernels are built by doubling: ``K_(m..2m-1) = W^m K_(0..m-1)``
    and ``W^(2m) = W^m W^m``, i.e. ``ceil(log2 T)`` large matmuls, and ``h_T`` is one matmul.
  - All states (many-to-many): a blockwise scan. The sequence is cut into ``C`` chunks of
    ``L ~ sqrt(T / 2)`` steps (zero-padded at the front, which leaves ``h`` at 0). The end
    state of every chunk from a zero start is one matmul with the kernels ``K_0..K_(L-1)``;
    ``C`` carry steps ``s_c = W^L s_(c-1) + e_c`` give the state entering each chunk; one loop
    of ``L`` steps over all chunks at once restarts every chunk from its true state. ``W``
    products in the loops go through ``rec.step`` (a fast Walsh–Hadamard transform for
    Hadamard layers), so ``T`` steps cost about ``2 L + C`` batched operations.

Gradients flow through autograd in both engines. Inside
:func:`~hadamrnn.arithmetic.use_arithmetic` the ``sequential`` engine computes its matmuls
with the given :class:`~hadamrnn.arithmetic.Arithmetic` (the ``parallel`` one refuses it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from bnn_shared.errors import ConfigError
from bnn_shared.registry import Registry
from torch import Tensor

from .arithmetic import Arithmetic, current_arithmetic
from .quantized_layers import LinearRecurrence

__all__ = ["ENGINES", "sequential", "parallel", "chunk_length"]

Engine = Callable[..., Tensor]


def sequential(
    rec: LinearRecurrence,
    x: Tensor,
    *,
    all_states: bool,
    nonlinearity: Callable[[Tensor], Tensor] | None = None,
    state_quantizer: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """The reference time loop (see the module docstring)."""
    arithmetic = current_arithmetic()
    if arithmetic is not None:
        return _sequential_with(arithmetic, rec, x, all_states, nonlinearity, state_quantizer)
    batch = x.shape[0]
    w_t, u_t = rec.weight.t(), rec.input_weight.t()
    h = x.new_zeros(batch, rec.weight.shape[0])
    states = []
    for x_t in x.unbind(1):  # unbind: one gradient op, not a full-size zero tensor per step
        h = h @ w_t + x_t @ u_t
        if rec.bias is not None:
            h = h + rec.bias
        if nonlinearity is not None:
            h = nonlinearity(h)
        if state_quantizer is not None:
            h = state_quantizer(h)
        if all_states:
            states.append(h)
    return torch.stack(states, 1) if all_states else h


def _sequential_with(
    arithmetic: Arithmetic,
    rec: LinearRecurrence,
    x: Tensor,
    all_states: bool,
    nonlinearity: Callable[[Tensor], Tensor] | None,
    state_quantizer: Callable[[Tensor], Tensor] | None,
) -> Tensor:
    """The time loop written as the reference writes it, ``h = linear(h, W, b) +
    linear(x_t, U)``, with the matmuls of ``arithmetic`` (its ``recurrence`` when given)."""
    linear = arithmetic.linear
    if arithmetic.recurrence is not None and nonlinearity is None and state_quantizer is None:
        bias = rec.bias if rec.bias is not None else x.new_zeros(rec.weight.shape[0])
        states = arithmetic.recurrence(linear(x, rec.input_weight), rec.weight, bias)
        return states if all_states else states[:, -1]
    h = x.new_zeros(x.shape[0], rec.weight.shape[0])
    states = []
    for x_t in x.unbind(1):
        h = linear(h, rec.weight, rec.bias) + linear(x_t, rec.input_weight)
        if nonlinearity is not None:
            h = nonlinearity(h)
        if state_quantizer is not None:
            h = state_quantizer(h)
        if all_states:
            states.append(h)
    return torch.stack(states, 1) if all_states else h


def parallel(
    rec: LinearRecurrence,
    x: Tensor,
    *,
    all_states: bool,
    nonlinearity: Callable[[Tensor], Tensor] | None = None,
    state_quantizer: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """The linear-recurrence engine (see the module docstring)."""
    if current_arithmetic() is not None:
        raise ConfigError(
            "engine 'parallel' cannot compute with another arithmetic (use_arithmetic); use "
            "engine: sequential"
        )
    if nonlinearity is not None or state_quantizer is not None:
        raise ConfigError(
            "engine 'parallel' needs a linear recurrence without state quantization; use "
            "engine: sequential for linear_recurrent: false or quantized hidden states"
        )
    if all_states:
        return _blockwise_scan(rec, x)
    return _last_state(rec, x)


def _krylov(start: Tensor, w_t: Tensor, length: int) -> Tensor:
    """``G[k] = start @ (W.T)^k`` for ``k < length``, by doubling; ``(length, r, n)``."""
    kernels, power = start.unsqueeze(0), w_t
    while kernels.shape[0] < length:
        have = kernels.shape[0]
        take = min(have, length - have)
        kernels = torch.cat([kernels, kernels[:take] @ power], 0)
        if kernels.shape[0] < length:
            power = power @ power
    return kernels


def _features(rec: LinearRecurrence, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(f, M)`` with ``U x_t + b = f_t @ M``: ``f = [x | 1]``, ``M = [U.T ; b]`` when that is
    narrower than the state, else ``f = U x + b`` and ``M = I``."""
    batch, steps, features = x.shape
    n = rec.weight.shape[0]
    extra = 0 if rec.bias is None else 1
    if features + extra <= n:  # kernel on the inputs: K_k = W^k [U | b]
        start, f = rec.input_weight.t(), x
        if rec.bias is not None:
            start = torch.cat([start, rec.bias[None, :]], 0)
            f = torch.cat([x, x.new_ones(batch, steps, 1)], -1)
        return f, start
    f = x @ rec.input_weight.t()  # kernel on the states: K_k = W^k
    if rec.bias is not None:
        f = f + rec.bias
    return f, torch.eye(n, dtype=x.dtype, device=x.device)


def _last_state(rec: LinearRecurrence, x: Tensor) -> Tensor:
    f, start = _features(rec, x)
    kernels = _krylov(start, rec.weight.t(), x.shape[1])  # (T, r, n)
    return f.flip(1).reshape(len(x), -1) @ kernels.reshape(-1, start.shape[1])


def chunk_length(steps: int) -> int:
    """Chunk length of the blockwise scan: about ``sqrt(T / 2)`` (minimises ``2 L + T / L``)."""
    return max(1, round(math.sqrt(steps / 2)))


def _blockwise_scan(rec: LinearRecurrence, x: Tensor) -> Tensor:
    batch, steps, _ = x.shape
    n = rec.weight.shape[0]
    f, start = _features(rec, x)
    length = chunk_length(steps)
    chunks = math.ceil(steps / length)
    pad = chunks * length - steps
    if pad:  # zero features at the front: no input and no bias, the state stays 0
        f = torch.cat([f.new_zeros(batch, pad, f.shape[-1]), f], 1)
    f = f.reshape(batch, chunks, length, -1)
    drive = f @ start  # U x_t + b, (B, C, L, n)

    kernels = _krylov(start, rec.weight.t(), length)  # (L, r, n)
    ends = f.flip(2).reshape(batch, chunks, -1) @ kernels.reshape(-1, n)  # from a zero state
    power = torch.eye(n, dtype=x.dtype, device=x.device)  # (W.T)^L
    for _ in range(length):
        power = rec.step(power)
    entering = [drive.new_zeros(batch, n)]
    for end in ends.unbind(1)[:-1]:
        entering.append(entering[-1] @ power + end)
    h = torch.stack(entering, 1)
    states = []
    for drive_i in drive.unbind(2):
        h = rec.step(h) + drive_i
        states.append(h)
    return torch.stack(states, 2).reshape(batch, chunks * length, n)[:, pad:]


#: Engines by name (``MODEL.ENGINE``); adding one is adding an entry.
ENGINES: Registry[Engine] = Registry("engine", flag="MODEL.ENGINE")
ENGINES.register("sequential", sequential)
ENGINES.register("parallel", parallel)
