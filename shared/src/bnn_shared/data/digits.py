"""scikit-learn's bundled 8x8 handwritten digits: the dataset that always works offline.

The 1,797 images of ``sklearn.datasets.load_digits`` (pixels 0..16) are split once, stratified
by class, into train / val / test = 70 / 10 / 20 % (1,258 / 180 / 359 images) with
``sklearn.model_selection.train_test_split`` and ``random_state=split_seed`` (default 0): first
the test images are drawn from all images, then the val images from the rest. Every split keeps
the original image order.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..errors import ConfigError
from .registry import LabeledTensors, register_dataset

__all__ = ["DIGITS_SPLITS", "DIGITS_FRACTIONS", "digits_arrays", "digits_split_indices"]

DIGITS_SPLITS = ("train", "val", "test")
#: Fractions of the 1,797 images in each split.
DIGITS_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
#: Largest pixel value of the digits images; inputs are pixels / 16.
DIGITS_MAX_PIXEL = 16


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All digits images as uint8 pixels ``(1797, 64)`` (row-major, 0..16) and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = bunch.data.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels


@lru_cache(maxsize=8)
def digits_split_indices(split_seed: int = 0) -> dict[str, np.ndarray]:
    """Sorted image indices of the stratified train / val / test split (see module docstring)."""
    from sklearn.model_selection import train_test_split

    _, labels = digits_arrays()
    total = len(labels)
    n_test = round(DIGITS_FRACTIONS["test"] * total)
    n_val = round(DIGITS_FRACTIONS["val"] * total)
    everything = np.arange(total)
    rest, test = train_test_split(
        everything, test_size=n_test, stratify=labels, random_state=split_seed
    )
    train, val = train_test_split(
        rest, test_size=n_val, stratify=labels[rest], random_state=split_seed
    )
    indices = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    for array in indices.values():
        array.flags.writeable = False
    return indices


def digits_split(split: str, split_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels ``(N, 64)`` uint8 and labels ``(N,)`` int64 of one digits split."""
    if split not in DIGITS_SPLITS:
        raise ConfigError(f"digits has no split {split!r}; choose one of {DIGITS_SPLITS}")
    pixels, labels = digits_arrays()
    index = digits_split_indices(int(split_seed))[split]
    return torch.tensor(pixels[index]), torch.tensor(labels[index])


@register_dataset(
    "digits",
    input_shape=(1, 8, 8),
    num_classes=10,
    splits=DIGITS_SPLITS,
    extra={"sizes": {"train": 1258, "val": 180, "test": 359}},
    aliases=("sklearn_digits",),
)
def digits(split, root, download, *, split_seed=0):
    """8x8 digits as ``x`` float32 ``(1, 8, 8)`` = pixels / 16 in [0, 1] and ``y`` in 0..9.

    ``root`` and ``download`` are ignored: the images ship with scikit-learn.
    """
    pixels, labels = digits_split(split, split_seed)
    images = pixels.float().div(DIGITS_MAX_PIXEL).reshape(-1, 1, 8, 8)
    return LabeledTensors(images, labels)
