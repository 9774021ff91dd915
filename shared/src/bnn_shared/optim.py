"""Optimizers for binary weights.

:class:`Bop` is the Binary Optimizer of Helwegen et al. (2019), as in larq: no latent
real-valued weights, only an exponential moving average ``m`` of the gradient per weight,
and a weight flips its sign when ``m`` has pointed against it by more than a threshold::

    m <- (1 - gamma) * m + gamma * grad
    flip w where sign(m) == sign(w) and |m| > threshold    (i.e. sign(w) * m > threshold)

``grad`` is the loss gradient (``p.grad``, as for every ``torch.optim`` optimizer); a flip
multiplies the weight by -1, so its magnitude (a scaling factor such as XNOR-Net's alpha)
is kept. The moving average is not reset after a flip. This is also the flip rule of
binary Equilibrium Propagation (Laydevant et al. 2021), written there with the descent
direction ``g = -grad``: flip where ``-sign(w) * m_g > threshold``.

Example::

    opt = Bop([{"params": [w1], "gamma": 1e-5, "threshold": 5e-7},
               {"params": [w2], "gamma": 1e-4, "threshold": 5e-7}])
    loss.backward(); opt.step()
    opt.flips(w1)  # flips of w1 since the last reset_flips()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["Bop"]


class Bop(torch.optim.Optimizer):
    """Flip optimizer for binary (sign times scale) weights.

    Args:
        params: parameters or parameter groups; a group may set its own ``gamma``,
            ``threshold`` and ``inclusive``.
        gamma: moving-average rate of the gradient (0 < gamma <= 1).
        threshold: flip threshold (>= 0).
        inclusive: flip where ``sign(w) * m >= threshold`` instead of ``>`` (the
            convolutional networks of binary EP use ``>=``).

    State per parameter: ``momentum`` (the moving average ``m``), ``flips`` (a count since
    the last :meth:`reset_flips`, an int64 tensor on the parameter's device, so that
    counting needs no device synchronisation) and ``steps``. Before the first step the
    momentum is zero; :meth:`set_momentum` seeds it (for instance with noise).
    """

    def __init__(
        self,
        params: Iterable[Any],
        gamma: float = 1e-4,
        threshold: float = 1e-8,
        inclusive: bool = False,
    ):
        _check(gamma, threshold)
        defaults = {"gamma": gamma, "threshold": threshold, "inclusive": inclusive}
        super().__init__(params, defaults)
        for group in self.param_groups:
            _check(group["gamma"], group["threshold"])

    def _state(self, p: torch.Tensor) -> dict[str, Any]:
        state = self.state[p]
        if not state:
            state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["flips"] = torch.zeros((), dtype=torch.int64, device=p.device)
            state["steps"] = 0
        return state

    def set_momentum(self, p: torch.Tensor, value: torch.Tensor) -> None:
        """Set the moving average of ``p`` (e.g. a noisy seed before the first step)."""
        self._state(p)["momentum"].copy_(value)

    def momentum(self, p: torch.Tensor) -> torch.Tensor:
        """The moving average ``m`` of ``p`` (zeros before the first step)."""
        return self._state(p)["momentum"]

    def flips(self, p: torch.Tensor) -> int:
        """Number of sign flips of ``p`` since the last :meth:`reset_flips`."""
        return int(self._state(p)["flips"].item())

    def reset_flips(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                self._state(p)["flips"].zero_()

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim.Optimizer API
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            gamma, threshold = group["gamma"], group["threshold"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state(p)
                m = state["momentum"]
                m.mul_(1 - gamma).add_(p.grad, alpha=gamma)
                signed = torch.mul(m, p.sign())  # sign(w) * m: > threshold means "flip"
                flip = signed.ge_(threshold) if group["inclusive"] else signed.gt_(threshold)
                # signed now holds 1.0 where a flip happens: w <- w * (1 - 2 * flip)
                state["flips"] += flip.sum(dtype=torch.int64)
                p.mul_(flip.mul_(-2).add_(1))
                state["steps"] += 1
        return loss


def _check(gamma: float, threshold: float) -> None:
    if not 0 < gamma <= 1:
        raise ValueError(f"Bop: gamma must be in (0, 1], got {gamma}")
    if threshold < 0:
        raise ValueError(f"Bop: threshold must be >= 0, got {threshold}")
