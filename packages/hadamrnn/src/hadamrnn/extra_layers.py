"""Activations and activation quantizers (reference ``extra_layers`` and ``layers.modrelu``).

* :class:`ModReLU` (reference ``modrelu``, from expRNN): ``f(x) = sgn(x) ReLU(|x| + 1e-6 + b)``
  with a learnable bias ``b``; :data:`ACTIVATIONS` maps ``MODEL.ACTIVATION`` names to builders.
* :class:`StatsQuantizer` (reference ``_Quantize_stats``, broken at its HEAD, spec B.2): the
  input and state quantizers of QSSM (``MODEL.NUM_BITS_FEAT``), trained through with an
  identity STE, in calibration mode (scale = the current tensor's max-abs) or fixed mode.
* :class:`ActivationQuantizer`: a fixed-scale quantizer calibrated on data, for
  post-training quantization (:mod:`hadamrnn.ptq`):

      calibration:  alpha = max |v| over the calibration data
      forward:      q(v) = clamp(round(v * c / alpha), -c, c - 1) * alpha / c,   c = 2^(bits-1)

  The forward is the core's HadamRNN quantizer with a fixed scale,
  ``bnn_shared.quantizers.uniform(v, bits, scale=alpha)`` (zeros while ``alpha`` is 0). Values
  beyond ``alpha`` saturate. No gradient is needed (evaluation only).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from bnn_shared.errors import ConfigError
from bnn_shared.quantizers import hard_sign, uniform
from bnn_shared.registry import Registry
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ActivationQuantizer", "ModReLU", "StatsQuantizer", "modrelu"]


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 32:
        raise ConfigError(f"activation bits must be an integer in 2..32, got {bits!r}")
    return bits


class ModReLU(nn.Module):
    """``f(x) = sgn(x) ReLU(|x| + 1e-6 + b)`` per feature (last axis), ``sgn(0) = 0``.

    Gradient (autograd): ``df/dx = 1[|x| + 1e-6 + b > 0]`` for ``x != 0`` (0 at ``x = 0``),
    ``df/db = sgn(x) 1[|x| + 1e-6 + b > 0]``. Reference ``layers.modrelu`` (after expRNN,
    Lezcano-Casado and Martínez-Rubio, ICML 2019); the HadamRNN PTQ notebook reads its bias as
    ``activation.b``.

    Args:
        features: size of the last axis (``MODEL.HIDDEN_SIZE``); ``b`` starts ``U(-0.01, 0.01)``.
    """

    def __init__(self, features: int):
        super().__init__()
        self.features = features
        self.b = nn.Parameter(torch.empty(features).uniform_(-0.01, 0.01))

    def forward(self, x: Tensor) -> Tensor:
        # sgn(0) = 0; the sign has no gradient of its own (the core's plain sign value)
        return hard_sign(x, zero=0) * torch.relu(x.abs() + 1e-6 + self.b)

    def extra_repr(self) -> str:
        return f"features={self.features}"


#: The reference's spelling (``ACTIVATION: $layers.modrelu``).
modrelu = ModReLU

#: Activations by name (``MODEL.ACTIVATION``): ``builder(features) -> nn.Module``.
ACTIVATIONS: Registry[Callable[[int], nn.Module]] = Registry("activation", flag="MODEL.ACTIVATION")
ACTIVATIONS.register("relu", lambda features: nn.ReLU())
ACTIVATIONS.register("modrelu", ModReLU)


class StatsQuantizer(nn.Module):
    """``bits``-bit quantizer of activations with a calibrated or fixed scale (identity STE).

    Forward, for ``v`` scaled first by ``pre_scaling`` (and NOT divided back, as the
    reference): ``q(v) = clamp(round(v c / alpha), -c, c - 1) alpha / c``, ``c = 2^(bits-1)``,
    gradient ``dq/dv = pre_scaling`` (identity STE, nothing to ``alpha``).

    * calibration mode (``max_absolute == 0``, the default): ``alpha = max |v|`` of the current
      tensor (a zero tensor stays zero), and the running maximum ``stat_max_absolute``
      (initially 1e-10) records the largest ``alpha`` seen;
    * fixed mode (``max_absolute > 0``, e.g. after :meth:`fix`): ``alpha = max_absolute``,
      values beyond it saturate.

    Both are buffers, so checkpoints keep the calibration. Spec B.2 "Stats quantiser".

    Args:
        bits: bit width, 2..32.
        max_absolute: the fixed scale ``M`` (0: calibration mode).
        pre_scaling: factor applied to the input first (``MODEL.PRE_SCALING_FEAT``), default 1.
    """

    def __init__(self, bits: int, *, max_absolute: float = 0.0, pre_scaling: float = 1.0):
        super().__init__()
        self.bits = _check_bits(bits)
        self.pre_scaling = float(pre_scaling)
        self.register_buffer("max_absolute", torch.tensor(float(max_absolute)))
        self.register_buffer("stat_max_absolute", torch.tensor(1e-10))

    @property
    def calibrating(self) -> bool:
        return float(self.max_absolute) == 0.0

    @torch.no_grad()
    def fix(self, max_absolute: float | None = None) -> None:
        """Fixed mode with scale ``max_absolute`` (default: the calibrated maximum)."""
        value = float(self.stat_max_absolute) if max_absolute is None else float(max_absolute)
        if value <= 0:
            raise ConfigError(f"a fixed activation scale must be > 0, got {value}")
        self.max_absolute.fill_(value)

    def forward(self, values: Tensor) -> Tensor:
        if self.pre_scaling != 1.0:
            values = values * self.pre_scaling
        if not self.calibrating:
            return uniform(values, self.bits, scale=self.max_absolute)
        alpha = values.detach().abs().max()
        with torch.no_grad():
            stat = torch.maximum(self.stat_max_absolute, alpha.to(self.stat_max_absolute))
            self.stat_max_absolute.copy_(stat)
        return uniform(values, self.bits, scale=alpha)

    def extra_repr(self) -> str:
        mode = "calibration" if self.calibrating else f"max_absolute={float(self.max_absolute):.4g}"
        return f"bits={self.bits}, pre_scaling={self.pre_scaling}, {mode}"


class ActivationQuantizer(nn.Module):
    """Fixed-scale ``bits``-bit quantizer; :meth:`observe` data, then call it.

    Args:
        bits: bit width, 2..32.
    """

    def __init__(self, bits: int):
        super().__init__()
        self.bits = _check_bits(bits)
        self.register_buffer("max_abs", torch.zeros(()))

    @torch.no_grad()
    def observe(self, values: Tensor) -> None:
        """Widen the calibrated range to cover ``values``."""
        self.max_abs.copy_(torch.maximum(self.max_abs, values.detach().abs().max().cpu()))

    def forward(self, values: Tensor) -> Tensor:
        return uniform(values, self.bits, scale=self.max_abs)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, max_abs={float(self.max_abs):.4g}"
