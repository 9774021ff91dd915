"""Activation quantizers for post-training quantization (reference ``extra_layers``).

:class:`ActivationQuantizer` is a symmetric uniform quantizer with a FIXED scale calibrated on
data (the reference's ``_Quantize_stats``, which is broken at its HEAD):

    calibration:  alpha = max |v| over the calibration data
    forward:      q(v) = clamp(round(v * c / alpha), -c, c - 1) * alpha / c,   c = 2^(bits-1)

The forward is the core's HadamRNN quantizer with a fixed scale,
``bnn_shared.quantizers.uniform(v, bits, scale=alpha)`` (zeros while ``alpha`` is 0). Values
beyond ``alpha`` saturate. No gradient is needed (evaluation only).
"""

from __future__ import annotations

import torch
from bnn_shared.errors import ConfigError
from bnn_shared.quantizers import uniform
from torch import Tensor, nn

__all__ = ["ActivationQuantizer"]


class ActivationQuantizer(nn.Module):
    """Fixed-scale ``bits``-bit quantizer; :meth:`observe` data, then call it.

    Args:
        bits: bit width, 2..32.
    """

    def __init__(self, bits: int):
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 32:
            raise ConfigError(f"activation bits must be an integer in 2..32, got {bits!r}")
        self.bits = bits
        self.register_buffer("max_abs", torch.zeros(()))

    @torch.no_grad()
    def observe(self, values: Tensor) -> None:
        """Widen the calibrated range to cover ``values``."""
        self.max_abs.copy_(torch.maximum(self.max_abs, values.detach().abs().max().cpu()))

    def forward(self, values: Tensor) -> Tensor:
        return uniform(values, self.bits, scale=self.max_abs)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, max_abs={float(self.max_abs):.4g}"
