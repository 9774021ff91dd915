"""Layers of study A's MLP and the weight binariser shared by both studies.

* :class:`SignWeight`: the weight quantizer ``W_b = sign(W)`` (sign(0) = -1, no scaling
  factor) with study A's three latent-weight STEs; a core :class:`~bnn_shared.quantizers.
  Quantizer` of precision 1, so the core's summary and bit-packed export see binary weights.
* :class:`BinaryLinear`: bias-free Linear with latent weights initialised U(-init, +init).
* :class:`StudyABatchNorm1d`: study A's batch norm (eps 1e-3 on the biased batch variance,
  running statistics seeded by the first batch).
* :func:`clip_weights_`: the after-step weight clipping of either study.

References: Crulis, Serres, de Runz, Venturini, ACM SAC 2023 (study A) and arXiv 2408.04460
(study B).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from bnn_shared.errors import ConfigError
from bnn_shared.layers import QuantLinear
from bnn_shared.quantizers import Quantizer
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .activations import sign_sat, sign_tanh, sign_unsat

__all__ = [
    "WEIGHT_STES",
    "BinaryLinear",
    "SignWeight",
    "StudyABatchNorm1d",
    "clip_weights_",
    "is_binarized",
    "latent_weight",
]

#: Latent-weight straight-through estimators (study A's ``--weight-ste``).
WEIGHT_STES = ("identity", "sat", "tanh")


class SignWeight(Quantizer):
    """Binary weights ``W_b = +1 if W > 0 else -1`` with a pseudo-gradient to the latent ``W``.

    Pseudo-gradients (upstream gradient g): ``identity``: g (study A's default, used in the
    paper); ``sat``: ``g * 1(|W| < 1)`` when ``strict``, ``g * 1(|W| <= 1)`` otherwise (study B
    binarises weights with its activation sign, whose window is inclusive: with weights
    clipped to [-1, 1] this is the identity); ``tanh``: ``g * (1 - tanh(W)^2)``.

    Args:
        ste: one of ``identity``, ``sat``, ``tanh``. Default ``identity``.
        strict: window of ``sat``: ``|W| < 1`` (True) or ``|W| <= 1`` (False). Default True.

    Raises:
        ConfigError: unknown ``ste``.
    """

    precision = 1

    def __init__(self, ste: str = "identity", strict: bool = True) -> None:
        super().__init__()
        if ste not in WEIGHT_STES:
            raise ConfigError(f"unknown weight STE {ste!r}; available: {', '.join(WEIGHT_STES)}")
        self.ste = ste
        self.strict = bool(strict)

    def forward(self, w: Tensor) -> Tensor:
        if self.ste == "sat":
            return sign_sat(w, self.strict)
        return sign_tanh(w) if self.ste == "tanh" else sign_unsat(w)


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
        quantizer = SignWeight(weight_ste) if binarize else None
        super().__init__(in_features, out_features, bias, device, dtype, kernel_quantizer=quantizer)
        if init is not None:
            nn.init.uniform_(self.weight, -init, init)
            if self.bias is not None:
                nn.init.zeros_(self.bias)


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

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def latent_weight(module: nn.Module) -> Tensor:
    """The float weight the optimizer updates: ``parametrizations.weight.original`` for a
    parametrised weight (study B's binarisation), ``weight`` otherwise."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations["weight"].original
    return module.weight


def is_binarized(module: nn.Module) -> bool:
    """Whether the module's forward weight is ``sign`` of a latent weight: a layer with a
    :class:`SignWeight` kernel quantizer (:class:`BinaryLinear`) or a :class:`SignWeight`
    parametrization on ``weight`` (:func:`binary_feedback.utils.binary.binarize_weights`)."""
    if isinstance(getattr(module, "kernel_quantizer", None), SignWeight):
        return True
    if not parametrize.is_parametrized(module, "weight"):
        return False
    return any(isinstance(p, SignWeight) for p in module.parametrizations["weight"])


def clip_weights_(
    model: nn.Module, clip_value: float = 1.0, only_binary: bool = False
) -> nn.Module:
    """Clamp latent weights in place to ``[-clip_value, clip_value]`` (call after each step).

    Study A clips every Linear's weight, continuous ones included (``only_binary=False``,
    ``clip_value = --weight-clipping``); study B clips only the latent weights of binarised
    layers to [-1, 1] (``only_binary=True``), see :func:`is_binarized`. Biases and norm
    parameters are never clipped.

    Returns:
        ``model``, for chaining.

    Raises:
        ConfigError: ``clip_value`` is not positive.
    """
    if clip_value <= 0:
        raise ConfigError(f"weight clipping must be positive, got {clip_value!r}")
    selected = is_binarized if only_binary else (lambda m: isinstance(m, nn.Linear))
    weights = [latent_weight(module) for module in model.modules() if selected(module)]
    if weights:
        with torch.no_grad():
            torch._foreach_clamp_min_(weights, -clip_value)
            torch._foreach_clamp_max_(weights, clip_value)
    return model
