"""Hadamard and quantized layers of HadamRNN (reference ``quantized_layers`` / ``layers``).

* :func:`hadamard_matrix` / :func:`fwht`: the normalised Sylvester Hadamard matrix, full or
  block-diagonal, as a dense matrix and as a fast transform.
* :class:`HadamardRecurrent`: ``W = diag(sign(s)) H`` with a trainable sign vector ``s``
  (HadamRNN for ``basic_block="full"``, Block-HadamRNN for an integer ``basic_block``).
* :class:`OrthogonalRecurrent`: float orthogonal ``W`` (torch's orthogonal parametrization),
  the ORNN baseline.
* :class:`QuantizedOrthogonalRecurrent`: k-bit quantized Björck-orthonormalised ``W``, the
  QORNN baseline ("STE-Björck", arXiv 2402.04012), implemented natively.
* :class:`QLinear`: ``nn.Linear`` whose weight is k-bit uniformly quantized on every forward.

Every recurrent layer returns, through :meth:`recurrence`, the dense matrix ``W`` and a fast
``step(h) = h @ W.T`` for row-vector states; the engines (:mod:`hadamrnn.engines`) only use
those. Paper: Foucault, Malgouyres, Mamalet, "HadamRNN: Binary and Sparse Ternary Orthogonal
RNNs", ICLR 2025, arXiv 2502.00047.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from bnn_shared.errors import ConfigError
from bnn_shared.quantizers import sign, uniform
from torch import Tensor, nn

from .arithmetic import current_arithmetic

__all__ = [
    "LinearRecurrence",
    "hadamard_matrix",
    "fwht",
    "block_size",
    "QLinear",
    "HadamardRecurrent",
    "OrthogonalRecurrent",
    "QuantizedOrthogonalRecurrent",
]

#: Largest Hadamard factor applied as one small dense matmul inside :func:`fwht`.
MAX_FACTOR = 32
#: ``HadamardRecurrent(transform="auto")`` uses a dense matmul for full Hadamards up to this size.
DENSE_UP_TO = 128


@dataclass
class LinearRecurrence:
    """The pieces of ``h_t = W h_(t-1) + b + U x_t``, materialised once per forward pass.

    Attributes:
        weight: dense ``W`` ``(n, n)``.
        step: ``h -> h @ W.T`` for states ``(..., n)`` (fast: FWHT for Hadamard layers).
        input_weight: ``U`` ``(n, d)`` (already quantized where the model quantizes it).
        bias: ``b`` ``(n,)`` or None.
    """

    weight: Tensor
    step: Callable[[Tensor], Tensor]
    input_weight: Tensor
    bias: Tensor | None


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


def _uniform_or_float(weight: Tensor, bits: int | None) -> Tensor:
    return weight if bits is None else uniform(weight, bits)


class QLinear(nn.Linear):
    """``nn.Linear`` with a ``bits``-bit uniformly quantized weight (float bias).

    Forward ``y = x @ q(W).T + c`` (the matmul of :func:`~hadamrnn.arithmetic.use_arithmetic`
    when one is in use) with ``q`` the core's HadamRNN quantizer
    (:func:`bnn_shared.quantizers.uniform`: per-tensor max-abs scale, levels
    ``-2^(b-1)..2^(b-1)-1``, identity STE). ``bits=None`` is a plain float layer. Init: square
    weights orthogonal, others Xavier-uniform; the bias keeps ``nn.Linear``'s default.

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        bits: weight bit width (1..16) or None for float. Default 4.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, bits=4):
        self.bits = bits
        super().__init__(in_features, out_features, bias=bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()  # the bias init of nn.Linear
        if self.in_features == self.out_features:
            nn.init.orthogonal_(self.weight)
        else:
            nn.init.xavier_uniform_(self.weight)

    def quantized_weight(self) -> Tensor:
        """``q(W)`` (``W`` itself for ``bits=None``)."""
        return _uniform_or_float(self.weight, self.bits)

    def forward(self, x: Tensor) -> Tensor:
        arithmetic = current_arithmetic()  # an emulated arithmetic (use_arithmetic), if any
        linear = nn.functional.linear if arithmetic is None else arithmetic.linear
        return linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}"


class HadamardRecurrent(nn.Module):
    """Recurrent matrix ``W = diag(sign(s)) H`` of HadamRNN (reference ``Binadamard``).

    ``H`` is the fixed normalised Hadamard matrix (full for ``basic_block="full"``, entries
    ``±1/sqrt(n)``; block-diagonal ``I ⊗ H_(2^k)`` for an integer ``k``, entries
    ``±2^(-k/2)`` or 0). ``W`` is orthogonal for every sign vector; the only trainable content
    of ``W`` is the ``n`` signs of ``s``. Forward sign with ``sign(0) = +1``; backward identity
    STE (no clipping of ``s`` unless ``clip_sign``).

    Args:
        hidden_size: ``n``.
        basic_block: ``"full"`` or ``k`` (blocks of ``2^k``).
        bias: train a full-precision bias ``b`` (init ``U(-1/sqrt(n), 1/sqrt(n))``).
        clip_sign: clamp ``s`` to ``[-1, 1]`` after each optimizer step (off in the paper).
        transform: how ``step`` applies ``W``: ``"fwht"`` (:func:`fwht`), ``"dense"`` (matmul)
            or ``"auto"``: dense for a full Hadamard of size <= 128, where one matmul is
            faster on CPU than the transform's axis rotations (measured), else FWHT.
    """

    def __init__(
        self,
        hidden_size: int,
        basic_block: str | int = "full",
        *,
        bias=True,
        clip_sign: bool = False,
        transform: str = "auto",
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.basic_block = basic_block
        self.block = block_size(hidden_size, basic_block)
        self.clip_sign = clip_sign
        if transform not in ("auto", "fwht", "dense"):
            raise ConfigError(f"transform must be auto, fwht or dense, got {transform!r}")
        if transform == "auto":
            transform = "dense" if self.block == hidden_size <= DENSE_UP_TO else "fwht"
        self.transform = transform
        self.s = nn.Parameter(torch.empty(1, hidden_size))
        nn.init.xavier_uniform_(self.s)  # U(-a, a), a = sqrt(6 / (n + 1))
        self.register_buffer("hadamard", hadamard_matrix(hidden_size, basic_block), False)
        bound = 1 / math.sqrt(hidden_size)
        self.bias = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound)) if bias else None

    def signs(self) -> Tensor:
        """``sign(s)`` ``(n,)`` with the identity STE."""
        return sign(self.s).reshape(-1)

    def weight(self) -> Tensor:
        """Dense ``W = diag(sign(s)) H``."""
        return self.signs()[:, None] * self.hadamard.to(self.s.dtype)

    def recurrence(self, input_weight: Tensor) -> LinearRecurrence:
        u = self.signs()
        weight = u[:, None] * self.hadamard.to(u.dtype)
        if self.transform == "dense":
            return _dense_recurrence(weight, input_weight, self.bias)
        block = self.block

        def step(h: Tensor) -> Tensor:  # h @ W.T = (h @ H) * u, H symmetric
            return fwht(h, block) * u

        return LinearRecurrence(weight, step, input_weight, self.bias)

    @torch.no_grad()
    def apply_constraints_(self) -> None:
        if self.clip_sign:
            self.s.clamp_(-1.0, 1.0)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, basic_block={self.basic_block!r}"


def _dense_recurrence(weight: Tensor, input_weight: Tensor, bias) -> LinearRecurrence:
    transposed = weight.t()
    return LinearRecurrence(weight, lambda h: h @ transposed, input_weight, bias)


#: Maps of ``torch.nn.utils.parametrizations.orthogonal`` (``MODEL.ORTHOGONAL_MAP``).
ORTHOGONAL_MAPS = ("matrix_exp", "cayley", "householder")


class OrthogonalRecurrent(nn.Module):
    """Float orthogonal ``W`` through ``torch.nn.utils.parametrizations.orthogonal`` (ORNN).

    Args:
        hidden_size: ``n``.
        bias: float recurrent bias.
        orthogonal_map: ``"matrix_exp"`` (torch's default for square matrices), ``"cayley"``
            or ``"householder"``. At ``n = 512`` one training step of the matrix exponential
            (forward and backward) cost 0.63 s on one CPU thread against 0.05 s for Cayley
            (measured), which dominates an ORNN pMNIST step.
    """

    def __init__(self, hidden_size: int, *, bias: bool = True, orthogonal_map="matrix_exp"):
        super().__init__()
        if orthogonal_map not in ORTHOGONAL_MAPS:
            raise ConfigError(
                f"orthogonal_map must be one of {', '.join(ORTHOGONAL_MAPS)}, got "
                f"{orthogonal_map!r}"
            )
        self.hidden_size = hidden_size
        linear = nn.Linear(hidden_size, hidden_size, bias=bias)
        self.linear = nn.utils.parametrizations.orthogonal(linear, orthogonal_map=orthogonal_map)

    @property
    def bias(self) -> Tensor | None:
        return self.linear.bias

    def weight(self) -> Tensor:
        return self.linear.weight

    def recurrence(self, input_weight: Tensor) -> LinearRecurrence:
        return _dense_recurrence(self.weight(), input_weight, self.bias)

    def apply_constraints_(self) -> None:
        pass


def bjorck(weight: Tensor, iterations: int = 15) -> Tensor:
    """Björck orthonormalisation ``W <- W (3 I - W^T W) / 2`` (differentiable).

    Converges to the orthogonal polar factor when the singular values lie in ``(0, sqrt 3)``;
    the caller scales ``W`` to spectral norm at most 1 first.
    """
    eye = torch.eye(weight.shape[1], dtype=weight.dtype, device=weight.device)
    for _ in range(iterations):
        weight = weight @ (1.5 * eye - 0.5 * weight.t() @ weight)
    return weight


class QuantizedOrthogonalRecurrent(nn.Module):
    """QORNN's recurrent matrix: ``q_bits(bjorck(V / sigma(V)))`` with identity STE.

    ``sigma`` is a power-iteration estimate of the spectral norm (detached, one iteration per
    training forward, persistent vector as in spectral normalisation), then Björck iterations
    make the matrix orthogonal and the core's uniform quantizer rounds it to ``bits`` bits.

    Args:
        hidden_size: ``n``.
        bits: bit width of ``W``.
        bias: float recurrent bias.
        bjorck_iterations: Björck steps per forward (default 15).
    """

    def __init__(
        self, hidden_size: int, bits: int, *, bias: bool = True, bjorck_iterations: int = 15
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.bits = bits
        self.bjorck_iterations = bjorck_iterations
        self.latent = nn.Parameter(torch.empty(hidden_size, hidden_size))
        nn.init.orthogonal_(self.latent)
        bound = 1 / math.sqrt(hidden_size)
        self.bias = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound)) if bias else None
        vector = torch.randn(hidden_size)
        self.register_buffer("power_vector", vector / vector.norm())

    @torch.no_grad()
    def _spectral_norm(self) -> Tensor:
        v = self.power_vector
        if self.training:
            u = self.latent @ v
            v = self.latent.t() @ (u / u.norm().clamp_min(1e-12))
            self.power_vector.copy_(v / v.norm().clamp_min(1e-12))
            v = self.power_vector
        return (self.latent @ v).norm().clamp_min(1e-12)

    def weight(self) -> Tensor:
        scaled = self.latent / self._spectral_norm()
        return uniform(bjorck(scaled, self.bjorck_iterations), self.bits)

    def recurrence(self, input_weight: Tensor) -> LinearRecurrence:
        return _dense_recurrence(self.weight(), input_weight, self.bias)

    def apply_constraints_(self) -> None:
        pass
