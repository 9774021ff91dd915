"""Building blocks shared by both studies: sign activations (around the core's quantizers),
binary layers, study A's batch norm."""

from .activations import (
    ACTIVATIONS,
    Activation,
    Identity,
    SignSat,
    SignTanh,
    SignUnsat,
    Tanh,
    get_activation,
)
from .layers import (
    WEIGHT_STES,
    BinaryLinear,
    StudyABatchNorm1d,
    is_binarized,
    is_linear,
    latent_weight,
    weight_quantizer,
    weight_quantizer_of,
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
    "StudyABatchNorm1d",
    "Tanh",
    "get_activation",
    "is_binarized",
    "is_linear",
    "latent_weight",
    "weight_quantizer",
    "weight_quantizer_of",
]
