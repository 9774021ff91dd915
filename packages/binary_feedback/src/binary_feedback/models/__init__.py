"""The studies' networks, built by name: ``build_model("MobileNetV2", 10, (3, 224, 224))``.

Every builder returns a :class:`BuiltModel`: the model, the names of the layers study B keeps
full precision (always the first and the last weight layer; pass them to
``utils.binary.binarize_weights``) and the name of the output layer.

- ``MLP`` / ``FullyConnected``: keeps ``layers.1`` and ``output``; output ``output``.
- ``SmallCNN``: keeps ``features.0`` and ``classifier.4``; output ``classifier.4``.
- ``MobileNetV2``: keeps ``features.0.0`` (stem) and ``classifier.1``; output ``classifier.1``.
- ``vgg16`` / ``vgg19`` (batch-norm variants): keep ``features.0`` and ``classifier.6``;
  output ``classifier.6``.
- ``MLPMixer``: keeps ``1`` (patch embedding) and the last index (head); output the head.

With ``--reconstruction`` the VGG names build an autoencoder instead (:func:`build_autoencoder`,
:mod:`.autoencoder`: vgg11, vgg13, vgg16, vgg19), keeping the first encoder conv and the last
decoder conv full precision.

``MLP`` and ``FullyConnected`` both build study B's :class:`FullyConnected` (the extension's
``--model MLP``); any :class:`MLP` argument can be passed as an option. Study A's MLP, whose
binarisation lives in its layers, is built directly with :class:`MLP`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

from bnn_shared.errors import ConfigError, ShapeError
from bnn_shared.registry import Registry
from torch import nn

from .autoencoder import AUTOENCODERS, VGGAutoencoder, autoencoder_fp_layers
from .mixer import MLPMixer, PreNormResidual, remove_prenorm_skips
from .mlp import MLP, PAPER_HIDDEN, FullyConnected
from .small_cnn import SmallCNN
from .vision import mobilenet_v2, remove_inverted_residual_skips, vgg

__all__ = [
    "AUTOENCODERS",
    "MODELS",
    "MLP",
    "PAPER_HIDDEN",
    "BuiltModel",
    "FullyConnected",
    "MLPMixer",
    "PreNormResidual",
    "SmallCNN",
    "VGGAutoencoder",
    "available_models",
    "build_autoencoder",
    "build_model",
    "mobilenet_v2",
    "remove_skips",
    "vgg",
]


class BuiltModel(NamedTuple):
    """A model with study B's full-precision layer names and its output layer name."""

    model: nn.Module
    fp_layers: list[str]
    output_layer: str


def _image_shape(in_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise ShapeError(f"{name} needs an image input shape (C, H, W), got {tuple(in_shape)}")
    channels, height, width = in_shape
    return channels, height, width


def _fully_connected(num_classes: int, in_shape: Sequence[int], **options: Any) -> BuiltModel:
    model = FullyConnected(math.prod(in_shape), num_classes, **options)
    return BuiltModel(model, ["layers.1", "output"], "output")


def _small_cnn(num_classes: int, in_shape: Sequence[int], **options: Any) -> BuiltModel:
    channels, _, _ = _image_shape(in_shape, "SmallCNN")
    model = SmallCNN(num_classes, channels, **options)
    return BuiltModel(model, ["features.0", "classifier.4"], "classifier.4")


def _mobilenet_v2(num_classes: int, in_shape: Sequence[int]) -> BuiltModel:
    channels, _, _ = _image_shape(in_shape, "MobileNetV2")
    model = mobilenet_v2(num_classes, channels)
    return BuiltModel(model, ["features.0.0", "classifier.1"], "classifier.1")


def _vgg(depth: int, num_classes: int, in_shape: Sequence[int]) -> BuiltModel:
    channels, _, _ = _image_shape(in_shape, f"vgg{depth}")
    model = vgg(depth, num_classes, channels)
    return BuiltModel(model, ["features.0", "classifier.6"], "classifier.6")


def _mlp_mixer(num_classes: int, in_shape: Sequence[int], **options: Any) -> BuiltModel:
    channels, height, width = _image_shape(in_shape, "MLPMixer")
    model = MLPMixer(num_classes, image_size=(height, width), channels=channels, **options)
    head = str(len(model) - 1)
    return BuiltModel(model, ["1", head], head)


#: Registered builders, by name (any case): ``builder(num_classes, in_shape, **options)``.
MODELS: Registry[Callable[..., BuiltModel]] = Registry("model", flag="--model")
MODELS.register("mlp", _fully_connected, aliases=("fullyconnected",))
MODELS.register("smallcnn", _small_cnn)
MODELS.register("mobilenetv2", _mobilenet_v2)
MODELS.register("vgg16", partial(_vgg, 16))
MODELS.register("vgg19", partial(_vgg, 19))
MODELS.register("mlpmixer", _mlp_mixer)


def available_models() -> list[str]:
    """Every accepted model name (registered names and aliases, lower case), sorted."""
    return sorted([*MODELS.names(), *MODELS.aliases()])


def build_model(name: str, num_classes: int, in_shape: Sequence[int], **options: Any) -> BuiltModel:
    """Build a registered model for inputs of shape ``in_shape`` (without the batch axis).

    Args:
        name: model name, case-insensitive (see the module table).
        num_classes: output size.
        in_shape: ``(C, H, W)`` for the CNNs and the mixer; any shape for the MLPs (flattened).
        **options: constructor options of the model class, e.g. ``bn=True`` for the MLPs,
            ``dim=512, depth=12, patch_size=16`` for the mixer, ``width`` for SmallCNN.

    Raises:
        ConfigError: unknown name or option.
        ShapeError: an input shape the model cannot take.
    """
    builder = MODELS.get(name)
    try:
        return builder(num_classes, tuple(in_shape), **options)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc


def build_autoencoder(name: str, channels: int = 3, *, sigmoid: bool = True) -> BuiltModel:
    """The VGG autoencoder ``name`` (vgg11, vgg13, vgg16, vgg19; any case) for images of
    ``channels`` channels, with its full-precision layers; its "output layer" is the last
    decoder conv."""
    model = VGGAutoencoder(AUTOENCODERS.get(name), channels, sigmoid=sigmoid)
    fp_layers = autoencoder_fp_layers(model)
    return BuiltModel(model, fp_layers, fp_layers[-1])


def remove_skips(model: nn.Module) -> int:
    """The "skip connections removed" ablation (``--remove-skips``), in place: MobileNetV2's
    inverted residuals lose their sum, the mixer's PreNormResidual blocks become PreNorm.
    Returns the number of skips removed (0 for models without skips, such as VGG)."""
    return remove_inverted_residual_skips(model) + remove_prenorm_skips(model)
