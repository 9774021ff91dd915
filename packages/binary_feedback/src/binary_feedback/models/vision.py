"""Study B's torchvision models: MobileNetV2 and VGG-16/19 with batch norm, randomly initialised.

* MobileNetV2: ``torchvision.models.mobilenet_v2(num_classes=C)``, width 1.0, classifier
  Dropout(0.2) + Linear(1280, C); about 2.24M parameters at C = 10.
* VGG: ``vgg16_bn`` / ``vgg19_bn`` built for 1000 classes, then the last Linear replaced by
  ``Linear(4096, C)`` as in the reference (so it keeps PyTorch's default Linear init);
  "vgg19" always means vgg19_bn, about 139.6M parameters at C = 10.

Small inputs work: MobileNetV2 ends with global average pooling (a 32x32 image reaches a 1x1
map), and VGG's ``AdaptiveAvgPool2d(7)`` repeats the 1x1 map of a 32x32 image to 7x7, so the
classifier's 25088 inputs are the same for every image size (at 32x32 each holds one of 512
channel values 49 times). With ``in_channels`` other than 3 the stem convolution is rebuilt
with that many input channels (same name, so the full-precision list is unchanged).

Reference: Crulis, Serres, de Runz, Venturini, arXiv 2408.04460.
"""

from __future__ import annotations

from torch import nn
from torchvision import models
from torchvision.models.mobilenetv2 import InvertedResidual

__all__ = ["VGG_BUILDERS", "mobilenet_v2", "remove_inverted_residual_skips", "vgg"]

#: VGG depth -> torchvision builder (always the batch-norm variant).
VGG_BUILDERS = {16: models.vgg16_bn, 19: models.vgg19_bn}


def _with_in_channels(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """``conv`` itself for 3 channels, else a fresh conv of the same shape over ``in_channels``."""
    if in_channels == conv.in_channels:
        return conv
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        bias=conv.bias is not None,
    )


def mobilenet_v2(num_classes: int, in_channels: int = 3) -> nn.Module:
    """torchvision MobileNetV2 (width 1.0, random init) with ``num_classes`` outputs.

    Full-precision layers in study B: ``features.0.0`` (stem conv) and ``classifier.1``.
    """
    model = models.mobilenet_v2(weights=None, num_classes=num_classes)
    model.features[0][0] = _with_in_channels(model.features[0][0], in_channels)
    return model


def vgg(depth: int, num_classes: int, in_channels: int = 3) -> nn.Module:
    """torchvision ``vgg{depth}_bn`` (random init) whose last Linear is ``Linear(4096, C)``.

    Full-precision layers in study B: ``features.0`` (first conv) and ``classifier.6``.
    """
    model = VGG_BUILDERS[depth](weights=None)
    model.features[0] = _with_in_channels(model.features[0], in_channels)
    model.classifier[6] = nn.Linear(4096, num_classes)
    return model


def remove_inverted_residual_skips(model: nn.Module) -> int:
    """Drop the residual sum of every MobileNetV2 ``InvertedResidual`` (``use_res_connect =
    False``): the "skip connections removed" ablation. Returns the number of skips removed."""
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual) and m.use_res_connect]
    for block in blocks:
        block.use_res_connect = False
    return len(blocks)
