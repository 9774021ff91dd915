"""Utilities: binarisation of any model (study B)."""

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

__all__ = [
    "BINARIZED_ACTIVATIONS",
    "BINARIZED_WEIGHTS",
    "binarize_activations",
    "binarize_weights",
    "binary_layers",
    "clip_binary_weights_",
    "quantized_weight",
    "weight_precision",
]
