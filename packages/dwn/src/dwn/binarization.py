"""Thermometer encoders: real features to unary bit codes, fitted on training data.

Each encoder learns ``num_bits`` ascending thresholds thr_1 <= ... <= thr_b, per feature
(``feature_wise=True``) or shared by all features, and encodes a value as
bit_t = 1[x > thr_t] (strict), i.e. a count of ones. The three encoders differ only in how the
thresholds are placed (Bacellar et al., "Differentiable Weightless Neural Networks", ICML 2024):

* :class:`Thermometer`: uniform, thr_t = min + t·(max − min)/(b + 1);
* :class:`GaussianThermometer`: thr_t = mean + std·Φ⁻¹(t/(b + 1)) (unbiased std);
* :class:`DistributiveThermometer`: empirical quantiles, thr_t = sorted[⌊N·t/(b + 1)⌋].

Unlike the reference (plain Python objects) the encoders are ``nn.Module``s whose thresholds are
a buffer: they are saved in the state_dict, follow ``.to(device)`` and can sit inside an
``nn.Sequential`` (``forward`` is ``binarize``). ``fit``/``binarize`` behave as in torch-dwn.
"""

from __future__ import annotations

from typing import Any

import torch
from bnn_shared.errors import BnnError, ConfigError, ShapeError
from bnn_shared.registry import Registry
from torch import Tensor, nn

from .utils import _positive_int, _prepare_lazy_buffer

__all__ = ["ENCODERS", "Thermometer", "GaussianThermometer", "DistributiveThermometer"]

#: The thermometer encoders by the name a config gives them (``encoder: distributive``).
ENCODERS: Registry[type[Thermometer]] = Registry("encoder", flag="--encoder")


@ENCODERS.register("thermometer")
class Thermometer(nn.Module):
    """Uniform thermometer: ``num_bits`` thresholds evenly spaced between the min and the max.

    thr_t = min + t·(max − min)/(num_bits + 1), t = 1..num_bits, where min and max are taken
    over the N samples (dim 0) for each feature, or over all values when ``feature_wise`` is
    False. ``binarize(x)`` returns float32 0/1 of shape (*x.shape, num_bits) with
    bit_t = 1[x > thr_t]; flattening from dim 1 gives feature-major order.

    Args:
        num_bits: number of thresholds (bits per feature), default 1.
        feature_wise: per-feature thresholds, shape (*feature_shape, num_bits) (default True);
            False: one global set, shape (num_bits,).

    Attributes:
        thresholds: buffer, ``None`` until :meth:`fit` is called.
    """

    def __init__(self, num_bits: int = 1, feature_wise: bool = True) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_bits = _positive_int(num_bits, "num_bits", owner)
        if not isinstance(feature_wise, bool):
            raise ConfigError(f"{owner}: feature_wise must be a bool, got {feature_wise!r}")
        self.feature_wise = feature_wise
        self.register_buffer("thresholds", None)

    def param_precisions(self) -> dict[str, int]:
        """For the summary: the thresholds are float32 values the deployed model keeps."""
        return {"thresholds": 32}

    def fit(self, x: Any) -> Thermometer:
        """Compute the thresholds from training data ``x`` of shape (N, *features); returns self."""
        x = torch.as_tensor(x).detach()
        if x.ndim == 0 or x.size(0) == 0:
            raise ShapeError(
                f"{type(self).__name__}.fit expects data of shape (N, *features) with N >= 1, "
                f"got shape {tuple(x.shape)}"
            )
        with torch.no_grad():
            self.thresholds = self.get_thresholds(x)
        return self

    def get_thresholds(self, x: Tensor) -> Tensor:
        """Thresholds for data ``x`` (N, *features), bits in the last dimension."""
        x = _as_float(x)
        lo = x.amin(dim=0) if self.feature_wise else x.min()
        hi = x.amax(dim=0) if self.feature_wise else x.max()
        steps = torch.arange(1, self.num_bits + 1, device=x.device)
        # Same operation order as the reference, so that the thresholds match it bit for bit.
        return lo.unsqueeze(-1) + steps * ((hi - lo) / (self.num_bits + 1)).unsqueeze(-1)

    def binarize(self, x: Any) -> Tensor:
        """Encode ``x`` (*batch, *features) as float32 bits of shape (*x.shape, num_bits)."""
        if self.thresholds is None:
            raise BnnError(f"{type(self).__name__}: call fit(x) first, then binarize(x)")
        x = torch.as_tensor(x)
        thresholds = self.thresholds.to(x.device)
        feature_shape = thresholds.shape[:-1]
        if x.shape[x.ndim - len(feature_shape) :] != feature_shape:
            raise ShapeError(
                f"{type(self).__name__} was fitted on features of shape {tuple(feature_shape)}; "
                f"got input of shape {tuple(x.shape)}"
            )
        return (x.unsqueeze(-1) > thresholds).float()

    forward = binarize

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _prepare_lazy_buffer(self, "thresholds", state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        fitted = "unfitted" if self.thresholds is None else f"fitted {tuple(self.thresholds.shape)}"
        return f"num_bits={self.num_bits}, feature_wise={self.feature_wise}, {fitted}"


@ENCODERS.register("gaussian")
class GaussianThermometer(Thermometer):
    """Gaussian thermometer: thresholds at the quantiles of a normal fitted to the data.

    thr_t = mean + std·Φ⁻¹(t/(num_bits + 1)), with the unbiased std and Φ⁻¹ the standard
    normal inverse CDF; for 3 bits mean + {−0.674, 0, +0.674}·std. Statistics are per feature
    over dim 0, or over all values when ``feature_wise`` is False. Φ⁻¹ is evaluated in float64
    and rounded once to the data dtype (the reference evaluates it in float32, which can be one
    float32 ulp off). Arguments as :class:`Thermometer`; fitting needs at least 2 values per
    feature.
    """

    def get_thresholds(self, x: Tensor) -> Tensor:
        x = _as_float(x)
        count = x.size(0) if self.feature_wise else x.numel()
        if count < 2:
            raise ShapeError(
                "GaussianThermometer.fit needs at least 2 values per feature for the std, "
                f"got data of shape {tuple(x.shape)}"
            )
        mean = x.mean(dim=0) if self.feature_wise else x.mean()
        std = x.std(dim=0) if self.feature_wise else x.std()
        skews = _normal_quantiles(self.num_bits).to(device=x.device, dtype=x.dtype)
        return std.unsqueeze(-1) * skews + mean.unsqueeze(-1)


@ENCODERS.register("distributive")
class DistributiveThermometer(Thermometer):
    """Distributive (equal-frequency) thermometer: thresholds at empirical quantiles.

    Sort the N training values of each feature (all values flattened when ``feature_wise`` is
    False, N = x.numel()) and take thr_t = sorted[⌊N·t/(num_bits + 1)⌋], no interpolation.
    Example: data 0..99 with 3 bits gives thresholds 25, 50, 75, and 75 encodes as (1, 1, 0).

    Ties are kept as in the reference: a value shared by many samples gives duplicate
    thresholds and hence constant or repeated bits (MNIST background pixels are 0 in more than
    75 % of images, so all 3 thresholds are 0 and the 3 bits repeat "x > 0"). The thresholds
    keep the data dtype. Arguments as :class:`Thermometer`.
    """

    def get_thresholds(self, x: Tensor) -> Tensor:
        data = x.sort(dim=0).values if self.feature_wise else x.flatten().sort().values
        n, parts = data.size(0), self.num_bits + 1
        index = torch.tensor([n * t // parts for t in range(1, parts)], device=x.device)
        return data[index].movedim(0, -1)


def _as_float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _normal_quantiles(num_bits: int) -> Tensor:
    """Φ⁻¹(t/(num_bits + 1)) for t = 1..num_bits, in float64."""
    p = torch.arange(1, num_bits + 1, dtype=torch.float64) / (num_bits + 1)
    return torch.special.ndtri(p)
