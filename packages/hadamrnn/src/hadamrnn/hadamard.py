"""The normalised Sylvester Hadamard matrix of HadamRNN, full or block-diagonal, as a dense
matrix (:func:`hadamard_matrix`) and as a fast transform (:func:`fwht`).

Paper: Foucault, Malgouyres, Mamalet, "HadamRNN: Binary and Sparse Ternary Orthogonal RNNs",
ICLR 2025, arXiv 2502.00047.
"""

from __future__ import annotations

import math

import torch
from bnn_shared.errors import ConfigError
from torch import Tensor

__all__ = ["MAX_FACTOR", "block_size", "fwht", "hadamard_matrix"]

#: Largest Hadamard factor applied as one small dense matmul inside :func:`fwht`.
MAX_FACTOR = 32


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def block_size(hidden_size: int, basic_block: str | int) -> int:
    """Size of one Hadamard block: ``hidden_size`` for ``"full"``, else ``2**basic_block``.

    Raises:
        ConfigError: the size is not a power of two, or does not divide ``hidden_size``.
    """
    if basic_block == "full":
        size = hidden_size
    elif isinstance(basic_block, int) and not isinstance(basic_block, bool) and basic_block >= 0:
        size = 2**basic_block
    else:
        raise ConfigError(f"basic_block must be 'full' or an integer k >= 0, got {basic_block!r}")
    if not _is_power_of_two(size) or hidden_size % size:
        raise ConfigError(
            f"hidden_size={hidden_size} with basic_block={basic_block!r}: the Hadamard block "
            f"size {size} must be a power of two that divides hidden_size"
        )
    return size


def _sylvester(size: int, dtype=torch.float32, device=None) -> Tensor:
    """Normalised Sylvester Hadamard ``H_(2m) = kron(H_m, [[1, 1], [1, -1]]) / sqrt(2)``."""
    h = torch.ones(1, 1, dtype=dtype, device=device)
    two = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=dtype, device=device) / math.sqrt(2)
    while h.shape[0] < size:
        h = torch.kron(h, two)
    return h


def hadamard_matrix(
    hidden_size: int, basic_block: str | int = "full", *, dtype=torch.float32, device=None
) -> Tensor:
    """Dense ``I_(n/2^k) ⊗ H_(2^k)`` (or ``H_n`` for ``"full"``), symmetric and orthogonal."""
    size = block_size(hidden_size, basic_block)
    block = _sylvester(size, dtype, device)
    return torch.block_diag(*([block] * (hidden_size // size)))


_FACTOR_CACHE: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}


def _factor(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    key = (size, dtype, device)
    if key not in _FACTOR_CACHE:
        _FACTOR_CACHE[key] = _sylvester(size, dtype, device)
    return _FACTOR_CACHE[key]


def _factorize(size: int) -> list[int]:
    """Split ``size = 2**a`` into powers of two of at most :data:`MAX_FACTOR`, near-equal."""
    bits = size.bit_length() - 1
    parts = max(1, math.ceil(bits / (MAX_FACTOR.bit_length() - 1)))
    base, extra = divmod(bits, parts)
    return [2 ** (base + (i < extra)) for i in range(parts) if base + (i < extra) > 0]


def fwht(x: Tensor, block: int | None = None) -> Tensor:
    """Fast normalised Walsh–Hadamard transform of the last axis, by blocks of ``block``.

    Returns ``x @ H`` with ``H`` the block-diagonal normalised Sylvester matrix (symmetric, so
    also ``H x``). Uses ``H_(ab) = kron(H_a, H_b)``: the block is viewed as a small tensor and
    each factor (at most :data:`MAX_FACTOR` wide) is one batched matmul, so the cost is
    ``O(n * sum(factors))`` instead of ``O(n^2)``: each factor is one large matmul over the
    last axis followed by an axis rotation. Differentiable (linear).

    Args:
        x: ``(..., n)``.
        block: block size, a power of two dividing ``n``; default ``n`` (full Hadamard).
    """
    n = x.shape[-1]
    block = n if block is None else block
    factors = _factorize(block)
    y = x.reshape(-1, *factors)
    for _ in factors:  # transform the last axis, then rotate it to the front of the block
        size = y.shape[-1]
        y = (y.reshape(-1, size) @ _factor(size, x.dtype, x.device)).reshape(y.shape)
        y = y.movedim(-1, 1)
    return y.reshape(x.shape)
