"""Bit-packed binary matrix products: XNOR-popcount (±1 x ±1) and AND-popcount ({0,1} x ±1).

Packing (:func:`pack_signs`, :func:`pack_binary`): a tensor of shape (..., k) becomes an int64
tensor of shape (..., ceil(k / 64)); element j of the last axis (the reduction axis) is bit
``j % 64`` (LSB first) of word ``j // 64``. The bit is 1 where ``x > 0`` and 0 elsewhere, so a
±1 tensor packs +1 -> 1, -1 -> 0 and a {0,1} tensor packs 1 -> 1, 0 -> 0 (a real tensor packs
its sign, with 0 and NaN -> 0). The ``64 * words - k`` padding bits of the last word are 0, and
the products mask them anyway: padding bits never count, whatever a packed tensor holds there.
int64 is the word type because torch has no full uint64 support; the bits are what matter.

Products (exact, int32 outputs; ``.float()`` is exact while |value| < 2**24):

- :func:`xnor_gemm` for A (M, k) and B (N, k) with ±1 entries:
  ``out[m, n] = sum_j A[m, j] B[n, j] = k - 2 popcount(a[m] XOR b[n])``;
- :func:`and_gemm` for X (M, k) in {0,1} and W (N, k) in ±1 (binary activations times binary
  weights, EP's bin_W_N layers): ``out[m, n] = sum_j X[m, j] W[n, j]
  = 2 popcount(x[m] AND w[n]) - popcount(x[m])``;
- :func:`binary_matmul` (x (..., k), w (N, k) float tensors, ``kind="xnor" | "and"``) packs both
  and multiplies: ``x @ w.T`` for ±1 / {0,1} values.

Backends (``backend="auto" | "torch" | "cpp" | "cuda"``, :func:`bnn_shared.ext.resolve_backend`):
``"torch"`` runs the references below (the specification: the packed bits unpacked to ±1 or
{0,1} float64 values and multiplied with ``torch.matmul``, exact for k < 2**53); ``"cpp"`` the
C++ kernels ``torch.ops.bnn_shared.bitops_pack / xnor_gemm / and_gemm`` (AVX-512 VPOPCNTDQ
when the CPU has it and rows have more than 192 values, chosen at run time, else a portable
popcount path; :func:`cpu_path`);
``"cuda"`` the CUDA kernels (``__popcll``). ``portable=True``, or the environment variable
``BNN_BITOPS_PORTABLE=1`` read at every call, forces the portable CPU path.
"""

from __future__ import annotations

import operator
import os

import torch

from ..errors import BnnError, ShapeError
from . import load, register_fake, resolve_backend

__all__ = [
    "KINDS",
    "WORD_BITS",
    "and_gemm",
    "and_gemm_reference",
    "binary_matmul",
    "cpu_path",
    "pack_binary",
    "pack_reference",
    "pack_signs",
    "packed_words",
    "unpack_binary",
    "unpack_signs",
    "xnor_gemm",
    "xnor_gemm_reference",
]

#: Bits per packed word (int64).
WORD_BITS = 64
#: Products of :func:`binary_matmul`: "xnor" (±1 x ±1) and "and" ({0,1} x ±1).
KINDS = ("xnor", "and")

_CPU_PATHS = {2: "avx512-vpopcntdq", 1: "portable (popcnt instruction)", 0: "portable"}
_SHIFTS: dict[torch.device, torch.Tensor] = {}


def packed_words(k: int) -> int:
    """Words per packed row of ``k`` elements: ``ceil(k / 64)``."""
    return (_check_k(k) + WORD_BITS - 1) // WORD_BITS


def cpu_path(*, portable: bool | None = None, k: int | None = None) -> str:
    """The CPU path the compiled kernels take now: ``"avx512-vpopcntdq"``, ``"portable"`` (with
    ``" (popcnt instruction)"`` when the CPU has it) or, when the compiled library is not
    loaded, ``"reference (compiled library not loaded)"``. Loads the library (may build).

    ``k``: the path of a GEMM with rows of k values (rows of k <= 192 take the portable path,
    faster there); None: the best path of the CPU."""
    if not load():
        return "reference (compiled library not loaded)"
    k = -1 if k is None else _check_k(k)
    code = torch.ops.bnn_shared.bitops_cpu_isa(_portable(portable), k)
    return _CPU_PATHS.get(int(code), f"unknown ({code})")


def pack_signs(
    x: torch.Tensor, *, backend: str = "auto", portable: bool | None = None
) -> torch.Tensor:
    """Pack a ±1 tensor (..., k) along its last axis: +1 -> bit 1, -1 -> bit 0 (``x > 0``).

    Returns int64 (..., ceil(k / 64)) on ``x.device``; padding bits are 0. ``backend``: as in
    the module docstring; ``portable``: force the portable CPU path (None: the environment).
    """
    return _pack(x, backend, portable)


def pack_binary(
    x: torch.Tensor, *, backend: str = "auto", portable: bool | None = None
) -> torch.Tensor:
    """Pack a {0,1} tensor (..., k) along its last axis: 1 -> bit 1, 0 -> bit 0 (``x > 0``).

    The same bits as :func:`pack_signs` (one rule, ``x > 0``); the name says how the bits are
    read back (:func:`unpack_binary`, the ``x`` of :func:`and_gemm`).
    """
    return _pack(x, backend, portable)


def pack_reference(x: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch packing (the specification of :func:`pack_signs` / :func:`pack_binary`)."""
    x = _check_unpacked(x, "x")
    k = x.shape[-1]
    words = (k + WORD_BITS - 1) // WORD_BITS
    bits = torch.nn.functional.pad((x > 0).to(torch.int64), (0, words * WORD_BITS - k))
    bits = bits.reshape(*x.shape[:-1], words, WORD_BITS)
    # Distinct bits: their sum is their bitwise or (bit 63 wraps to int64's sign bit).
    return (bits << _shifts(x.device)).sum(dim=-1)


def unpack_signs(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of :func:`pack_signs`: float32 (..., k) of ±1 (bit 1 -> +1, bit 0 -> -1)."""
    return _unpack_bits(packed, k).to(torch.float32) * 2 - 1


def unpack_binary(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of :func:`pack_binary`: float32 (..., k) of {0,1}."""
    return _unpack_bits(packed, k).to(torch.float32)


def xnor_gemm(
    a_packed: torch.Tensor,
    b_packed: torch.Tensor,
    k: int,
    *,
    backend: str = "auto",
    portable: bool | None = None,
) -> torch.Tensor:
    """±1 product of packed rows: ``out[m, n] = k - 2 popcount(a[m] ^ b[n])``, int32 (M, N).

    Args:
        a_packed: int64 (M, ceil(k / 64)), rows of ±1 values packed by :func:`pack_signs`.
        b_packed: int64 (N, ceil(k / 64)), the same for B (so the result is A @ B.T).
        k: the number of ±1 values per row (the padding bits beyond it never count).
        backend, portable: as in the module docstring.

    Raises:
        ShapeError: the word counts do not match ``k`` or each other. BnnError: bad dtype, k.
    """
    k = _check_pair(a_packed, b_packed, k, "xnor_gemm", "a_packed", "b_packed")
    if resolve_backend(backend, a_packed.device, op="xnor_gemm") == "torch":
        return _xnor_reference(a_packed, b_packed, k)
    return torch.ops.bnn_shared.xnor_gemm(a_packed, b_packed, k, _portable(portable))


def and_gemm(
    x_packed: torch.Tensor,
    w_packed: torch.Tensor,
    k: int,
    *,
    backend: str = "auto",
    portable: bool | None = None,
) -> torch.Tensor:
    """{0,1} x ±1 product: ``out[m, n] = 2 popcount(x[m] & w[n]) - popcount(x[m])``, int32.

    Args:
        x_packed: int64 (M, ceil(k / 64)), rows of {0,1} values packed by :func:`pack_binary`.
        w_packed: int64 (N, ceil(k / 64)), rows of ±1 weights packed by :func:`pack_signs`.
        k, backend, portable: as in :func:`xnor_gemm`.
    """
    k = _check_pair(x_packed, w_packed, k, "and_gemm", "x_packed", "w_packed")
    if resolve_backend(backend, x_packed.device, op="and_gemm") == "torch":
        return _and_reference(x_packed, w_packed, k)
    return torch.ops.bnn_shared.and_gemm(x_packed, w_packed, k, _portable(portable))


def xnor_gemm_reference(a_packed: torch.Tensor, b_packed: torch.Tensor, k: int) -> torch.Tensor:
    """Pure-PyTorch :func:`xnor_gemm` (the specification): unpack to ±1, float64 matmul."""
    k = _check_pair(a_packed, b_packed, k, "xnor_gemm", "a_packed", "b_packed")
    return _xnor_reference(a_packed, b_packed, k)


def and_gemm_reference(x_packed: torch.Tensor, w_packed: torch.Tensor, k: int) -> torch.Tensor:
    """Pure-PyTorch :func:`and_gemm` (the specification): unpack to {0,1} and ±1, matmul."""
    k = _check_pair(x_packed, w_packed, k, "and_gemm", "x_packed", "w_packed")
    return _and_reference(x_packed, w_packed, k)


def binary_matmul(
    x: torch.Tensor,
    w: torch.Tensor,
    kind: str = "xnor",
    *,
    backend: str = "auto",
    portable: bool | None = None,
) -> torch.Tensor:
    """``x @ w.T`` through the packed kernels, exact int32 of shape (..., N).

    Args:
        x: (..., k) tensor: ±1 values for ``kind="xnor"``, {0,1} values for ``kind="and"``
            (packed by the rule ``x > 0``: other values count as their sign, 0 as -1 in xnor).
        w: (N, k) tensor of ±1 values (packed by ``w > 0``).
        kind: "xnor" (±1 x ±1) or "and" ({0,1} x ±1).
        backend, portable: as in the module docstring.

    Raises:
        ShapeError: ``w`` is not 2-D or its k differs from ``x``'s last axis. BnnError: ``kind``.
    """
    if kind not in KINDS:
        raise BnnError(f"binary_matmul: kind must be one of {KINDS}, got {kind!r}")
    x = _check_unpacked(x, "x")
    w = _check_unpacked(w, "w")
    if w.dim() != 2:
        raise ShapeError(f"binary_matmul: w must be 2-D (N, k), got shape {tuple(w.shape)}")
    if x.shape[-1] != w.shape[1]:
        raise ShapeError(
            f"binary_matmul: x has k={x.shape[-1]} on its last axis (shape {tuple(x.shape)}) "
            f"but w (N, k) has k={w.shape[1]} (shape {tuple(w.shape)})"
        )
    if x.device != w.device:
        raise BnnError(f"binary_matmul: x is on {x.device} but w is on {w.device}")
    k = x.shape[-1]
    rows = x.reshape(-1, k)
    xp = _pack(rows, backend, portable)
    wp = _pack(w, backend, portable)
    gemm = xnor_gemm if kind == "xnor" else and_gemm
    out = gemm(xp, wp, k, backend=backend, portable=portable)
    return out.reshape(*x.shape[:-1], w.shape[0])


# ---------------------------------------------------------------------------------------------


def _pack(x: torch.Tensor, backend: str, portable: bool | None) -> torch.Tensor:
    x = _check_unpacked(x, "x")
    if resolve_backend(backend, x.device, op="bitops_pack") == "torch":
        return pack_reference(x)
    return torch.ops.bnn_shared.bitops_pack(x, _portable(portable))


def _xnor_reference(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    a_values = _unpack_bits(a, k).to(torch.float64) * 2 - 1
    b_values = _unpack_bits(b, k).to(torch.float64) * 2 - 1
    return (a_values @ b_values.T).to(torch.int32)


def _and_reference(x: torch.Tensor, w: torch.Tensor, k: int) -> torch.Tensor:
    x_values = _unpack_bits(x, k).to(torch.float64)
    w_values = _unpack_bits(w, k).to(torch.float64) * 2 - 1
    return (x_values @ w_values.T).to(torch.int32)


def _unpack_bits(packed: torch.Tensor, k: int) -> torch.Tensor:
    """uint8 bits (..., k) of int64 words (..., ceil(k / 64)); padding bits are dropped."""
    k = _check_k(k)
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.int64 or packed.dim() < 1:
        kind = packed.dtype if isinstance(packed, torch.Tensor) else type(packed).__name__
        raise BnnError(f"packed must be an int64 tensor of words (..., words), got {kind}")
    if packed.shape[-1] != (k + WORD_BITS - 1) // WORD_BITS:
        raise ShapeError(
            f"k={k} takes {(k + WORD_BITS - 1) // WORD_BITS} words per row, but packed has "
            f"shape {tuple(packed.shape)}"
        )
    bits = (packed.unsqueeze(-1) >> _shifts(packed.device)) & 1
    return bits.flatten(-2)[..., :k].to(torch.uint8)


def _shifts(device: torch.device) -> torch.Tensor:
    if device not in _SHIFTS:
        _SHIFTS[device] = torch.arange(WORD_BITS, dtype=torch.int64, device=device)
    return _SHIFTS[device]


def _portable(portable: bool | None) -> bool:
    if portable is None:
        return os.environ.get("BNN_BITOPS_PORTABLE", "0").strip().lower() not in {
            "",
            "0",
            "false",
            "no",
            "off",
        }
    return bool(portable)


def _check_k(k: int) -> int:
    try:
        value = None if isinstance(k, bool) else operator.index(k)
    except TypeError:
        value = None
    if value is None or value < 0:
        raise BnnError(f"k must be a non-negative int, got {k!r}")
    if value >= 2**31:
        raise BnnError(f"k must be < 2**31 (the products are int32), got {value}")
    return value


def _check_unpacked(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise BnnError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dim() < 1:
        raise ShapeError(f"{name} must have at least one axis (k last), got a 0-d tensor")
    if x.is_complex():
        raise BnnError(f"{name} must be a real tensor, got {x.dtype}")
    return x


def _check_pair(a: torch.Tensor, b: torch.Tensor, k: int, op: str, a_name: str, b_name: str):
    k = _check_k(k)
    words = (k + WORD_BITS - 1) // WORD_BITS
    for tensor, name in ((a, a_name), (b, b_name)):
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.int64:
            kind = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise BnnError(f"{op}: {name} must be an int64 tensor of packed words, got {kind}")
        if tensor.dim() != 2 or tensor.shape[1] != words:
            raise ShapeError(
                f"{op}: {name} must have shape (rows, {words}) for k={k} "
                f"(ceil(k / 64) words per row), got {tuple(tensor.shape)}"
            )
    if a.device != b.device:
        raise BnnError(f"{op}: {a_name} is on {a.device} but {b_name} is on {b.device}")
    return k


@register_fake("bitops_pack")
def _bitops_pack_fake(x: torch.Tensor, portable: bool = False) -> torch.Tensor:
    words = (x.shape[-1] + WORD_BITS - 1) // WORD_BITS
    return x.new_empty((*x.shape[:-1], words), dtype=torch.int64)


@register_fake("xnor_gemm")
def _xnor_gemm_fake(a: torch.Tensor, b: torch.Tensor, k: int, portable: bool = False):
    return a.new_empty((a.shape[0], b.shape[0]), dtype=torch.int32)


@register_fake("and_gemm")
def _and_gemm_fake(x: torch.Tensor, w: torch.Tensor, k: int, portable: bool = False):
    return x.new_empty((x.shape[0], w.shape[0]), dtype=torch.int32)
