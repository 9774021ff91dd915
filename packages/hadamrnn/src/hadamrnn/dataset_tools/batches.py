"""Splits held as compact tensors and cut into batches without a per-item Python loop.

A :class:`Split` knows its size, its targets (for class-balanced sampling) and how to build a
batch ``(x, y)`` from indices: pixel sequences keep their uint8 pixels, the copy task only its
symbols, token datasets their id matrix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from bnn_shared.data import BnnDataset, CopyTask, PixelSequences
from torch import Tensor

__all__ = ["Split", "PixelSplit", "CopySplit", "TensorSplit", "as_split", "batches"]


class Split:
    """Base class: ``len(split)``, ``split.targets`` and ``split.batch(indices)``."""

    targets: Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


@dataclass
class PixelSplit(Split):
    """Images read pixel by pixel: ``x = pixels[:, permutation] / max_pixel`` ``(B, L, 1)``."""

    pixels: Tensor
    targets: Tensor
    max_pixel: float
    permutation: Tensor | None = None

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        rows = self.pixels[indices]
        if self.permutation is not None:
            rows = rows[:, self.permutation]
        return rows.float().div(self.max_pixel).unsqueeze(-1), self.targets[indices]


@dataclass
class CopySplit(Split):
    """Copy task: one-hot inputs ``(B, T, V)`` and targets ``(B, T)`` built per batch."""

    symbols: Tensor
    seq_length: int
    vocabulary: int

    @property
    def targets(self) -> Tensor:  # one "class" per sequence: no balancing needed
        return torch.zeros(len(self.symbols), dtype=torch.long)

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        symbols = self.symbols[indices].long()
        count, k = symbols.shape
        tokens = torch.zeros(count, self.seq_length, dtype=torch.long)
        tokens[:, :k] = symbols
        tokens[:, self.seq_length - k] = self.vocabulary - 1
        target = torch.zeros(count, self.seq_length, dtype=torch.long)
        target[:, self.seq_length - k :] = symbols
        return F.one_hot(tokens, self.vocabulary).float(), target


@dataclass
class TensorSplit(Split):
    """Inputs stacked in one tensor (token ids, or any fixed-shape ``x``)."""

    inputs: Tensor
    targets: Tensor

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        return self.inputs[indices], self.targets[indices]


def as_split(dataset) -> Split:
    """The compact :class:`Split` of a core dataset (stacking items only as a fallback)."""
    inner = dataset.dataset if isinstance(dataset, BnnDataset) else dataset
    if isinstance(inner, PixelSequences):
        targets = torch.as_tensor(inner.targets).long()
        return PixelSplit(inner.pixels, targets, inner.max_pixel, inner.permutation)
    if isinstance(inner, CopyTask):
        return CopySplit(inner.symbols, inner.seq_length, inner.vocabulary)
    if isinstance(inner, Split):
        return inner
    xs, ys = zip(*(inner[i] for i in range(len(inner))), strict=True)
    return TensorSplit(torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys))


def batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    balanced: bool = False,
    limit: int | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of ``split`` in order, shuffled, or class-balanced (weights ``1/count``, with
    replacement, as many draws as items: the reference's GLUE sampler); at most ``limit``."""
    size = len(split)
    if balanced:
        targets = split.targets.long()
        weights = 1.0 / torch.bincount(targets).double()[targets]
        order = torch.multinomial(weights, size, replacement=True, generator=generator)
    elif shuffle:
        order = torch.randperm(size, generator=generator)
    else:
        order = torch.arange(size)
    for count, indices in enumerate(order.split(batch_size)):
        if limit is not None and count >= limit:
            return
        yield split.batch(indices)
