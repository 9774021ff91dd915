"""Building blocks shared by both studies: sign activations with STEs, binary layers, norms."""

from .activations import (
    ACTIVATIONS,
    Activation,
    Identity,
    SignSat,
    SignTanh,
    SignUnsat,
    Tanh,
    get_activation,
    hard_sign,
    sign_sat,
    sign_tanh,
    sign_unsat,
)
from .layers import (
    WEIGHT_STES,
    BinaryLinear,
    SignWeight,
    StudyABatchNorm1d,
    clip_weights_,
    is_binarized,
    latent_weight,
)

__all__ = [
    "ACTIVATIONS",
    "WEIGHT_STES",
    "Activation",
    "BinaryLinear",
    "Identity",
    "SignSat",
    "SignTanh",
    "SignUnsat",
    "SignWeight",
    "StudyABatchNorm1d",
    "Tanh",
    "clip_weights_",
    "get_activation",
    "hard_sign",
    "is_binarized",
    "latent_weight",
    "sign_sat",
    "sign_tanh",
    "sign_unsat",
]
