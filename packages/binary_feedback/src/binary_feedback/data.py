"""The studies' data: the core's tensors, each study's scaling, study B's split, resizing and
training augmentation.

Images come from :func:`bnn_shared.data.load_tensors` as ``(N, C, H, W)`` floats in [0, 1].
Study A scales them to [-1, 1] (the reference's ``x / 127.5 - 1``); study B normalises them
with ImageNet's statistics for RGB images (ImageNette's :class:`~bnn_shared.data.DatasetInfo`
holds them; CIFAR-10 gets them too, as in the reference) and with mean 0.5 / std 0.5
otherwise, resizes each batch to the model's input size and flips (or augments) training
batches.
"""

from __future__ import annotations

import math
import os

import torch
from bnn_shared.data import dataset_info, load_tensors, normalize
from torch import Tensor

__all__ = [
    "IMAGENET_STATISTICS_FROM",
    "LARGE_INPUT_MODELS",
    "augment",
    "flip",
    "input_size",
    "load_splits",
    "normalize_study_b",
    "resize",
    "scale_study_a",
    "validation_split",
]

#: The dataset whose statistics (ImageNet's) normalise study B's RGB images.
IMAGENET_STATISTICS_FROM = "imagenette"
#: Study B's models that take 224 x 224 inputs unless ``image_size`` says otherwise.
LARGE_INPUT_MODELS = frozenset({"mobilenetv2", "vgg16", "vgg19", "mlpmixer"})

Splits = tuple[Tensor, Tensor, Tensor, Tensor]


def load_splits(
    dataset: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> Splits:
    """``x_train, y_train, x_test, y_test`` of a registered dataset, images in [0, 1]."""
    x_train, y_train, _ = load_tensors(dataset, "train", data_dir, download)
    x_test, y_test, _ = load_tensors(dataset, "test", data_dir, download)
    return x_train, y_train, x_test, y_test


def scale_study_a(x: Tensor) -> Tensor:
    """Study A's inputs: ``2 x - 1``, pixels in [-1, 1]."""
    return x * 2 - 1


def normalize_study_b(x: Tensor) -> Tensor:
    """Study B's inputs: ``(x - mean) / std`` per channel, ImageNet's statistics for three
    channels, 0.5 and 0.5 for any other number."""
    channels = x.shape[1]
    if channels == 3:
        info = dataset_info(IMAGENET_STATISTICS_FROM)
        return normalize(x, info.mean, info.std)
    return normalize(x, (0.5,) * channels, (0.5,) * channels)


def validation_split(x: Tensor, y: Tensor, fraction: float, seed: int) -> Splits:
    """Study B without ``test_set``: a random ``fraction`` of the training set to train on and
    the rest to validate on (``x_train, y_train, x_val, y_val``), drawn from ``seed``."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(len(y) * fraction)
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def input_size(model: str, native: int, image_size: int | None) -> int:
    """The side the model sees: ``image_size``, else 224 for the large models (a name of
    :data:`LARGE_INPUT_MODELS`, canonical) and the native side for the others."""
    return image_size or (224 if model in LARGE_INPUT_MODELS else native)


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """A batch resized (bilinear) to ``size`` when it has another size: done per batch, since
    MNIST at 224 x 224 would not fit in memory as a whole."""
    if tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """RandomHorizontalFlip(0.5), per sample."""
    flipped = torch.rand(len(x), generator=generator) < 0.5
    return torch.where(flipped.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)


def augment(x: Tensor, generator: torch.Generator, full: bool) -> Tensor:
    """Study B's training pipeline on a batch of normalised images already at the model's size.

    Without ``full`` (``--augment``) the reference still flips; with it: flip,
    RandomRotation(20), RandomResizedCrop(scale 0.5-1, ratio 3/4-4/3), flip again,
    RandomErasing(p=0.9) (the rotation fills with 0, the mean pixel after normalisation; the
    reference filled black before normalising). Every draw comes from ``generator``.
    """
    import torchvision.transforms.v2.functional as TF

    x = flip(x, generator)
    if not full:
        return x
    size = list(x.shape[-2:])
    area = size[0] * size[1]
    out = []
    for image in x:
        u = torch.rand(8, generator=generator).tolist()
        image = TF.rotate(image, angle=40 * u[0] - 20)
        scale = area * (0.5 + 0.5 * u[1])
        ratio = math.exp(math.log(3 / 4) + u[2] * math.log(16 / 9))
        h = min(size[0], max(1, round(math.sqrt(scale / ratio))))
        w = min(size[1], max(1, round(math.sqrt(scale * ratio))))
        top, left = int(u[3] * (size[0] - h + 1)), int(u[4] * (size[1] - w + 1))
        image = TF.resized_crop(image, top, left, h, w, size, antialias=True)
        if u[5] < 0.9:  # RandomErasing(p=0.9, scale 0.02-0.33, ratio 0.3-3.3, value 0)
            e_area = area * (0.02 + 0.31 * u[6])
            e_ratio = math.exp(math.log(0.3) + u[7] * math.log(11))
            eh = min(size[0], max(1, round(math.sqrt(e_area * e_ratio))))
            ew = min(size[1], max(1, round(math.sqrt(e_area / e_ratio))))
            i = torch.randint(0, size[0] - eh + 1, (1,), generator=generator).item()
            j = torch.randint(0, size[1] - ew + 1, (1,), generator=generator).item()
            image = TF.erase(image, i, j, eh, ew, torch.zeros(()))
        out.append(image)
    return flip(torch.stack(out), generator)
