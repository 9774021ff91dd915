"""Wiring of LUT inputs: fixed random / arange mappings and the learnable mapping.

A LUT layer with J LUTs of n inputs reads S = J·n slots of its input vector. The slots are
either wired once (:func:`layer_mapping`, frozen) or chosen by a learnable mapping
(:class:`LearnableMapping`): a weight matrix W (input_size, S) whose column argmax picks the
input of each slot, trained with a straight-through style gradient (Bacellar et al.,
"Differentiable Weightless Neural Networks", ICML 2024, Sec. "Learnable Mapping").
"""

from __future__ import annotations

import math
import numbers

import torch
from bnn_shared.errors import ConfigError, ShapeError
from bnn_shared.export import Indices
from torch import Tensor, nn

from .utils import _positive_int, _resolve_alias

__all__ = ["index_bits", "layer_mapping", "LearnableMappingFunction", "LearnableMapping"]

# Rows per block of the CPU column argmax (see _column_argmax).
_ARGMAX_BLOCK_ROWS = 512


def index_bits(size: int) -> int:
    """Bits of one index into ``size`` inputs: ``ceil(log2(size))``, at least 1 (as
    :class:`bnn_shared.export.Indices` stores it)."""
    return max(1, math.ceil(math.log2(size)))


def layer_mapping(
    input_size: int,
    n: int | None = None,
    output_size: int | None = None,
    random: bool = True,
    *,
    tuple_lenght: int | None = None,
) -> Tensor:
    """Balanced wiring of ``output_size`` LUTs with ``n`` inputs each, int32 of shape (J, n).

    With S = n·output_size slots and ``num_complete, offset = divmod(S, input_size)``: the
    concatenation of ``num_complete`` permutations of range(input_size) (plain aranges when
    ``random`` is False), then the first ``offset`` entries of one more, reshaped to
    (output_size, n). If S < input_size it is the first S entries of one permutation. So when
    S >= input_size every input feeds at least ⌊S/input_size⌋ slots (balanced fan-out);
    duplicates inside one LUT can occur at permutation boundaries (as in the reference).

    Permutations come from torch's global RNG (``torch.randperm``), drawn in the reference's
    order, including the extra draw when ``offset`` is 0, so a given ``torch.manual_seed``
    gives the same wiring as torch-dwn.

    Args:
        input_size: number of inputs I of the layer.
        n: inputs per LUT (the reference's keyword is ``tuple_lenght``, accepted as an alias).
        output_size: number of LUTs J.
        random: random permutations (default) or aranges.
    """
    n = _resolve_alias("n", n, "tuple_lenght", tuple_lenght, "layer_mapping")
    for name, value in (("input_size", input_size), ("n", n), ("output_size", output_size)):
        _positive_int(value, name, "layer_mapping")

    def one_pass() -> Tensor:
        return torch.randperm(input_size) if random else torch.arange(input_size)

    num_complete, offset = divmod(n * output_size, input_size)
    parts = [one_pass() for _ in range(num_complete)]
    parts.append(one_pass()[:offset])
    return torch.cat(parts).reshape(output_size, n).to(torch.int32)


class LearnableMappingFunction(torch.autograd.Function):
    """Hard column-argmax selection with the DWN learnable-mapping gradients.

    Forward, x (B, I) and W (I, S): ``out = x[:, W.argmax(0)]`` (B, S).
    Backward, with g = dLoss/dout (B, S):

    * grad_W = (2x − 1)ᵀ · g (I, S): each candidate input's ±1 value correlated with the slot
      gradient (inputs are assumed to be 0/1);
    * grad_x = g · softmax(W/τ, dim=0)ᵀ (B, I): each slot's gradient spread over the inputs by
      a column softmax of temperature τ; only computed when x requires grad;
    * τ gets no gradient.

    ``tau`` may be a float or a 0-dim tensor (the reference passes a tensor).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weights: Tensor, tau: float | Tensor) -> Tensor:
        if x.ndim != 2 or x.size(1) != weights.size(0):
            raise ShapeError(
                f"LearnableMapping: expected input of shape (batch, {weights.size(0)}), "
                f"got {tuple(x.shape)}"
            )
        ctx.save_for_backward(x, weights)
        ctx.tau = float(tau)
        return x.index_select(1, _column_argmax(weights).to(x.device))

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, weights = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            signed = (2 * x - 1).to(grad_output.dtype)
            grad_w = torch.mm(signed.t(), grad_output).to(weights.dtype)
        if ctx.needs_input_grad[0]:
            probs = torch.softmax(weights / ctx.tau, dim=0).to(grad_output.dtype)
            grad_x = torch.mm(grad_output, probs.t()).to(x.dtype)
        return grad_x, grad_w, None


class LearnableMapping(nn.Module):
    """Learnable wiring: each of ``output_size`` slots picks one of ``input_size`` inputs.

    Holds W (input_size, output_size), initialised Uniform[0, 1) with ``torch.rand``. Forward
    (training and eval alike) is the hard selection ``x[:, W.argmax(0)]``; gradients as in
    :class:`LearnableMappingFunction`. At inference the argmax (:meth:`hard_mapping`) is a fixed
    wire and W can be dropped. Memory: I·S floats plus optimizer state, so use it in the first
    layer only (maintainers' advice, torch-dwn issue #2). The same input can be selected
    twice for one LUT (as in the reference).

    Args:
        input_size: number of inputs I.
        output_size: number of output slots S (J·n for a LUT layer).
        tau: softmax temperature of the input gradient (default 0.001); not learned.

    Attributes:
        weights: the Parameter W (the reference's name, so torch-dwn state_dicts load);
            ``weight`` is an alias of it.
    """

    def __init__(self, input_size: int, output_size: int, tau: float = 0.001) -> None:
        super().__init__()
        self.input_size = _positive_int(input_size, "input_size", "LearnableMapping")
        self.output_size = _positive_int(output_size, "output_size", "LearnableMapping")
        if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or tau <= 0:
            raise ConfigError(f"LearnableMapping: tau must be a positive number, got {tau!r}")
        self.tau = tau
        self.weights = nn.Parameter(torch.rand(input_size, output_size, dtype=torch.float32))

    @property
    def weight(self) -> nn.Parameter:
        """Alias of :attr:`weights`."""
        return self.weights

    def hard_mapping(self) -> Tensor:
        """The input index each output slot reads, ``W.argmax(0)`` (int64, shape (S,))."""
        return _column_argmax(self.weights.detach())

    def quantized_weight(self) -> Tensor:
        """The selection the forward pass really uses: the one-hot matrix of
        :meth:`hard_mapping` (I, S), in the dtype of W (``x[:, W.argmax(0)] = x @ onehot``)."""
        weights = self.weights.detach()
        onehot = torch.zeros_like(weights)
        return onehot.scatter_(0, self.hard_mapping().unsqueeze(0), 1)

    @property
    def index_bits(self) -> int:
        """Bits per slot at inference: one index into I inputs, ``ceil(log2(I))``."""
        return index_bits(self.input_size)

    def param_precisions(self) -> dict[str, tuple[int, int]]:
        """``{"weights": (0, 0)}`` for the summary: W is a latent matrix that is not shipped
        (not counted, in the model size nor in the float-32 equivalent); what inference keeps
        is its argmax, S indices of :attr:`index_bits` bits, which a
        :class:`~dwn.lut_layer.LUTLayer` counts as its ``mapping`` (J, n)."""
        return {"weights": (0, 0)}

    def packed_state(self) -> dict[str, Indices]:
        """For :mod:`bnn_shared.export`: W stored as its argmax, S indices of
        :attr:`index_bits` bits, decoded as the one-hot matrix (same argmax, same forward)."""
        return {"weights": Indices(self.hard_mapping(), self.input_size, one_hot=True)}

    def forward(self, x: Tensor) -> Tensor:
        """Select inputs: x (*batch, I) -> (*batch, S)."""
        if x.ndim == 0 or x.size(-1) != self.input_size:
            raise ShapeError(
                f"LearnableMapping: expected input (..., {self.input_size}), got {tuple(x.shape)}"
            )
        flat = x.reshape(-1, self.input_size)
        out = LearnableMappingFunction.apply(flat, self.weights, self.tau)
        return out.reshape(*x.shape[:-1], self.output_size)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, output_size={self.output_size}, tau={self.tau}"


def _column_argmax(weights: Tensor) -> Tensor:
    """``weights.argmax(0)``, with the same result (first maximum; NaN counts as maximal).

    On CPU, torch's reduction over dim 0 of a tall matrix falls off a cache cliff (about 90 ms
    for 2352 x 12000 on 2 cores); reducing blocks of rows and merging the running maximum is
    5-6x faster. Later blocks win only when strictly larger, which keeps the first maximum.
    """
    rows = weights.size(0)
    if weights.device.type != "cpu" or rows <= _ARGMAX_BLOCK_ROWS:
        return weights.argmax(dim=0)
    with torch.no_grad():
        best, index = weights[:_ARGMAX_BLOCK_ROWS].max(dim=0)
        for start in range(_ARGMAX_BLOCK_ROWS, rows, _ARGMAX_BLOCK_ROWS):
            values, block_index = weights[start : start + _ARGMAX_BLOCK_ROWS].max(dim=0)
            wins = (values > best) | (values.isnan() & ~best.isnan())
            best = torch.where(wins, values, best)
            index = torch.where(wins, block_index + start, index)
    return index
