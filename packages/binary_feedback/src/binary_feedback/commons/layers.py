"""Layers of study A's MLP and the weight binariser shared by both studies.

* :func:`weight_quantizer`: the weight quantizer ``W_b = sign(W)`` (sign(0) = -1, no scaling
  factor) with study A's three latent-weight STEs, as the core's quantizer classes
  (``Sign``, ``SteSign``, ``TanhSign`` with ``zero=-1``, precision 1), so the core's summary
  and bit-packed export see binary weights.
* :class:`BinaryLinear`: bias-free Linear with latent weights initialised U(-init, +init).
* :class:`StudyABatchNorm1d`: study A's batch norm (eps 1e-3 on the biased batch variance,
  running statistics seeded by the first batch).
* :func:`is_binarized` tells the layers whose forward weight is the sign of a latent weight.
  The after-step clipping of either study is the core's
  :func:`bnn_shared.layers.clip_weights_` (study A: ``select=is_linear``, every Linear's
  weight to ``weight_clipping``; study B: ``select=is_binarized``, to [-1, 1]).

References: Crulis, Serres, de Runz, Venturini, ACM SAC 2023 (study A) and arXiv 2408.04460
(study B).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from bnn_shared import quantizers
from bnn_shared.layers import QuantLinear, latent_weight
from bnn_shared.quantizers import Quantizer
from bnn_shared.registry import Registry
from torch import Tensor, nn

__all__ = [
    "WEIGHT_STES",
    "BinaryLinear",
    "StudyABatchNorm1d",
    "is_binarized",
    "is_linear",
    "latent_weight",
    "weight_quantizer",
    "weight_quantizer_of",
]

#: Latent-weight straight-through estimators (study A's ``--weight-ste``): each builds the
#: core quantizer of ``sign(W)`` (sign(0) = -1) given the ``strict`` window of ``sat``.
WEIGHT_STES: Registry[Callable[[bool], Quantizer]] = Registry("weight STE", flag="--weight-ste")
WEIGHT_STES.register("identity", lambda strict: quantizers.Sign(zero=-1))
WEIGHT_STES.register("sat", lambda strict: quantizers.SteSign(1.0, zero=-1, strict=strict))
WEIGHT_STES.register("tanh", lambda strict: quantizers.TanhSign(zero=-1))


def weight_quantizer(ste: str = "identity", strict: bool = True) -> Quantizer:
    """The binary weight quantizer ``W_b = +1 if W > 0 else -1`` with a latent-weight STE.

    Pseudo-gradients (upstream gradient g): ``identity``: g (study A's default, used in the
    paper; ``quantizers.Sign(zero=-1)``); ``sat``: ``g * 1(|W| < 1)`` when ``strict``,
    ``g * 1(|W| <= 1)`` otherwise (``quantizers.SteSign(1.0, zero=-1, strict=strict)``; study
    B binarises weights with its activation sign, whose window is inclusive: with weights
    clipped to [-1, 1] this is the identity); ``tanh``: ``g * (1 - tanh(W)^2)``
    (``quantizers.TanhSign(zero=-1)``). Every one has precision 1.

    Args:
        ste: one of ``identity``, ``sat``, ``tanh``. Default ``identity``.
        strict: window of ``sat``: ``|W| < 1`` (True) or ``|W| <= 1`` (False). Default True.

    Raises:
        ConfigError: unknown ``ste`` (the message lists the known ones).
    """
    return WEIGHT_STES.get(ste)(bool(strict))


class BinaryLinear(QuantLinear):
    """Study A's Linear: ``y = x @ sign(W).T`` (binarised) or ``x @ W.T``, no bias by default.

    ``weight`` is the latent real weight the optimizer updates; with ``binarize`` the forward
    pass uses ``quantized_weight() = sign(W)`` (exactly +-1, sign(0) = -1), the error flows
    down through ``sign(W)`` and the weight gradient ``x^T delta`` reaches ``W`` through the
    chosen STE. The core's ``summary`` counts the binarised weight as 1 bit and
    ``save_binary`` bit-packs it.

    Args:
        in_features, out_features: as in ``nn.Linear``.
        binarize: binary forward weights. Default True.
        weight_ste: latent-weight STE, one of ``identity``, ``sat`` (strict window),
            ``tanh``. Default ``identity``.
        init: latent weights drawn U(-init, +init) (the paper uses 0.1 and 1e-3); None keeps
            PyTorch's default initialisation. Default 0.1.
        bias: add a (never binarised) bias. Default False, as in both references' MLPs.
        device, dtype: as in ``nn.Linear`` (study A ran in float64).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        binarize: bool = True,
        weight_ste: str = "identity",
        init: float | None = 0.1,
        bias: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        quantizer = weight_quantizer(weight_ste) if binarize else None
        super().__init__(in_features, out_features, bias, device, dtype, kernel_quantizer=quantizer)
        if init is not None:
            nn.init.uniform_(self.weight, -init, init)
            if self.bias is not None:
                nn.init.zeros_(self.bias)

    @property
    def weight_precision(self) -> int:
        """Bits per value of :meth:`quantized_weight`: the kernel quantizer's precision, or,
        when study B binarised this layer by a parametrization of ``weight``, that
        quantizer's (1); 32 for a float weight."""
        parametrized = weight_quantizer_of(self)
        if self.kernel_quantizer is None and parametrized is not None:
            return int(parametrized.precision)
        return self.kernel_precision


class StudyABatchNorm1d(nn.Module):
    """Study A's batch norm over features of a ``(batch, features)`` input.

    Training: ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` with the batch mean and the
    biased batch variance; autograd gives the exact backward. The running statistics take the
    first training batch's values, then ``r = (1 - momentum) * r + momentum * batch``.
    Evaluation normalises with the running statistics.

    Args:
        num_features: number of features.
        eps: added to the variance. Default 1e-3.
        momentum: weight of the new batch in the running statistics. Default 0.1.
        device, dtype: of the parameters and buffers.

    Parameters ``weight`` (gamma, init 1) and ``bias`` (beta, init 0) are trained.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-3,
        momentum: float = 0.1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        self.register_buffer("running_mean", torch.zeros(num_features, **factory))
        self.register_buffer("running_var", torch.ones(num_features, **factory))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        # F.batch_norm normalises with the batch mean and biased variance in training mode
        # (one fused kernel forward and backward); the study's running statistics, which
        # differ from PyTorch's (first batch seeds them, biased variance), are kept here.
        if self.training:
            out, mean, invstd = torch.native_batch_norm(
                x, self.weight, self.bias, None, None, True, 0.0, self.eps
            )
            with torch.no_grad():  # the batch statistics the kernel computed anyway
                self._update_running_stats(mean, invstd.pow(-2).sub_(self.eps))
            return out
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor) -> None:
        # keep = 0 on the first batch (the running stats become the batch's), then 1 - momentum;
        # a tensor condition avoids a host synchronisation per step on GPU.
        keep = torch.where(self.num_batches_tracked > 0, 1.0 - self.momentum, 0.0)
        keep = keep.to(mean.dtype)
        self.running_mean.mul_(keep).add_((1 - keep) * mean)
        self.running_var.mul_(keep).add_((1 - keep) * var)
        self.num_batches_tracked.add_(1)

    def param_precisions(self) -> dict[str, int]:
        """For the summary: the running statistics are float values inference needs."""
        return {"running_mean": 32, "running_var": 32}

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def weight_quantizer_of(module: nn.Module) -> Quantizer | None:
    """The quantizer that makes the module's forward weight from a latent one: its
    ``kernel_quantizer`` (:class:`BinaryLinear`) or a quantizer parametrization of ``weight``
    (:func:`binary_feedback.utils.binary.binarize_weights`); None for a float weight."""
    kernel = getattr(module, "kernel_quantizer", None)
    if isinstance(kernel, Quantizer):
        return kernel
    chain = getattr(getattr(module, "parametrizations", None), "weight", None)
    found = [p for p in chain if isinstance(p, Quantizer)] if chain is not None else []
    return found[-1] if found else None


def is_binarized(module: nn.Module) -> bool:
    """Whether the module's forward weight is ``sign`` of a latent weight: a 1-bit weight
    quantizer (see :func:`weight_quantizer_of`) other than the core's ``NoOp``, which a
    reloaded export holds over weights that already are +-1."""
    quantizer = weight_quantizer_of(module)
    return (
        quantizer is not None
        and not isinstance(quantizer, quantizers.NoOp)
        and int(quantizer.precision) == 1
    )


def is_linear(module: nn.Module) -> bool:
    """Study A's clipping selection: every Linear, binarised or continuous."""
    return isinstance(module, nn.Linear)
