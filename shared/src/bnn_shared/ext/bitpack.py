"""Bit packing: store integer codes in ``[0, 2**bits)`` with ``bits`` bits each.

Layout (LSB-first, as numpy's ``packbits(..., bitorder="little")`` for ``bits=1``): code ``i``
sits in byte ``(i * bits) // 8`` at bit offset ``(i * bits) % 8``; ``n`` codes take
``ceil(n * bits / 8)`` bytes and the unused high bits of the last byte are zero. ``bits`` is
1, 2, 4 or 8, so a code never straddles two bytes.

:func:`pack_bits_reference` / :func:`unpack_bits_reference` are the specification (pure
PyTorch, vectorised, any device). :func:`pack_bits` / :func:`unpack_bits` validate their input
and run the compiled ops ``torch.ops.bnn_shared.pack_bits`` / ``unpack_bits`` (CPU:
``at::parallel_for`` over output bytes; CUDA: one thread per output byte) when ``backend``
allows it, else the reference.
"""

from __future__ import annotations

import operator

import torch

from ..errors import BnnError, ShapeError
from . import register_fake, resolve_backend

__all__ = [
    "BITS",
    "pack_bits",
    "pack_bits_reference",
    "packed_length",
    "unpack_bits",
    "unpack_bits_reference",
]

#: Supported code widths.
BITS = (1, 2, 4, 8)


def packed_length(numel: int, bits: int) -> int:
    """Bytes taken by ``numel`` codes of ``bits`` bits: ``ceil(numel * bits / 8)``."""
    return (int(numel) * _check_bits(bits) + 7) // 8


def pack_bits(codes: torch.Tensor, bits: int, *, backend: str = "auto") -> torch.Tensor:
    """Pack integer ``codes`` (any shape, flattened) into a 1-D uint8 tensor.

    Args:
        codes: integer (or bool) tensor with values in ``[0, 2**bits)``; converted to uint8.
        bits: bits per code, 1, 2, 4 or 8.
        backend: ``"auto"`` (compiled when available), ``"torch"`` (reference), ``"cpp"``
            or ``"cuda"`` (see :func:`bnn_shared.ext.resolve_backend`).

    Returns:
        uint8 tensor of ``ceil(codes.numel() * bits / 8)`` bytes on ``codes.device``.

    Raises:
        BnnError: bad ``bits``, a non-integer dtype, or a code outside ``[0, 2**bits)``.
    """
    bits = _check_bits(bits)
    codes = _as_codes(codes, bits)
    if resolve_backend(backend, codes.device, op="pack_bits") == "torch":
        return _pack(codes, bits)
    return torch.ops.bnn_shared.pack_bits(codes, bits)


def unpack_bits(
    packed: torch.Tensor, bits: int, numel: int, *, backend: str = "auto"
) -> torch.Tensor:
    """Unpack the first ``numel`` codes of ``bits`` bits from the uint8 tensor ``packed``.

    Args:
        packed: uint8 tensor of exactly ``ceil(numel * bits / 8)`` bytes (any shape).
        bits: bits per code, 1, 2, 4 or 8.
        numel: number of codes.
        backend: as in :func:`pack_bits`.

    Returns:
        1-D uint8 tensor of ``numel`` codes on ``packed.device``.

    Raises:
        BnnError: bad ``bits``, ``numel`` or dtype. ShapeError: ``packed`` has the wrong length.
    """
    bits = _check_bits(bits)
    packed, numel = _as_packed(packed, bits, numel)
    if resolve_backend(backend, packed.device, op="unpack_bits") == "torch":
        return _unpack(packed, bits, numel)
    return torch.ops.bnn_shared.unpack_bits(packed, bits, numel)


def pack_bits_reference(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pure-PyTorch :func:`pack_bits` (the specification); same arguments and checks."""
    bits = _check_bits(bits)
    return _pack(_as_codes(codes, bits), bits)


def unpack_bits_reference(packed: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    """Pure-PyTorch :func:`unpack_bits` (the specification); same arguments and checks."""
    bits = _check_bits(bits)
    packed, numel = _as_packed(packed, bits, numel)
    return _unpack(packed, bits, numel)


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    per_byte = 8 // bits
    nbytes = packed_length(codes.numel(), bits)
    # Pad to whole bytes; row b of the grid holds the codes of output byte b, lowest first.
    grid = torch.zeros(nbytes * per_byte, dtype=torch.int32, device=codes.device)
    grid[: codes.numel()] = codes.reshape(-1) & ((1 << bits) - 1)
    shifts = torch.arange(per_byte, dtype=torch.int32, device=codes.device) * bits
    # The shifted fields do not overlap, so their sum is their bitwise or.
    return (grid.view(nbytes, per_byte) << shifts).sum(dim=1).to(torch.uint8)


def _unpack(packed: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    per_byte = 8 // bits
    shifts = torch.arange(per_byte, dtype=torch.int32, device=packed.device) * bits
    fields = (packed.reshape(-1, 1).to(torch.int32) >> shifts) & ((1 << bits) - 1)
    return fields.reshape(-1)[:numel].to(torch.uint8)


def _check_bits(bits: int) -> int:
    try:
        value = None if isinstance(bits, bool) else operator.index(bits)
    except TypeError:
        value = None
    if value not in BITS:
        raise BnnError(f"bits must be one of {BITS}, got {bits!r}")
    return value


def _as_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise BnnError(f"codes must be a tensor, got {type(codes).__name__}")
    if codes.dtype == torch.bool:
        codes = codes.to(torch.uint8)
    if codes.is_floating_point() or codes.is_complex():
        raise BnnError(f"codes must be an integer tensor, got {codes.dtype}")
    if codes.numel() and (codes.dtype != torch.uint8 or bits < 8):
        low, high = (int(v) for v in torch.aminmax(codes))
        if low < 0 or high >= 1 << bits:
            raise BnnError(
                f"codes must lie in [0, {1 << bits}) for bits={bits}, got values in [{low}, {high}]"
            )
    return codes.reshape(-1).to(torch.uint8).contiguous()


def _as_packed(packed: torch.Tensor, bits: int, numel: int) -> tuple[torch.Tensor, int]:
    try:
        count = operator.index(numel)
    except TypeError:
        count = -1
    if count < 0:
        raise BnnError(f"numel must be a non-negative int, got {numel!r}")
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        kind = packed.dtype if isinstance(packed, torch.Tensor) else type(packed).__name__
        raise BnnError(f"packed must be a uint8 tensor, got {kind}")
    expected = packed_length(count, bits)
    if packed.numel() != expected:
        raise ShapeError(
            f"{count} codes of {bits} bits take {expected} bytes, but packed has {packed.numel()}"
        )
    return packed.reshape(-1).contiguous(), count


@register_fake("pack_bits")
def _pack_bits_fake(codes: torch.Tensor, bits: int) -> torch.Tensor:
    return codes.new_empty(((codes.numel() * bits + 7) // 8,), dtype=torch.uint8)


@register_fake("unpack_bits")
def _unpack_bits_fake(packed: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    return packed.new_empty((numel,), dtype=torch.uint8)
