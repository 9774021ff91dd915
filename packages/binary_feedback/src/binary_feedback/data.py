"""The studies' data: the core's tensors, each study's scaling, study B's per-dataset
preprocessing, split, resizing and training augmentation.

Images come from :func:`bnn_shared.data.load_tensors` as ``(N, C, H, W)`` floats in [0, 1].
Study A scales every dataset to [-1, 1] (the reference's ``x / 127.5 - 1``). Study B does
what its code does for each dataset (:data:`STUDY_B_TRANSFORMS`, :func:`study_b_transform`):

==============  ==========================================  =====  =========  ==========
dataset         Normalize(mean, std)                        flip   --augment  resize
==============  ==========================================  =====  =========  ==========
mnist           0.1307, 0.3081                              no     ignored    none (28)
fashion_mnist   0.2860, 0.3530                              no     ignored    none (28)
cifar10         (0.4914, 0.4822, 0.4465),                   no     ignored    224
                (0.2470, 0.2435, 0.2616)
imagenette      ImageNet's                                  yes    honoured   224 x 224
stanford_dogs   ImageNet's                                  yes    honoured   224 x 224
mit_indoor      ImageNet's                                  yes    honoured   224 x 224
others (digits) ImageNet's for RGB, 0.5 / 0.5 otherwise     yes    honoured   none
==============  ==========================================  =====  =========  ==========

ImageNette, Dogs and Indoor are read at 224 x 224 (``Resize((224, 224))``, the reference's
test transform; ImageNette's core default, Resize(256) + CenterCrop(224), is replaced).
Each batch is resized (bilinear) to the model's input side (:func:`input_size`): 224 for
the 224-input models, the native side for the others; MNIST therefore reaches the 224-input
models and CIFAR-10 the MLP at 32 x 32, which the reference cannot run (quirk 26);
``image_size=224`` gives CIFAR-10 the reference's 224 x 224 for any model. ``digits`` (not
in the study) keeps the rule of the last row, which the golden runs record.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from bnn_shared.data import dataset_info, load_tensors, normalize
from torch import Tensor

__all__ = [
    "IMAGENET_STATISTICS_FROM",
    "LARGE_INPUT_MODELS",
    "OTHER_DATASETS",
    "REFERENCE_SIZE",
    "STUDY_B_TRANSFORMS",
    "StudyBTransform",
    "augment",
    "augment_study_b",
    "flip",
    "input_size",
    "load_split",
    "load_splits",
    "normalize_study_b",
    "resize",
    "scale_study_a",
    "study_b_transform",
    "validation_split",
]

#: The dataset whose statistics (ImageNet's) normalise study B's RGB images.
IMAGENET_STATISTICS_FROM = "imagenette"
#: Study B's models that take 224 x 224 inputs unless ``image_size`` says otherwise.
LARGE_INPUT_MODELS = frozenset({"mobilenetv2", "vgg16", "vgg19", "mlpmixer"})
#: The side the reference resizes CIFAR-10, ImageNette, Dogs and Indoor images to.
REFERENCE_SIZE = 224

Splits = tuple[Tensor, Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class StudyBTransform:
    """What study B's code does to one dataset's images.

    Attributes:
        mean, std: the per-channel ``Normalize`` statistics; None for the datasets the study
            does not have (ImageNet's for three channels, 0.5 and 0.5 otherwise).
        flip: training batches get RandomHorizontalFlip (also without ``--augment``).
        augments: ``--augment`` applies the full pipeline (:func:`augment`); False: ignored.
        size: the side the reference resizes to (None: the native side).
    """

    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    flip: bool
    augments: bool
    size: int | None

    def statistics(self, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` for images of ``channels`` channels."""
        if self.mean is not None and self.std is not None:
            return self.mean, self.std
        if channels == 3:
            info = dataset_info(IMAGENET_STATISTICS_FROM)
            return info.mean, info.std
        return (0.5,) * channels, (0.5,) * channels


def _imagenet_folder() -> StudyBTransform:
    info = dataset_info(IMAGENET_STATISTICS_FROM)
    return StudyBTransform(info.mean, info.std, True, True, REFERENCE_SIZE)


#: Study B's preprocessing of each of its datasets (canonical names; spec A.5 and 3.6).
STUDY_B_TRANSFORMS: dict[str, StudyBTransform] = {
    "mnist": StudyBTransform((0.1307,), (0.3081,), False, False, None),
    "fashion_mnist": StudyBTransform((0.2860,), (0.3530,), False, False, None),
    "cifar10": StudyBTransform(
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), False, False, REFERENCE_SIZE
    ),
    "imagenette": _imagenet_folder(),
    "stanford_dogs": _imagenet_folder(),
    "mit_indoor": _imagenet_folder(),
}
#: Any other dataset (``digits``, ours): the rule the golden runs were recorded with.
OTHER_DATASETS = StudyBTransform(None, None, True, True, None)


def study_b_transform(dataset: str | None) -> StudyBTransform:
    """Study B's preprocessing of ``dataset`` (a canonical name; None or an unlisted name:
    :data:`OTHER_DATASETS`)."""
    return STUDY_B_TRANSFORMS.get(dataset or "", OTHER_DATASETS)


def _loader_options(dataset: str) -> dict:
    """Loader options that give the reference's 224 x 224 images (``Resize((224, 224))``, no
    crop) where the core's default differs: ImageNette's crops."""
    if dataset != "imagenette":
        return {}
    from torchvision import transforms

    size = (REFERENCE_SIZE, REFERENCE_SIZE)
    return {"transform": transforms.Compose([transforms.Resize(size), transforms.ToTensor()])}


def load_split(
    dataset: str, split: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> tuple[Tensor, Tensor]:
    """``x, y`` of one split of a registered dataset as the studies read it, images in [0, 1]
    (ImageNette at 224 x 224 without a crop, see :func:`_loader_options`)."""
    x, y, _ = load_tensors(dataset, split, data_dir, download, **_loader_options(dataset))
    return x, y


def load_splits(
    dataset: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> Splits:
    """``x_train, y_train, x_test, y_test`` of a registered dataset (:func:`load_split`)."""
    x_train, y_train = load_split(dataset, "train", data_dir, download)
    x_test, y_test = load_split(dataset, "test", data_dir, download)
    return x_train, y_train, x_test, y_test


def scale_study_a(x: Tensor) -> Tensor:
    """Study A's inputs: ``2 x - 1``, pixels in [-1, 1]."""
    return x * 2 - 1


def normalize_study_b(x: Tensor, dataset: str | None = None) -> Tensor:
    """Study B's inputs: ``(x - mean) / std`` per channel with ``dataset``'s statistics
    (:func:`study_b_transform`)."""
    mean, std = study_b_transform(dataset).statistics(x.shape[1])
    return normalize(x, mean, std)


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


def augment_study_b(
    x: Tensor, generator: torch.Generator, dataset: str | None, full: bool
) -> Tensor:
    """A training batch as study B's code transforms ``dataset``'s: unchanged for MNIST,
    Fashion-MNIST and CIFAR-10 (no flip; ``full`` ignored), else :func:`augment`."""
    spec = study_b_transform(dataset)
    if not spec.flip:
        return x
    return augment(x, generator, full and spec.augments)
