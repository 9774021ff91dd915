"""Study B's Biprop (``--biprop p``) and Bi-Real activations (``--bireal-act``).

Biprop (Diffenderfer and Kailkhura's multi-prize lottery tickets, as study B's code runs it)
trains no weight: every Linear / Conv1d / Conv2d keeps a fixed random weight ``R`` and learns
a score ``S`` per weight; the forward weight is::

    M = 1 for the top p share of |S| (0 for the int((1 - p) numel) smallest)
    alpha = sum(|R| * M) / int(p * numel)
    W = alpha * M * sign(R)                  sign(0) = 0

and the scores get ``dL/dS = dL/dW * R * sign(S)`` (the mask and the sign pass the gradient
straight through; none flows through alpha). ``p`` is the share of weights *kept*, although
the reference calls it a pruning rate.

* ``R ~ U(-a, a)``, ``a = sqrt(15 / fan_in)`` (the reference's kaiming-uniform with a gain of
  sqrt(5) used as a std multiplier), and the layer's bias, if it has one, is replaced by a
  fixed ``U(+-1/sqrt(fan_in))`` buffer (not trained). Both are drawn from a CPU generator
  seeded with a per-layer seed that is drawn once from torch's global generator. The
  reference redraws them from that seed at every forward (reseeding the global generator,
  which on a GPU also resets the CUDA generator every step: spec quirk 29); here they are
  drawn once and kept as buffers, with the same values and no effect on the global RNG.
* ``S`` starts kaiming-uniform(a = sqrt(5)), i.e. ``U(+-1/sqrt(fan_in))``, from the global
  generator, and is the ``original`` of a parametrization of ``weight``: ``module.weight``
  is ``W`` and the optimizer trains ``parametrizations.weight.original`` (the scores).
* Every layer gets it, first and last included (the full-precision list is ignored); BN and
  LayerNorm stay trainable. Binary weights on top (``--binary-weights``) stack the Sign
  parametrization after this one, so pruned zeros become -1; the scores of such a layer are
  then clipped to [-1, 1] with the other latent weights.
* The core's summary counts a Biprop weight of a torch Linear / Conv at 2 bits
  (``weight_precision = 2``: the values are -alpha, 0 and +alpha), or at the Sign's 1 bit
  with binary weights on top; a quant layer (``BinaryLinear``) keeps its own declaration. The
  bit-packed export stores the scores and ``R`` as float tensors (only 1-bit
  parametrizations are packed).

:func:`bireal_activations` swaps the activation modules that ``--binary-act`` would replace
for :class:`~binary_feedback.commons.activations.BiRealAct`.

References: Diffenderfer, Kailkhura, "Multi-Prize Lottery Ticket Hypothesis", ICLR 2021;
Liu et al., "Bi-Real Net", ECCV 2018; Crulis et al., arXiv 2408.04460.
"""

from __future__ import annotations

import math

import torch
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..commons.activations import BiRealAct
from .binary import BINARIZED_WEIGHTS, replace_activations

__all__ = ["BipropWeight", "apply_biprop", "bireal_activations", "biprop_layers", "check_keep"]

#: Exclusive upper bound of the per-layer seeds (as the reference's random integers).
SEED_BOUND = 2**31


def check_keep(keep: object) -> float:
    """``p`` must be a number in (0, 1] (the share of weights kept)."""
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 < keep <= 1:
        raise ConfigError(f"--biprop must be a share of weights kept in (0, 1], got {keep!r}")
    return float(keep)


def top_share_mask(scores: Tensor, keep: float) -> Tensor:
    """1 for the top ``keep`` share of ``|scores|``, 0 for the ``int((1 - keep) numel)``
    smallest (ties broken by the sort order)."""
    flat = scores.detach().abs().flatten()
    dropped = int((1 - keep) * flat.numel())
    mask = torch.ones_like(flat)
    mask[flat.argsort()[:dropped]] = 0
    return mask.view_as(scores)


class BipropWeight(nn.Module):
    """The parametrization ``S -> W = alpha * M * sign(R)`` of one layer's weight.

    Args:
        random_weight: the fixed ``R`` (kept as buffer ``random_weight``).
        keep: share ``p`` of the weights kept, in (0, 1].
    """

    def __init__(self, random_weight: Tensor, keep: float) -> None:
        super().__init__()
        self.keep = check_keep(keep)
        self.register_buffer("random_weight", random_weight)

    def forward(self, scores: Tensor) -> Tensor:
        magnitude = scores.abs()
        mask = magnitude + (top_share_mask(scores, self.keep) - magnitude).detach()
        masked = self.random_weight * mask  # value R * M, gradient R to |S|
        kept = int(self.keep * scores.numel())
        alpha = masked.detach().abs().sum() / max(kept, 1)
        value = quantizers.scaled_sign(masked.detach(), alpha, zero=0)
        return masked + (value - masked.detach())  # alpha * sign(R * M), straight through

    def extra_repr(self) -> str:
        return f"keep={self.keep}"


def _fan_in(weight: Tensor) -> int:
    return math.prod(weight.shape[1:])


def _draw_fixed(module: nn.Module, seed: int) -> tuple[Tensor, Tensor | None]:
    """``R`` and the fixed bias (or None) of a layer, from its own seeded CPU generator."""
    weight = module.weight.detach()
    fan_in = _fan_in(weight)
    generator = torch.Generator().manual_seed(seed)
    bound = math.sqrt(15.0 / fan_in)
    random_weight = torch.empty(weight.shape).uniform_(-bound, bound, generator=generator)
    bias = None
    if getattr(module, "bias", None) is not None:
        bound = 1.0 / math.sqrt(fan_in)
        bias = torch.empty(module.bias.shape).uniform_(-bound, bound, generator=generator)
    dtype, device = weight.dtype, weight.device
    return random_weight.to(device, dtype), None if bias is None else bias.to(device, dtype)


def apply_biprop(model: nn.Module, keep: float) -> list[str]:
    """Turn every Linear / Conv1d / Conv2d of ``model`` into a Biprop layer, in place.

    Call it before any activation or weight binarisation. Draws, per layer in module order,
    a seed (global generator) and the scores (global generator).

    Returns:
        The names of the layers changed.
    """
    keep = check_keep(keep)
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, BINARIZED_WEIGHTS) or parametrize.is_parametrized(module):
            continue
        seed = int(torch.randint(0, SEED_BOUND, (1,)))
        random_weight, bias = _draw_fixed(module, seed)
        scores = torch.empty_like(module.weight)
        nn.init.kaiming_uniform_(scores, a=math.sqrt(5))
        if bias is not None:
            del module.bias
            module.register_buffer("bias", bias)
        parametrize.register_parametrization(module, "weight", BipropWeight(random_weight, keep))
        with torch.no_grad():
            module.parametrizations.weight.original.copy_(scores)
        module.biprop_seed = seed
        if not hasattr(type(module), "weight_precision"):  # quant layers declare their own
            module.weight_precision = 2  # for the summary: values -alpha, 0, +alpha
        names.append(name)
    return names


def biprop_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The Biprop layers of ``model`` by name, in module order."""
    return {
        name: module
        for name, module in model.named_modules()
        if parametrize.is_parametrized(module, "weight")
        and any(isinstance(p, BipropWeight) for p in module.parametrizations.weight)
    }


def bireal_activations(model: nn.Module) -> int:
    """Replace in place every activation module of a ``BINARIZED_ACTIVATIONS`` type by
    :class:`BiRealAct` (the modules ``--binary-act`` replaces). Returns how many."""
    return replace_activations(model, BiRealAct)
