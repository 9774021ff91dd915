"""Extended Finite Difference (EFD): the lookup and gradients of a layer of n-input LUTs.

Bacellar et al., "Differentiable Weightless Neural Networks", ICML 2024. A layer has J LUTs;
LUT ``j`` reads the inputs ``mapping[j, 0..n-1]`` of ``x`` (B, I) and holds ``2**n`` real
entries ``luts[j]``. With ``S = 2**n``:

- address: ``addr[b, j] = sum_l [x[b, mapping[j, l]] > 0] * 2**l`` (first mapped input = LSB,
  strict ``> 0``); output ``y[b, j] = luts[j, addr[b, j]]``;
- LUT gradient: ``grad_luts[j, k] = sum_b g[b, j] * 1[k = addr[b, j]]``;
- input gradient (EFD): ``w[b, j, l] = sum_k D[l, addr[b, j], k] * luts[j, k]`` and
  ``grad_x[b, mapping[j, l]] += g[b, j] * w[b, j, l]``, with the weight table ``D`` of
  :func:`efd_table`: ``variant="code"`` (default; the reference code, which produced the
  published results) ``D[l, a, k] = alpha * beta**H * s_l(k)``, ``variant="paper"`` (the ICML
  formula) ``D[l, a, k] = s_l(k) / (H + 1)``; ``H = popcount((a ^ k) & ~(1 << l))``,
  ``s_l(k) = +1`` if bit ``l`` of ``k`` is set, else ``-1``.

Backends (``backend="auto" | "torch" | "cpp" | "cuda"``):

- ``"torch"``: the reference below, the specification (vectorised, any device and float dtype):
  ``G = luts @ D`` (J, S, n) once per call, then a gather at ``addr`` and an ``index_add_``;
- ``"cpp"``: ``torch.ops.bnn_shared.efd_forward`` / ``efd_backward`` on CPU (float32, float64;
  ``at::parallel_for`` with every sum in a fixed order: bitwise equal for any thread count);
- ``"cuda"``: the same ops on CUDA (float32, float64, float16, bfloat16, accumulated in float;
  no atomics, so deterministic too);
- ``"auto"``: the fastest of the available backends *measured* on the first call for a
  (device type, n, dtype, size class, with/without backward) key: each candidate runs forward
  (+ backward) on the call's own inputs, once to warm up and twice timed, the best time wins
  and is cached for the process (:func:`tuned_backends`, :func:`clear_tuning`).
  ``BNN_EFD_BACKEND=torch|cpp|cuda`` forces what "auto" picks; ``BNN_EFD_TUNE=0`` skips the
  measurement (compiled when available, as :func:`bnn_shared.ext.resolve_backend`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time

import torch

from ..errors import BnnError, ConfigError, ShapeError
from . import register_fake, resolve_backend

__all__ = [
    "DEFAULT_BETA",
    "MAX_INPUTS",
    "VARIANTS",
    "clear_tuning",
    "default_alpha",
    "efd_backward",
    "efd_backward_reference",
    "efd_forward",
    "efd_forward_reference",
    "efd_table",
    "select_backend",
    "table_dtype",
    "tuned_backends",
]

#: Weightings of :func:`efd_table`: "code" (alpha * beta**H, reference code), "paper" (1/(H+1)).
VARIANTS = ("code", "paper")
#: Largest LUT arity: the table D has n * 4**n entries (10.5M for n = 10).
MAX_INPUTS = 10
#: Default beta of the "code" variant (0.25 / 0.75).
DEFAULT_BETA = 1.0 / 3.0

_COMPILED_DTYPES = {
    "cpp": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}
_log = logging.getLogger(__name__)
_tuned: dict[tuple, str] = {}
_tune_lock = threading.Lock()


def default_alpha(n: int) -> float:
    """Default alpha of the "code" variant, ``0.5 * 0.75**(n - 1)``: ``alpha*(1+beta)**(n-1)`` is
    then 0.5 for every n (before torch-dwn's commit 32469b6 it was ``0.5 * 0.75**n``)."""
    return 0.5 * 0.75 ** (n - 1)


def efd_table(
    n: int,
    alpha: float | torch.Tensor | None = None,
    beta: float | torch.Tensor | None = None,
    variant: str = "code",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """EFD weight table ``D`` of shape (n, 2**n, 2**n); ``D[l, a, k]`` weighs entry k for bit l
    at address a (module docstring).

    Args:
        n: LUT arity, 1 to :data:`MAX_INPUTS`.
        alpha, beta: "code" variant scale and decay; None means :func:`default_alpha` (n) and
            :data:`DEFAULT_BETA`. Floats give a cached table (do not modify it in place); 0-d
            tensors (a layer's buffers) give a fresh table on their device, computed without a
            host synchronisation. The "paper" variant has neither and must get None.
        variant: "code" or "paper".
        device, dtype: of the table (float alpha/beta, or "paper").
    """
    _check_n(n)
    if variant not in VARIANTS:
        raise ConfigError(f"efd variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "paper":
        if alpha is not None or beta is not None:
            raise ConfigError("efd='paper' (1/(H+1) weighting) takes no alpha or beta")
        return _paper_table(n, torch.device(device or "cpu"), dtype)
    alpha = default_alpha(n) if alpha is None else alpha
    beta = DEFAULT_BETA if beta is None else beta
    if isinstance(alpha, torch.Tensor) or isinstance(beta, torch.Tensor):
        ref = alpha if isinstance(alpha, torch.Tensor) else beta
        hamming, sign = _structure(n, ref.device, dtype)
        alpha = torch.as_tensor(alpha, dtype=dtype, device=ref.device)
        beta = torch.as_tensor(beta, dtype=dtype, device=ref.device)
        return alpha * torch.pow(beta, hamming) * sign
    return _code_table(n, float(alpha), float(beta), torch.device(device or "cpu"), dtype)


@functools.lru_cache(maxsize=64)
def _structure(n: int, device: torch.device, dtype: torch.dtype):
    """``H[l, a, k]`` (dtype) and ``s[l, 1, k]`` (dtype) of the module docstring."""
    size = 1 << n
    a = torch.arange(size).view(1, size, 1)
    k = torch.arange(size).view(1, 1, size)
    bit = (1 << torch.arange(n)).view(n, 1, 1)
    diff = (a ^ k) & ~bit
    hamming = sum((diff >> i) & 1 for i in range(n))
    sign = torch.where(k & bit != 0, 1.0, -1.0)
    return hamming.to(device, dtype), sign.to(device, dtype)


@functools.lru_cache(maxsize=64)
def _code_table(n: int, alpha: float, beta: float, device: torch.device, dtype: torch.dtype):
    hamming, sign = _structure(n, torch.device("cpu"), torch.float64)
    return (alpha * torch.pow(beta, hamming) * sign).to(device, dtype)


@functools.lru_cache(maxsize=64)
def _paper_table(n: int, device: torch.device, dtype: torch.dtype):
    hamming, sign = _structure(n, torch.device("cpu"), torch.float64)
    return (sign / (hamming + 1)).to(device, dtype)


# ---------------------------------------------------------------------------------------------
# Reference (the specification)


def efd_forward_reference(
    x: torch.Tensor, mapping: torch.Tensor, luts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-PyTorch :func:`efd_forward` (same arguments, results and checks)."""
    _check_forward(x, mapping, luts)
    batch = x.shape[0]
    count, n = mapping.shape
    bits = (x.index_select(1, mapping.reshape(-1).long()) > 0).view(batch, count, n)
    addr = bits[..., 0].long()
    for l in range(1, n):
        addr |= bits[..., l].long() << l
    out = luts.reshape(-1).take(addr + _row_offsets(luts))
    return out, addr


def efd_backward_reference(
    grad_out: torch.Tensor,
    mapping: torch.Tensor,
    luts: torch.Tensor,
    addr: torch.Tensor,
    table: torch.Tensor,
    input_size: int,
    *,
    input_grad: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Pure-PyTorch :func:`efd_backward` (same arguments, results and checks)."""
    _check_backward(grad_out, mapping, luts, addr, table, input_size)
    count, size = luts.shape
    n = mapping.shape[1]
    flat = addr + _row_offsets(luts)
    grad_luts = torch.zeros(count * size, dtype=luts.dtype, device=luts.device)
    grad_luts.index_add_(0, flat.reshape(-1), grad_out.reshape(-1).to(luts.dtype))
    grad_luts = grad_luts.view(count, size)
    if not input_grad:
        return None, grad_luts
    acc = table.dtype
    # G[j, a, l] = sum_k luts[j, k] * D[l, a, k]: one matmul, independent of the batch.
    table_kal = table.permute(2, 1, 0).reshape(size, size * n)
    g_table = (luts.to(acc) @ table_kal).view(count * size, n)
    w = g_table.index_select(0, flat.reshape(-1)).view(*flat.shape, n)  # (B, J, n)
    contrib = grad_out.to(acc).unsqueeze(-1) * w
    grad_x = torch.zeros(addr.shape[0], input_size, dtype=acc, device=luts.device)
    grad_x.index_add_(1, mapping.reshape(-1).long(), contrib.view(addr.shape[0], -1))
    return grad_x.to(luts.dtype), grad_luts


def _row_offsets(luts: torch.Tensor) -> torch.Tensor:
    return torch.arange(luts.shape[0], device=luts.device) * luts.shape[1]


# ---------------------------------------------------------------------------------------------
# Public ops: reference or compiled


def efd_forward(
    x: torch.Tensor, mapping: torch.Tensor, luts: torch.Tensor, *, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """LUT lookup: ``(y, addr)``, both (B, J); ``y`` has the dtype of ``luts``, ``addr`` int64.

    Args:
        x: (B, I) float inputs; only ``x > 0`` matters.
        mapping: (J, n) int32/int64 indices into the I inputs (not range-checked on CUDA).
        luts: (J, 2**n) float entries.
        backend: "auto", "torch", "cpp" or "cuda" (module docstring).
    """
    _check_forward(x, mapping, luts)
    if select_backend(backend, x, mapping, luts, backward=False) == "torch":
        return efd_forward_reference(x, mapping, luts)
    return torch.ops.bnn_shared.efd_forward(x, mapping, luts)


def efd_backward(
    grad_out: torch.Tensor,
    mapping: torch.Tensor,
    luts: torch.Tensor,
    addr: torch.Tensor,
    table: torch.Tensor,
    input_size: int,
    *,
    input_grad: bool = True,
    backend: str = "auto",
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Gradients ``(grad_x, grad_luts)`` of the lookup, ``grad_x`` None unless ``input_grad``.

    Args:
        grad_out: (B, J) gradient w.r.t. ``y`` (cast to the dtype of ``luts``).
        mapping, luts: as in :func:`efd_forward`; addr: its (B, J) int64 addresses.
        table: (n, 2**n, 2**n) :func:`efd_table`, float64 for float64 ``luts``, else float32.
        input_size: I, the width of ``x``.
        input_grad: compute ``grad_x`` (B, I), in the dtype of ``luts``.
        backend: as in :func:`efd_forward`.
    """
    _check_backward(grad_out, mapping, luts, addr, table, input_size)
    shape_only = luts.new_zeros(()).expand(addr.shape[0], input_size)
    choice = select_backend(backend, shape_only, mapping, luts, backward=True)
    if choice == "torch":
        return efd_backward_reference(
            grad_out, mapping, luts, addr, table, input_size, input_grad=input_grad
        )
    grad_out = grad_out.to(luts.dtype)
    grad_x, grad_luts = torch.ops.bnn_shared.efd_backward(
        grad_out, mapping, luts, addr, table, input_size, input_grad
    )
    return (grad_x if input_grad else None), grad_luts


def table_dtype(luts: torch.Tensor) -> torch.dtype:
    """dtype of the :func:`efd_table` that goes with ``luts``: float64 or float32."""
    return torch.float64 if luts.dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------------------------------
# Backend choice: measured "auto"


def select_backend(
    backend: str,
    x: torch.Tensor,
    mapping: torch.Tensor,
    luts: torch.Tensor,
    *,
    backward: bool = True,
) -> str:
    """The backend that runs these tensors: ``backend`` itself when explicit (checked by
    :func:`bnn_shared.ext.resolve_backend`), else the measured choice of "auto"."""
    if backend != "auto":
        choice = resolve_backend(backend, x.device, op="efd_forward")
        _check_dtype(choice, luts)
        return choice
    forced = os.environ.get("BNN_EFD_BACKEND", "").strip().lower()
    if forced:
        try:
            return select_backend(forced, x, mapping, luts, backward=backward)
        except BnnError as exc:
            raise BnnError(f"BNN_EFD_BACKEND={forced!r}: {exc}") from exc
    native = resolve_backend("auto", x.device, op="efd_forward")
    if native == "torch" or luts.dtype not in _COMPILED_DTYPES[native]:
        return "torch"
    tune = os.environ.get("BNN_EFD_TUNE", "1").strip().lower() not in {"0", "false", "no", "off"}
    if not tune or torch.compiler.is_compiling():
        return native
    key = _tuning_key(x, mapping, luts, backward)
    with _tune_lock:
        if key not in _tuned:
            _tuned[key] = _measure(("torch", native), x, mapping, luts, backward)
            _log.info("EFD backend for %s: %s", key, _tuned[key])
        return _tuned[key]


def tuned_backends() -> dict[tuple, str]:
    """Winners of "auto" so far: ``{(device type, n, dtype, size class, backward): backend}``."""
    with _tune_lock:
        return dict(_tuned)


def clear_tuning() -> None:
    """Forget every measured choice; the next "auto" call measures again."""
    with _tune_lock:
        _tuned.clear()


def _tuning_key(x, mapping, luts, backward: bool) -> tuple:
    work = x.shape[0] * mapping.numel()
    size_class = int(math.log2(max(work, 1))) // 2  # a factor of 4 per class
    return (x.device.type, mapping.shape[1], str(luts.dtype), size_class, backward)


def _measure(candidates, x, mapping, luts, backward: bool) -> str:
    table = efd_table(mapping.shape[1], device=luts.device, dtype=table_dtype(luts))
    grad = torch.ones(x.shape[0], luts.shape[0], dtype=luts.dtype, device=luts.device)
    sync = torch.cuda.synchronize if luts.is_cuda else (lambda: None)

    def step(name: str) -> None:
        _, addr = efd_forward(x, mapping, luts, backend=name)
        if backward:
            efd_backward(grad, mapping, luts, addr, table, x.shape[1], backend=name)

    best, best_time = candidates[0], math.inf
    with torch.no_grad():
        for name in candidates:
            step(name)  # warm-up: first-touch allocations, caches
            sync()
            elapsed = math.inf
            for _ in range(2):
                start = time.perf_counter()
                step(name)
                sync()
                elapsed = min(elapsed, time.perf_counter() - start)
            if elapsed < best_time:
                best, best_time = name, elapsed
    return best


# ---------------------------------------------------------------------------------------------
# Checks and fakes


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_INPUTS:
        raise ConfigError(f"LUT arity n must be an int in [1, {MAX_INPUTS}], got {n!r}")


def _check_forward(x: torch.Tensor, mapping: torch.Tensor, luts: torch.Tensor) -> None:
    _check_layer(mapping, luts)
    if x.dim() != 2 or not x.is_floating_point():
        raise ShapeError(f"x must be a 2-D float tensor (batch, inputs), got {_desc(x)}")


def _check_backward(grad_out, mapping, luts, addr, table, input_size) -> None:
    _check_layer(mapping, luts)
    count, n = mapping.shape
    size = 1 << n
    if addr.dim() != 2 or addr.shape[1] != count or addr.dtype != torch.int64:
        raise ShapeError(f"addr must be int64 of shape (batch, {count}), got {_desc(addr)}")
    if tuple(grad_out.shape) != tuple(addr.shape) or not grad_out.is_floating_point():
        raise ShapeError(
            f"grad_out must be float of shape {tuple(addr.shape)}, got {_desc(grad_out)}"
        )
    if tuple(table.shape) != (n, size, size) or table.dtype != table_dtype(luts):
        raise ShapeError(
            f"table must be {table_dtype(luts)} of shape {(n, size, size)} (efd_table), "
            f"got {_desc(table)}"
        )
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 0:
        raise ShapeError(f"input_size must be a non-negative int, got {input_size!r}")


def _check_layer(mapping: torch.Tensor, luts: torch.Tensor) -> None:
    if mapping.dim() != 2 or mapping.dtype not in (torch.int32, torch.int64):
        raise ShapeError(f"mapping must be an int32/int64 tensor (luts, n), got {_desc(mapping)}")
    _check_n(mapping.shape[1])
    expected = (mapping.shape[0], 1 << mapping.shape[1])
    if tuple(luts.shape) != expected or not luts.is_floating_point():
        raise ShapeError(
            f"luts must be a float tensor of shape {expected} for a mapping of shape "
            f"{tuple(mapping.shape)}, got {_desc(luts)}"
        )


def _check_dtype(backend: str, luts: torch.Tensor) -> None:
    if backend != "torch" and luts.dtype not in _COMPILED_DTYPES[backend]:
        raise BnnError(
            f"backend={backend!r} does not support luts of dtype {luts.dtype} (it supports "
            f"{', '.join(map(str, _COMPILED_DTYPES[backend]))}); backend='torch' does"
        )


def _desc(t: torch.Tensor) -> str:
    return f"{t.dtype} of shape {tuple(t.shape)}"


@register_fake("efd_forward")
def _efd_forward_fake(x, mapping, luts):
    shape = (x.shape[0], mapping.shape[0])
    return luts.new_empty(shape), luts.new_empty(shape, dtype=torch.int64)


@register_fake("efd_backward")
def _efd_backward_fake(grad_out, mapping, luts, addr, table, input_size, input_grad):
    grad_x = luts.new_empty((addr.shape[0], input_size) if input_grad else (0,))
    return grad_x, luts.new_empty(luts.shape)
