"""Utilities: binarisation of any model, Biprop and Bi-Real activations (study B)."""

from .binary import (
    BINARIZED_ACTIVATIONS,
    BINARIZED_WEIGHTS,
    binarize_activations,
    binarize_weights,
    binary_layers,
    clip_binary_weights_,
    quantized_weight,
    weight_precision,
)
from .biprop import BipropWeight, apply_biprop, biprop_layers, bireal_activations

__all__ = [
    "BINARIZED_ACTIVATIONS",
    "BINARIZED_WEIGHTS",
    "BipropWeight",
    "apply_biprop",
    "biprop_layers",
    "bireal_activations",
    "binarize_activations",
    "binarize_weights",
    "binary_layers",
    "clip_binary_weights_",
    "quantized_weight",
    "weight_precision",
]
