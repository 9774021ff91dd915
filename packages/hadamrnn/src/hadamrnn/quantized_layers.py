"""Hadamard and quantized layers of HadamRNN (reference ``quantized_layers`` / ``layers``).

* :func:`hadamard_matrix` / :func:`fwht` (from :mod:`hadamrnn.hadamard`): the normalised
  Sylvester Hadamard matrix, full or block-diagonal, as a dense matrix and as a fast transform.
* :class:`HadamardRecurrent`: ``W = diag(sign(s)) H`` with a trainable sign vector ``s``
  (HadamRNN for ``basic_block="full"``, Block-HadamRNN for an integer ``basic_block``).
* :class:`OrthogonalRecurrent`: float orthogonal ``W`` (torch's orthogonal parametrization),
  the ORNN baseline.
* :class:`QuantizedOrthogonalRecurrent`: k-bit quantized Björck-orthonormalised ``W``, the
  QORNN baseline ("STE-Björck", arXiv 2402.04012), implemented natively.
* :class:`QLinear`: ``nn.Linear`` whose weight is k-bit uniformly quantized on every forward.

Every layer holding quantized weights exposes ``quantized_weight()`` (the tensor its forward
uses) and its precision (``weight_precision`` or ``param_precisions()``, read by
:func:`bnn_shared.summary.summary`), and says what :mod:`bnn_shared.export` stores bit-packed
(``packed_state()``); ``packed_loaded()`` makes a reloaded layer use the stored values as they
are (the max-abs quantizer is not idempotent: ``q(q(W)) != q(W)`` when the largest entry is
positive and clipped to ``(c - 1) / c`` of the scale).

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
from bnn_shared.export import Packed
from bnn_shared.quantizers import sign, uniform
from torch import Tensor, nn

from .arithmetic import current_arithmetic
from .hadamard import block_size, fwht, hadamard_matrix

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


def _uniform_or_float(weight: Tensor, bits: int | None) -> Tensor:
    return weight if bits is None else uniform(weight, bits)


def uniform_precision(bits: int | None) -> int:
    """Storage bits of a value of :func:`~bnn_shared.quantizers.uniform` with ``bits``: 32 for
    None (float), 2 for ``bits=1`` (ternary), else ``bits``."""
    if bits is None:
        return 32
    return 2 if bits == 1 else bits


#: Largest precision that :mod:`bnn_shared.export` bit-packs (wider weights stay float).
PACKABLE_BITS = 8


class QLinear(nn.Linear):
    """``nn.Linear`` with a ``bits``-bit uniformly quantized weight (float bias).

    Forward ``y = x @ q(W).T + c`` (the matmul of :func:`~hadamrnn.arithmetic.use_arithmetic`
    when one is in use) with ``q`` the core's HadamRNN quantizer
    (:func:`bnn_shared.quantizers.uniform`: per-tensor max-abs scale, levels
    ``-2^(b-1)..2^(b-1)-1``, identity STE). ``bits=None`` is a plain float layer. Init: square
    weights orthogonal, others Xavier-uniform; the bias keeps ``nn.Linear``'s default.

    After :func:`bnn_shared.export.load_binary` the weight holds ``q(W)`` itself
    (:meth:`packed_loaded`) and is used as it is.

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        bits: weight bit width (1..16) or None for float. Default 4.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, bits=4):
        self.bits = bits
        self.weight_is_quantized = False  # True once the weight holds q(W) (packed_loaded)
        super().__init__(in_features, out_features, bias=bias)

    @property
    def weight_precision(self) -> int:
        """Bits per weight value: ``bits`` (2 for ternary ``bits=1``), 32 for a float layer."""
        return uniform_precision(self.bits)

    def reset_parameters(self) -> None:
        super().reset_parameters()  # the bias init of nn.Linear
        if self.in_features == self.out_features:
            nn.init.orthogonal_(self.weight)
        else:
            nn.init.xavier_uniform_(self.weight)

    def quantized_weight(self) -> Tensor:
        """``q(W)`` (``W`` itself for ``bits=None`` or once it holds ``q(W)``)."""
        if self.weight_is_quantized:
            return self.weight
        return _uniform_or_float(self.weight, self.bits)

    def _packed(self) -> bool:
        return self.bits is not None and self.weight_precision <= PACKABLE_BITS

    def packed_state(self) -> dict[str, Packed]:
        """``{"weight": Packed(q(W), bits)}`` (nothing for a float layer)."""
        if not self._packed():
            return {}
        return {"weight": Packed(self.quantized_weight().detach(), self.weight_precision)}

    def packed_loaded(self) -> None:
        """The weight now holds ``q(W)``: use it unchanged."""
        if self._packed():
            self.weight_is_quantized = True

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

    def quantized_weight(self) -> Tensor:
        """The dense ``W`` the forward uses (``H`` is implicit: only the signs are stored)."""
        return self.weight()

    def param_precisions(self) -> dict[str, int]:
        """One bit per entry of ``s`` (its sign); the bias is float."""
        return {"s": 1}

    def packed_state(self) -> dict[str, Packed]:
        """``{"s": Packed(sign(s), 1)}``: ``sign(±1) = ±1``, so a reloaded layer has the same
        ``W``."""
        return {"s": Packed(sign(self.s).detach(), 1)}

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
        self.latent_is_quantized = False  # True once latent holds q(W) (packed_loaded)

    @property
    def weight_precision(self) -> int:
        """Bits per entry of ``W`` (2 for ternary ``bits=1``)."""
        return uniform_precision(self.bits)

    def param_precisions(self) -> dict[str, int]:
        """The latent matrix is stored as ``q(W)`` at ``bits``; the bias is float."""
        return {"latent": self.weight_precision}

    @torch.no_grad()
    def _spectral_norm(self, update: bool = True) -> Tensor:
        v = self.power_vector
        if self.training and update:
            u = self.latent @ v
            v = self.latent.t() @ (u / u.norm().clamp_min(1e-12))
            self.power_vector.copy_(v / v.norm().clamp_min(1e-12))
            v = self.power_vector
        return (self.latent @ v).norm().clamp_min(1e-12)

    def weight(self, *, update: bool = True) -> Tensor:
        """``W``; in training mode one power iteration first, unless not ``update``."""
        if self.latent_is_quantized:
            return self.latent
        scaled = self.latent / self._spectral_norm(update)
        return uniform(bjorck(scaled, self.bjorck_iterations), self.bits)

    def quantized_weight(self) -> Tensor:
        """``W`` as the forward in eval mode uses it (no power-iteration update)."""
        return self.weight(update=False)

    def packed_state(self) -> dict[str, Packed]:
        """``{"latent": Packed(W, bits)}`` (widths above 8 bits stay as the float latent)."""
        if self.weight_precision > PACKABLE_BITS:
            return {}
        return {"latent": Packed(self.quantized_weight().detach(), self.weight_precision)}

    def packed_loaded(self) -> None:
        """``latent`` now holds ``W`` itself: use it unchanged (re-quantizing is not
        idempotent)."""
        if self.weight_precision <= PACKABLE_BITS:
            self.latent_is_quantized = True

    def recurrence(self, input_weight: Tensor) -> LinearRecurrence:
        return _dense_recurrence(self.weight(), input_weight, self.bias)

    def apply_constraints_(self) -> None:
        pass
