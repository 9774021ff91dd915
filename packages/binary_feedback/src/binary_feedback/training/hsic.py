"""HSIC bottleneck: each layer maximises its dependence on the labels, minimises redundancy.

Also the kernels and estimators of study A's monitoring metric (normalised HSIC per layer).
"""

from __future__ import annotations

from collections.abc import Callable

from bnn_shared.registry import Registry
from torch import Tensor

from .base import LocalRule
from .regimes import Regime, centred_target

__all__ = [
    "HSIC_ESTIMATORS",
    "cosine_kernel",
    "hsic",
    "hsic_biased",
    "hsic_plausible",
    "normalized_hsic",
    "HSIC",
]


def cosine_kernel(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Cosine-similarity Gram matrix ``K_ij = x_i . x_j / (|x_i| |x_j|)`` of the rows of ``x``.

    Samples are flattened to rows; each norm is clamped at ``eps`` so that an all-zero row
    gives a zero row of K instead of NaN. No bandwidth to tune.
    """
    rows = x.flatten(1)
    unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(eps)
    return unit @ unit.T


def hsic_biased(a: Tensor, b: Tensor) -> Tensor:
    """Biased HSIC estimator ``tr(H A H B) / m^2`` of two symmetric ``(m, m)`` kernels.

    Computed in O(m^2) as ``mean(A*B) - 2 mean(rowmean(A) * rowmean(B)) + mean(A) mean(B)``;
    H = I - 11^T/m is the centring matrix.
    """
    cross = (a.mean(dim=1) * b.mean(dim=1)).mean()
    return (a * b).mean() - 2 * cross + a.mean() * b.mean()


def hsic_plausible(a: Tensor, b: Tensor) -> Tensor:
    """ "Plausible" estimator ``mean((A - mean A) * B)`` (Pogodin & Latham): only A is centred,
    which keeps the rule local in the original biological reading."""
    return ((a - a.mean()) * b).mean()


#: HSIC estimator name -> ``fn(kernel_a, kernel_b)``.
HSIC_ESTIMATORS: Registry[Callable[[Tensor, Tensor], Tensor]] = Registry(
    "hsic mode", flag="--hsic-mode"
)
HSIC_ESTIMATORS.register("biased", hsic_biased)
HSIC_ESTIMATORS.register("plausible", hsic_plausible)


def hsic(a_kernel: Tensor, b_kernel: Tensor, mode: str = "biased") -> Tensor:
    """HSIC of two ``(m, m)`` kernel matrices by the estimator ``mode`` (``"biased"`` or
    ``"plausible"``, names of :data:`HSIC_ESTIMATORS`)."""
    return HSIC_ESTIMATORS.get(mode)(a_kernel, b_kernel)


def normalized_hsic(a_kernel: Tensor, b_kernel: Tensor, eps: float = 1e-12) -> Tensor:
    """Study A's monitoring metric ``HSIC(A, B) / sqrt(HSIC(A, A) HSIC(B, B))`` (biased
    estimator; a CKA-like score in [0, 1]).

    Logged as ``layer_{j} nHSIC XZ`` (A = K(inputs), B = K(layer j)) and ``nHSIC ZY``
    (B = K(+-1 targets)) with cosine kernels (spec 2.9). The denominator is clamped at
    ``eps``, so a kernel without variance (a dead layer) gives a finite value, not NaN.
    """
    scale = (hsic_biased(a_kernel, a_kernel) * hsic_biased(b_kernel, b_kernel)).sqrt()
    return hsic_biased(a_kernel, b_kernel) / scale.clamp_min(eps)


class HSIC(LocalRule):
    """HSIC bottleneck, trained layer-locally as study B's reference (after Pogodin & Latham).

    At the input Z of every weight layer but the first and of every local block (Z flattened
    per sample), the local loss::

        L = HSIC(K_Z, K_Z) - gamma * HSIC(K_Z, K_Y)

    with cosine kernels and Y = centred one-hot labels is backpropagated into the segment
    that produced Z, and Z is detached (the pre-hook scheme of DRTP). The output layer is
    trained by the regime's loss. The kernels are m x m for a batch of m.

    Args:
        regime, num_classes: see :class:`~binary_feedback.training.base.Rule`.
        gamma: weight of the label term. Default 2.0 (``--hsic-gamma``); the study's grid
            {2, 20, 200} selected 20 for every configuration.
        mode: estimator, ``"biased"`` (default) or ``"plausible"`` (``--hsic-mode``).

    References: Ma, Lewis, Kleijn, "The HSIC Bottleneck", AAAI 2020; Pogodin, Latham,
    "Kernelized information bottleneck leads to biologically plausible 3-factor Hebbian
    learning in deep networks", NeurIPS 2020.
    """

    name = "hsic"

    def __init__(
        self,
        regime: Regime | str,
        num_classes: int,
        *,
        gamma: float = 2.0,  # weight of HSIC(Z, Y)
        mode: str = "biased",  # estimator: "biased" or "plausible"
    ) -> None:
        super().__init__(regime, num_classes)
        self.gamma = float(gamma)
        self.mode = HSIC_ESTIMATORS.canonical(mode)

    def local_loss(self, z: Tensor, y: Tensor) -> Tensor:
        """``HSIC(Z, Z) - gamma HSIC(Z, Y)`` of a batch of segment outputs ``z``."""
        estimator = HSIC_ESTIMATORS.get(self.mode)
        kz = cosine_kernel(z)
        ky = cosine_kernel(centred_target(y, self.num_classes, z.dtype))
        return estimator(kz, kz) - self.gamma * estimator(kz, ky)

    def _train_segment(self, name: str, h: Tensor, y: Tensor) -> None:
        self.local_loss(h, y).backward()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma}, mode={self.mode}"
