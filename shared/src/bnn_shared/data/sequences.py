"""Sequence datasets of the recurrent-network papers: pixel-by-pixel images and the copy task.

* ``smnist`` / ``pmnist``: MNIST read one pixel per step, ``x`` float32 ``(784, 1)`` in [0, 1]
  (pixels / 255, as ToTensor), ``y`` in 0..9. ``pmnist`` reorders the pixels of every image with
  the fixed permutation ``np.random.RandomState(92916).permutation(784)``: step ``t`` reads pixel
  ``permutation[t]`` of the row-major image. Splits: ``train`` / ``val`` are a seeded random
  split of the 60,000 official training images into 50,000 / 10,000 (the same as
  ``torch.utils.data.random_split`` with ``torch.Generator().manual_seed(5544)``); ``test`` is
  the official 10,000. HadamRNN spec sections 4.2 and 4.3.
* ``sdigits`` / ``pdigits``: the same on the bundled 8x8 digits (64 steps, pixels / 16,
  permutation ``RandomState(92916).permutation(64)``) with the digits train / val / test split.
* ``copy_task``: the copy-memory task of HadamRNN spec section 4.1 (see :class:`CopyTask`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import ConfigError, ShapeError
from .digits import DIGITS_MAX_PIXEL, digits_split
from .registry import BnnDataset, dataset_info, register_dataset
from .vision import mnist_tensors

__all__ = [
    "PixelSequences",
    "CopyTask",
    "pixel_permutation",
    "train_val_indices",
    "copy_task_baseline",
]

SPLITS = ("train", "val", "test")
PERMUTATION_SEED = 92916
MNIST_SPLIT_SEED = 5544
MNIST_VAL_SIZE = 10_000
MNIST_MAX_PIXEL = 255
COPY_SIZES = {"train": 512_000, "val": 2_000, "test": 2_000}


def pixel_permutation(length: int, seed: int = PERMUTATION_SEED) -> torch.Tensor:
    """The fixed pixel order of the permuted tasks: ``np.random.RandomState(seed).permutation``."""
    return torch.from_numpy(np.random.RandomState(seed).permutation(length)).long()


def train_val_indices(total: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a seeded train / val split of ``total`` items (val = the last ``val_size`` of
    ``torch.randperm(total, generator=torch.Generator().manual_seed(seed))``, which is what
    ``random_split(range(total), [total - val_size, val_size], generator)`` returns)."""
    if not 0 < val_size < total:
        raise ConfigError(f"val_size={val_size} must lie between 1 and {total - 1}")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(int(seed)))
    return order[: total - val_size], order[total - val_size :]


class PixelSequences(Dataset):
    """Images read pixel by pixel: item ``i`` is ``(x, y)`` with ``x`` float32 ``(L, 1)``.

    ``x[t] = pixels[i, permutation[t]] / max_pixel`` (``permutation`` None: row-major order).

    Args:
        pixels: ``(N, L)`` integer pixels, kept as given (uint8 keeps MNIST small).
        targets: ``(N,)`` integer labels.
        max_pixel: the value that maps to 1.0.
        permutation: optional ``(L,)`` pixel order.
    """

    def __init__(
        self,
        pixels: torch.Tensor,
        targets: torch.Tensor,
        *,
        max_pixel: float,
        permutation: torch.Tensor | None = None,
    ) -> None:
        if permutation is not None and permutation.shape != pixels.shape[1:]:
            raise ShapeError(f"permutation of {permutation.shape} for pixels of {pixels.shape}")
        self.pixels = pixels
        self.targets = targets
        self.max_pixel = float(max_pixel)
        self.permutation = permutation

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.pixels[index]
        if self.permutation is not None:
            row = row[self.permutation]
        return row.float().div(self.max_pixel).unsqueeze(-1), int(self.targets[index])


def _with_extra(name: str, dataset: Dataset, split: str, **extra) -> BnnDataset:
    info = dataset_info(name)
    return BnnDataset(dataset, replace(info, extra={**info.extra, **extra}), split)


def _mnist_sequences(name, root, split, download, permutation, split_seed, val_size):
    images, labels = mnist_tensors(
        root, "test" if split == "test" else "train", download, name=name
    )
    pixels = images.reshape(len(images), -1)
    if split != "test":
        train, val = train_val_indices(len(labels), int(val_size), split_seed)
        index = train if split == "train" else val
        pixels, labels = pixels[index], labels[index]
    return PixelSequences(pixels, labels, max_pixel=MNIST_MAX_PIXEL, permutation=permutation)


_MNIST_EXTRA = {"split_seed": MNIST_SPLIT_SEED, "val_size": MNIST_VAL_SIZE}


@register_dataset(
    "smnist",
    input_shape=(784, 1),
    num_classes=10,
    task="sequence_classification",
    splits=SPLITS,
    extra=_MNIST_EXTRA,
    aliases=("sequential_mnist",),
)
def smnist(split, root, download, *, split_seed=MNIST_SPLIT_SEED, val_size=MNIST_VAL_SIZE):
    """Sequential MNIST, 784 steps x 1 pixel in row-major order (spec 4.3)."""
    dataset = _mnist_sequences("smnist", root, split, download, None, split_seed, val_size)
    return _with_extra("smnist", dataset, split, split_seed=split_seed, val_size=val_size)


@register_dataset(
    "pmnist",
    input_shape=(784, 1),
    num_classes=10,
    task="sequence_classification",
    splits=SPLITS,
    extra={"permutation_seed": PERMUTATION_SEED, **_MNIST_EXTRA},
    aliases=("permuted_mnist",),
)
def pmnist(
    split,
    root,
    download,
    *,
    permutation_seed=PERMUTATION_SEED,
    split_seed=MNIST_SPLIT_SEED,
    val_size=MNIST_VAL_SIZE,
):
    """Permuted MNIST, 784 steps x 1 pixel in a fixed random order (spec 4.2)."""
    permutation = pixel_permutation(784, permutation_seed)
    dataset = _mnist_sequences("pmnist", root, split, download, permutation, split_seed, val_size)
    return _with_extra(
        "pmnist",
        dataset,
        split,
        permutation_seed=permutation_seed,
        split_seed=split_seed,
        val_size=val_size,
    )


@register_dataset(
    "sdigits",
    input_shape=(64, 1),
    num_classes=10,
    task="sequence_classification",
    splits=SPLITS,
)
def sdigits(split, root, download, *, split_seed=0):
    """Sequential 8x8 digits, 64 steps x 1 pixel in row-major order; works offline."""
    pixels, labels = digits_split(split, split_seed)
    return PixelSequences(pixels, labels, max_pixel=DIGITS_MAX_PIXEL)


@register_dataset(
    "pdigits",
    input_shape=(64, 1),
    num_classes=10,
    task="sequence_classification",
    splits=SPLITS,
    extra={"permutation_seed": PERMUTATION_SEED},
)
def pdigits(split, root, download, *, permutation_seed=PERMUTATION_SEED, split_seed=0):
    """Permuted 8x8 digits, 64 steps x 1 pixel, order ``RandomState(seed).permutation(64)``."""
    pixels, labels = digits_split(split, split_seed)
    permutation = pixel_permutation(64, permutation_seed)
    dataset = PixelSequences(pixels, labels, max_pixel=DIGITS_MAX_PIXEL, permutation=permutation)
    return _with_extra("pdigits", dataset, split, permutation_seed=permutation_seed)


def copy_task_baseline(
    seq_length: int = 1000, sent_length: int = 10, vocabulary: int = 10
) -> float:
    """Mean cross-entropy per step of the best memoryless predictor: ``K ln(V - 2) / T``.

    It predicts the blank everywhere except the last ``K`` steps, where it can only guess the
    symbol uniformly among the ``V - 2`` data symbols (10 ln 8 / 1000 ~ 0.0208 by default).
    """
    return sent_length * math.log(vocabulary - 2) / seq_length


class CopyTask(Dataset):
    """Copy-memory task (HadamRNN spec 4.1; reference ``CopyMemory``).

    With ``K = sent_length``, ``T = seq_length`` (the TOTAL length, so the delay between the
    last symbol and the marker is ``T - 2K``) and ``V = vocabulary``: 0 is the blank,
    ``V - 1`` the marker, ``1..V-2`` the data symbols. Item ``i`` is

    * input tokens ``[s_1..s_K, 0 x (T - 2K), V - 1, 0 x (K - 1)]``, returned one-hot as
      float32 ``(T, V)`` (built per item, only the ``(N, K)`` symbols are stored);
    * target ``[0 x (T - K), s_1..s_K]``, int64 ``(T,)`` with classes ``0..V-2``.

    Args:
        symbols: ``(N, K)`` data symbols in ``1..V-2``.
        seq_length: total length ``T``; must exceed ``2K``.
        vocabulary: ``V`` (at least 3).
    """

    def __init__(self, symbols: torch.Tensor, *, seq_length: int, vocabulary: int) -> None:
        check_copy_shape(seq_length, symbols.shape[1], vocabulary)
        self.symbols = symbols
        self.seq_length = int(seq_length)
        self.sent_length = int(symbols.shape[1])
        self.vocabulary = int(vocabulary)

    @classmethod
    def generate(
        cls,
        size: int,
        *,
        seq_length: int = 1000,
        sent_length: int = 10,
        vocabulary: int = 10,
        generator: torch.Generator | None = None,
    ) -> CopyTask:
        """``size`` sequences with symbols drawn uniformly from ``1..V-2`` with ``generator``."""
        check_copy_shape(seq_length, sent_length, vocabulary)
        if size < 0:
            raise ConfigError(f"copy task size={size} must not be negative")
        drawn = torch.randint(1, vocabulary - 1, (size, sent_length), generator=generator)
        storage = torch.uint8 if vocabulary <= 256 else torch.int64
        return cls(drawn.to(storage), seq_length=seq_length, vocabulary=vocabulary)

    @property
    def marker(self) -> int:
        return self.vocabulary - 1

    def __len__(self) -> int:
        return len(self.symbols)

    def input_tokens(self, index: int) -> torch.Tensor:
        """The integer input sequence ``(T,)`` of item ``index``."""
        tokens = torch.zeros(self.seq_length, dtype=torch.long)
        tokens[: self.sent_length] = self.symbols[index].long()
        tokens[self.seq_length - self.sent_length] = self.marker
        return tokens

    def target(self, index: int) -> torch.Tensor:
        """The target classes ``(T,)`` of item ``index``."""
        target = torch.zeros(self.seq_length, dtype=torch.long)
        target[self.seq_length - self.sent_length :] = self.symbols[index].long()
        return target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.one_hot(self.input_tokens(index), self.vocabulary).float()
        return x, self.target(index)


def check_copy_shape(seq_length: int, sent_length: int, vocabulary: int) -> None:
    """Raise :class:`ShapeError` unless ``T > 2K``, ``K >= 1`` and ``V >= 3``."""
    if sent_length < 1 or vocabulary < 3:
        raise ShapeError(
            f"copy task needs sent_length >= 1 and vocabulary >= 3 (blank, marker and at least "
            f"one symbol); got sent_length={sent_length}, vocabulary={vocabulary}"
        )
    if seq_length <= 2 * sent_length:
        raise ShapeError(
            f"copy task seq_length={seq_length} is the total length and must exceed "
            f"2 * sent_length = {2 * sent_length}"
        )


def _copy_generator(seed: int, split: str) -> torch.Generator:
    """A generator seeded from ``(seed, split)``, so splits differ and each is reproducible."""
    if seed < 0:
        raise ConfigError(f"copy task seed={seed} must not be negative")
    state = np.random.SeedSequence([int(seed), SPLITS.index(split)]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


@register_dataset(
    "copy_task",
    input_shape=(1000, 10),
    num_classes=9,
    task="sequence_to_sequence",
    splits=SPLITS,
    extra={
        "seq_length": 1000,
        "sent_length": 10,
        "vocabulary": 10,
        "delay": 980,
        "blank": 0,
        "marker": 9,
        "baseline_loss": copy_task_baseline(),
        "sizes": COPY_SIZES,
        "seed": 0,
    },
    aliases=("copy", "copy_memory"),
)
def copy_task(
    split, root, download, *, seq_length=1000, sent_length=10, vocabulary=10, size=None, seed=0
):
    """Generated copy-memory sequences (see :class:`CopyTask`), no files needed.

    Sizes: train 512,000 / val 2,000 / test 2,000 unless ``size`` is given. The symbols are drawn
    from a ``torch.Generator`` seeded with ``SeedSequence([seed, split index])``.
    ``info.extra["baseline_loss"]`` is the memoryless cross-entropy of
    :func:`copy_task_baseline`.
    """
    check_copy_shape(seq_length, sent_length, vocabulary)
    count = COPY_SIZES[split] if size is None else int(size)
    dataset = CopyTask.generate(
        count,
        seq_length=seq_length,
        sent_length=sent_length,
        vocabulary=vocabulary,
        generator=_copy_generator(seed, split),
    )
    info = dataset_info("copy_task")
    extra = {
        **info.extra,
        "seq_length": seq_length,
        "sent_length": sent_length,
        "vocabulary": vocabulary,
        "delay": seq_length - 2 * sent_length,
        "marker": vocabulary - 1,
        "baseline_loss": copy_task_baseline(seq_length, sent_length, vocabulary),
        "seed": seed,
    }
    info = replace(
        info, input_shape=(seq_length, vocabulary), num_classes=vocabulary - 1, extra=extra
    )
    return BnnDataset(dataset, info, split)
