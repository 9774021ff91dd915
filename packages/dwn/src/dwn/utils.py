"""GroupSum (the popcount classifier), the straight-through step's old name and small helpers.

A DWN ends in :class:`GroupSum`: the binary outputs of the last LUT layer are split into
``k`` contiguous blocks, one per class, and each block's popcount divided by ``tau`` is that
class's logit (Bacellar et al., "Differentiable Weightless Neural Networks", ICML 2024).
:data:`STE` (torch-dwn's name) builds the core's straight-through Heaviside step, which turns
the real value read from a LUT into a bit with an identity gradient.
"""

from __future__ import annotations

import numbers
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError, ShapeError
from torch import Tensor, nn

__all__ = ["pad_if_needed", "GroupSum", "STE"]


def pad_if_needed(x: Tensor, n: int) -> Tensor:
    """Zero-pad the last dimension of ``x`` to a multiple of ``n`` (``x`` itself if it is one)."""
    remainder = x.size(-1) % n
    if remainder == 0:
        return x
    return F.pad(x, (0, n - remainder))


def _resolve_alias(name: str, value: Any, alias: str, alias_value: Any, owner: str) -> Any:
    """The value of an argument that may also be given under an alias keyword (never both)."""
    if alias_value is None:
        if value is None:
            raise ConfigError(f"{owner}: missing required argument {name!r}")
        return value
    if value is not None and value != alias_value:
        raise ConfigError(
            f"{owner}: {name}={value!r} and its alias {alias}={alias_value!r} disagree; give one"
        )
    return alias_value


def _positive_int(value: Any, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)


def _prepare_lazy_buffer(module: nn.Module, name: str, state_dict: dict, prefix: str) -> None:
    """Let ``load_state_dict`` fill a buffer that is still ``None`` (not fitted / not drawn yet).

    PyTorch skips ``None`` buffers when loading, so a saved tensor would be reported as an
    unexpected key; an empty buffer of the saved shape is put in place for it to be copied into.
    """
    saved = state_dict.get(prefix + name)
    if saved is not None and getattr(module, name) is None:
        module.register_buffer(name, torch.empty_like(saved))


class GroupSum(nn.Module):
    """Per-class popcount divided by a temperature: the DWN classifier head.

    Forward, for ``x`` of shape (..., N): optionally permute the last dimension, zero-pad it to
    a multiple of ``k`` (N' = k·m), view it as (..., k, m) and return ``x.sum(-1) / tau`` of
    shape (..., k). Class c owns the CONTIGUOUS block of outputs [c·m, (c+1)·m). The gradient is
    ``g / tau`` broadcast over each block. At inference hardware computes popcount + argmax;
    ``tau`` only matters for the softmax during training.

    Args:
        k: number of classes (groups). ``num_groups`` is accepted as an alias keyword (the name
            the reference README uses).
        tau: softmax temperature dividing the counts (default 1); a fixed hyperparameter.
        randperm: ``False`` (default) for no permutation; ``True`` to permute all N outputs
            with a permutation drawn once from torch's global RNG at the first forward call
            (N is taken from that first input) and then kept fixed; an int ``size`` to draw
            ``torch.randperm(size)`` at construction, as the reference does, and apply
            ``x[..., perm]`` (with size < N only those ``size`` outputs are kept). The
            permutation is a buffer, ``self.randperm`` (``None`` when unused), so it is saved in
            the state_dict and read by the exporter.

    The reference turns ``randperm=True`` into ``torch.randperm(1)`` (a bug); here ``True``
    means "permute everything".
    """

    def __init__(
        self,
        k: int | None = None,
        tau: float = 1,
        randperm: bool | int = False,
        *,
        num_groups: int | None = None,
    ) -> None:
        super().__init__()
        k = _resolve_alias("k", k, "num_groups", num_groups, "GroupSum")
        self.k = _positive_int(k, "k", "GroupSum")
        if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or tau == 0:
            raise ConfigError(f"GroupSum: tau must be a non-zero number, got {tau!r}")
        self.tau = tau
        if randperm is not None and not isinstance(randperm, bool | int):
            raise ConfigError(f"GroupSum: randperm must be a bool or an int, got {randperm!r}")
        self._permute_all = randperm is True
        perm = None
        if not isinstance(randperm, bool) and randperm:
            perm = torch.randperm(_positive_int(randperm, "randperm", "GroupSum"))
        self.register_buffer("randperm", perm)

    @property
    def num_groups(self) -> int:
        """Alias of ``k`` (README naming)."""
        return self.k

    def forward(self, x: Tensor) -> Tensor:
        if self._permute_all and self.randperm is None:
            self.randperm = torch.randperm(x.size(-1)).to(x.device)
        if self.randperm is not None:
            x = self._permute(x)
        x = pad_if_needed(x, self.k)
        x = x.reshape(*x.shape[:-1], self.k, x.size(-1) // self.k)
        return x.sum(dim=-1) / self.tau

    def _permute(self, x: Tensor) -> Tensor:
        perm = self.randperm
        if perm.numel() > x.size(-1):
            raise ShapeError(
                f"GroupSum: the permutation has {perm.numel()} entries but the input has only "
                f"{x.size(-1)} outputs in its last dimension"
            )
        return x.index_select(-1, perm.to(x.device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self._permute_all:
            _prepare_lazy_buffer(self, "randperm", state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        perm = "True" if self._permute_all else self.randperm is not None
        return f"k={self.k}, tau={self.tau}, randperm={perm}"


#: ``STE()`` is the core's :class:`~bnn_shared.quantizers.SteHeaviside` with
#: ``clip_value=None``: forward ``1[x > 0]`` (in ``x``'s dtype, float32 for an integer ``x``),
#: identity gradient. Kept under torch-dwn's name so that ``dwn.STE()`` keeps working; new code
#: uses ``quantizers.SteHeaviside(clip_value=None)`` or ``quantizers.ste_heaviside(x, None)``.
STE = partial(quantizers.SteHeaviside, clip_value=None)
