"""A layer of n-input lookup tables trained with Extended Finite Difference (EFD).

Bacellar et al., "Differentiable Weightless Neural Networks", ICML 2024 (torch-dwn 1.1.1 API).
LUT ``j`` reads ``n`` inputs of ``x`` through its wiring ``mapping[j]`` and holds ``2**n`` real
entries ``luts[j]``:

- forward: ``addr[b, j] = sum_l [x[b, mapping[j, l]] > 0] * 2**l`` (first wire = LSB, strict
  ``> 0``), ``y[b, j] = luts[j, addr[b, j]]``, output ``1[y > 0]`` (STE) or ``y``;
- LUT gradient: ``grad_luts[j, k] = sum_b g[b, j] * 1[k = addr[b, j]]`` (one-hot at the address);
- input gradient (EFD): ``grad_x[b, mapping[j, l]] += g[b, j] * w[b, j, l]`` with
  ``w[b, j, l] = alpha * sum_k s_l(k) * luts[j, k] * beta**H_l(addr, k)``, ``s_l(k) = ±1`` the
  bit ``l`` of ``k``, ``H_l`` the Hamming distance ignoring bit ``l`` ("code" weighting of the
  reference implementation, which produced the published results; ``efd="paper"`` uses the
  ICML formula's ``1 / (H_l + 1)`` with no alpha). The STE passes the gradient unchanged.

The kernels (pure-PyTorch reference, C++ CPU, CUDA) are :mod:`bnn_shared.ext.efd`.
"""

from __future__ import annotations

import numbers

import torch
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError, ShapeError
from bnn_shared.export import Indices, Packed, Rebuilt
from bnn_shared.ext import BACKENDS
from bnn_shared.ext.efd import (
    DEFAULT_BETA,
    MAX_INPUTS,
    VARIANTS,
    default_alpha,
    efd_backward,
    efd_forward,
    efd_table,
    select_backend,
    table_dtype,
)
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .mapping import LearnableMapping, index_bits, layer_mapping

__all__ = ["EFDFunction", "LUTLayer"]

MAPPINGS = ("random", "arange", "learnable")


class EFDFunction(torch.autograd.Function):
    """LUT lookup ``y = luts[j, addr]`` with the EFD input gradient and the one-hot LUT gradient.

    ``apply(x, mapping, luts, alpha, beta, efd="code", backend="auto")``: x (B, I) float,
    mapping (J, n) int, luts (J, 2**n) float, alpha and beta 0-d tensors (ignored by
    ``efd="paper"``). Returns the raw y (B, J) in the dtype of ``luts``; grad_x in the dtype of
    ``x`` (only when x requires grad), grad_luts in the dtype of ``luts``.
    """

    @staticmethod
    def forward(ctx, x, mapping, luts, alpha, beta, efd="code", backend="auto"):
        if backend == "auto":
            backend = select_backend(backend, x, mapping, luts, backward=any(ctx.needs_input_grad))
        y, addr = efd_forward(x, mapping, luts, backend=backend)
        ctx.save_for_backward(mapping, luts, addr, alpha, beta)
        ctx.efd, ctx.backend = efd, backend
        ctx.input_size, ctx.x_dtype = x.shape[1], x.dtype
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        mapping, luts, addr, alpha, beta = ctx.saved_tensors
        n, dtype = mapping.shape[1], table_dtype(luts)
        if ctx.efd == "paper":
            table = efd_table(n, variant="paper", device=luts.device, dtype=dtype)
        else:  # 0-d tensors: built on their device without a host synchronisation
            table = efd_table(n, alpha.to(luts.device), beta.to(luts.device), dtype=dtype)
        grad_x, grad_luts = efd_backward(
            grad_y,
            mapping,
            luts,
            addr,
            table,
            ctx.input_size,
            input_grad=ctx.needs_input_grad[0],
            backend=ctx.backend,
        )
        if grad_x is not None:
            grad_x = grad_x.to(ctx.x_dtype)
        if not ctx.needs_input_grad[2]:
            grad_luts = None
        return grad_x, None, grad_luts, None, None, None, None


class LUTLayer(nn.Module):
    """``output_size`` LUTs of ``n`` inputs each over an input of ``input_size`` bits.

    Forward (module docstring): training mode with ``clamp_luts`` first clamps ``luts`` to
    [-1, 1] in place (so lazily after each optimizer step; eval does not clamp); a learnable
    mapping then gathers the J·n wired inputs; the EFD lookup follows; ``ste`` turns ``y`` into
    ``1[y > 0]`` with an identity gradient. Train and eval compute the same outputs.

    Args:
        input_size: width I of the input (B, I); only ``x > 0`` matters.
        output_size: number of LUTs J (the output width).
        n: inputs per LUT, 1 to 10 (the EFD table has n·4**n entries).
        mapping: wiring: "random" (default) or "arange" (balanced, frozen,
            :func:`dwn.mapping.layer_mapping`), "learnable"
            (:class:`dwn.mapping.LearnableMapping` over J·n slots), or an integer tensor
            (J, n) with values in [0, I).
        alpha: EFD scale, default 0.5·0.75**(n−1) (torch-dwn before 2024-09: 0.5·0.75**n).
        beta: EFD decay per Hamming step, default 1/3. Both "code" weighting only.
        ste: output ``1[y > 0]`` with a straight-through gradient (default) or the raw ``y``.
        clamp_luts: clamp the tables to [-1, 1] at each training forward (default True).
        lm_tau: softmax temperature of the learnable mapping's input gradient (0.001).
        backend: EFD kernels, "auto" (fastest measured), "torch", "cpp" or "cuda"
            (:mod:`bnn_shared.ext.efd`).
        efd: "code" (default: alpha·beta**H, what produced the published results) or "paper"
            (1/(H+1), the ICML formula; takes no alpha or beta).

    Attributes:
        luts: Parameter (J, 2**n) float32, initialised Uniform(−1, 1).
        mapping: frozen int32 Parameter (J, n); for "learnable" the dummy arange(J·n).view(J, n)
            into the gathered slots.
        learnable_mapping: the :class:`~dwn.mapping.LearnableMapping` (learnable only).
        alpha, beta: 0-d float32 buffers (kept at the "code" defaults and unused with "paper").
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        n: int,
        mapping: str | Tensor = "random",
        alpha: float | None = None,
        beta: float | None = None,
        ste: bool = True,
        clamp_luts: bool = True,
        lm_tau: float = 0.001,
        *,
        backend: str = "auto",
        efd: str = "code",
    ) -> None:
        super().__init__()
        self.input_size = _positive_int(input_size, "input_size")
        self.output_size = _positive_int(output_size, "output_size")
        self.n = _positive_int(n, "n")
        if self.n > MAX_INPUTS:
            raise ConfigError(f"LUTLayer: n must be at most {MAX_INPUTS}, got {n}")
        if efd not in VARIANTS:
            raise ConfigError(f"LUTLayer: efd must be one of {VARIANTS}, got {efd!r}")
        if efd == "paper" and (alpha is not None or beta is not None):
            raise ConfigError("LUTLayer: efd='paper' (1/(H+1) weighting) takes no alpha or beta")
        if backend not in BACKENDS:
            raise ConfigError(f"LUTLayer: backend must be one of {BACKENDS}, got {backend!r}")
        self.ste = bool(ste)  # output 1[y > 0] with an identity gradient, else y
        self.clamp_luts = bool(clamp_luts)
        self.backend = backend
        self.efd = efd
        alpha = default_alpha(self.n) if alpha is None else _real(alpha, "alpha")
        beta = DEFAULT_BETA if beta is None else _real(beta, "beta")
        self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float32))
        self.register_buffer("beta", torch.tensor(beta, dtype=torch.float32))
        self.luts = nn.Parameter(torch.rand(self.output_size, 1 << self.n) * 2 - 1)
        self.mapping_kind = mapping if isinstance(mapping, str) else "custom"
        if isinstance(mapping, str) and mapping == "learnable":
            self.learnable_mapping = LearnableMapping(
                self.input_size, self.output_size * self.n, tau=lm_tau
            )
            wiring = torch.arange(self.output_size * self.n).view(self.output_size, self.n)
        else:
            self.learnable_mapping = None
            wiring = self._fixed_wiring(mapping)
        self.mapping = nn.Parameter(wiring.to(torch.int32), requires_grad=False)

    def _fixed_wiring(self, mapping: str | Tensor) -> Tensor:
        if isinstance(mapping, str):
            if mapping not in MAPPINGS:
                raise ConfigError(
                    f"LUTLayer: mapping must be one of {MAPPINGS} or an int tensor "
                    f"({self.output_size}, {self.n}), got {mapping!r}"
                )
            random = mapping == "random"
            return layer_mapping(self.input_size, self.n, self.output_size, random=random)
        return _check_wiring(mapping, self.input_size, self.output_size, self.n)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, input_size) -> (B, output_size): bits ``1[y > 0]`` (ste) or the raw ``y``."""
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ShapeError(
                f"LUTLayer expects input of shape (batch, {self.input_size}), got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            x = x.to(self.luts.dtype)
        if self.training and self.clamp_luts:
            # On .data: the values only change after an optimizer step, and leaving the version
            # counter alone lets two training forwards share one backward (accumulation).
            self.luts.data.clamp_(-1.0, 1.0)
        if self.learnable_mapping is not None:
            x = self.learnable_mapping(x)
        graph = torch.is_grad_enabled() and (x.requires_grad or self.luts.requires_grad)
        backend = select_backend(self.backend, x, self.mapping, self.luts, backward=graph)
        y = EFDFunction.apply(x, self.mapping, self.luts, self.alpha, self.beta, self.efd, backend)
        return quantizers.ste_heaviside(y, None) if self.ste else y

    def effective_mapping(self) -> Tensor:
        """Wiring into this layer's own input, int64 (J, n): ``mapping``, or for a learnable
        mapping its hard choice ``weight.argmax(0).view(J, n)``. Address bit l of LUT j is
        input ``effective_mapping()[j, l]``."""
        if self.learnable_mapping is not None:
            return self.learnable_mapping.hard_mapping().view(self.output_size, self.n).long()
        return self.mapping.detach().long()

    def truth_tables(self) -> Tensor:
        """Boolean truth tables (J, 2**n): entry ``[j, a]`` is the output bit at address a."""
        return self.luts.detach() > 0

    # -- quantized weights: summary and bit-packed export (bnn_shared.summary / .export) ---------

    @property
    def weight_precision(self) -> int:
        """Bits per LUT entry the forward pass uses: 1 with ``ste`` (only ``luts > 0``
        matters), else 32 (the raw values are the output)."""
        return 1 if self.ste else 32

    def quantized_weight(self) -> Tensor:
        """The tables the forward pass really uses: the 0/1 truth tables ``1[luts > 0]``
        (float, shape (J, 2**n)) with ``ste``, else the float ``luts``."""
        luts = self.luts.detach()
        return quantizers.heaviside(luts) if self.ste else luts

    def param_precisions(self) -> dict[str, int]:
        """Bits per value of the layer's own parameters, as deployed: ``luts`` at
        :attr:`weight_precision`; ``mapping`` (J, n) at ``ceil(log2(input_size))`` bits, the
        input index of each address bit. For a learnable mapping ``mapping`` stands for the
        resolved wiring :meth:`effective_mapping` (the same shape), which is what inference
        reads; the latent choice matrix is counted at 0 bits by
        :meth:`LearnableMapping.param_precisions <dwn.mapping.LearnableMapping.param_precisions>`.
        """
        return {"luts": self.weight_precision, "mapping": index_bits(self.input_size)}

    def summary_macs(self, inputs, output) -> list[tuple[int, int]]:
        """One 1-bit table lookup per LUT and sample: ``output_size`` per sample (the n
        address bits of a LUT are read by that one lookup, not counted apart)."""
        return [(self.weight_precision, self.output_size)]

    def packed_state(self) -> dict[str, Packed | Indices | Rebuilt]:
        """What :mod:`bnn_shared.export` stores: ``luts`` as 1-bit 0/1 truth tables (with
        ``ste``; the raw float tables otherwise) and the fixed wiring ``mapping`` with
        ``ceil(log2(input_size))`` bits per index. With a learnable mapping, ``mapping`` is
        the slot wiring ``arange(J*n)``, which every such layer builds the same way: it is not
        stored (:class:`~bnn_shared.export.Rebuilt`), and the mapping's own ``packed_state``
        stores its argmax.
        Reloaded, the forward gives the same bits: ``1[1 > 0] = 1``, ``1[0 > 0] = 0``."""
        state: dict[str, Packed | Indices | Rebuilt] = {}
        if self.ste:
            state["luts"] = Packed(self.quantized_weight(), 1)
        if self.learnable_mapping is None:
            state["mapping"] = Indices(self.mapping.detach(), self.input_size)
        else:
            state["mapping"] = Rebuilt(tuple(self.mapping.shape))
        return state

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, output_size={self.output_size}, n={self.n}, "
            f"mapping={self.mapping_kind!r}, efd={self.efd!r}, ste={self.ste}, "
            f"clamp_luts={self.clamp_luts}, backend={self.backend!r}"
        )


def _check_wiring(mapping, input_size: int, output_size: int, n: int) -> Tensor:
    """A user wiring: an integer tensor (output_size, n) with values in [0, input_size)."""
    if not isinstance(mapping, Tensor):
        raise ConfigError(
            f"LUTLayer: mapping must be one of {MAPPINGS} or an int tensor ({output_size}, {n}), "
            f"got {type(mapping).__name__}"
        )
    if mapping.is_floating_point() or mapping.is_complex() or mapping.dtype == torch.bool:
        raise ConfigError(
            f"LUTLayer: a mapping tensor must have an integer dtype, got {mapping.dtype}"
        )
    if tuple(mapping.shape) != (output_size, n):
        raise ShapeError(
            f"LUTLayer: a mapping tensor must have shape (output_size, n) = ({output_size}, {n}), "
            f"got {tuple(mapping.shape)}"
        )
    low, high = int(mapping.min()), int(mapping.max())
    if low < 0 or high >= input_size:
        raise ShapeError(
            f"LUTLayer: mapping values must lie in [0, {input_size}) (input_size), "
            f"got values in [{low}, {high}]"
        )
    return mapping.detach().clone()


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"LUTLayer: {name} must be a positive int, got {value!r}")
    return int(value)


def _real(value, name: str) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"LUTLayer: {name} must be a real number, got {value!r}")
    return float(value)
