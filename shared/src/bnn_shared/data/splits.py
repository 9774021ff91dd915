"""A dataset split held as compact tensors and cut into batches without a per-item loop.

:func:`as_split` turns a loaded dataset into a :class:`Split`: it knows its size, its targets
(for class-balanced sampling) and how to build a batch ``(x, y)`` from an index tensor. The
storage stays compact where the dataset allows it: pixel sequences keep their integer pixels
(:class:`PixelSplit`), the copy task only its symbols (:class:`CopySplit`), anything else is
one input tensor (:class:`TensorSplit`). :func:`batches` yields the batches of an epoch in
order, shuffled or class-balanced, from a given ``torch.Generator`` (a run's shuffling
generator, e.g. :attr:`bnn_shared.runner.Context.generator`)::

    split = as_split(load_dataset("pmnist", "train"))
    for x, y in batches(split, 100, shuffle=True, generator=ctx.generator):
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import BnnDataset
from .sequences import CopyTask, PixelSequences
from .tensors import as_tensors

__all__ = ["Split", "PixelSplit", "CopySplit", "TensorSplit", "as_split", "batches"]


class Split:
    """Base class: ``len(split)``, ``split.targets`` and ``split.batch(indices)``."""

    targets: Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """The items at ``indices`` as ``(x, y)`` tensors."""
        raise NotImplementedError


@dataclass
class PixelSplit(Split):
    """Images read pixel by pixel: ``x = pixels[:, permutation] / max_pixel``, ``(B, L, 1)``
    float32, the items of :class:`~bnn_shared.data.PixelSequences`."""

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
    """Copy task: one-hot inputs ``(B, T, V)`` and targets ``(B, T)`` built per batch, the
    items of :class:`~bnn_shared.data.CopyTask`."""

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
    """Inputs stacked in one tensor (token ids, or any fixed-shape ``x``), kept in their dtype."""

    inputs: Tensor
    targets: Tensor

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        return self.inputs[indices], self.targets[indices]


def as_split(dataset: Any) -> Split:
    """The compact :class:`Split` of a dataset (a :class:`~bnn_shared.data.BnnDataset` or
    the dataset it wraps).

    Pixel sequences and the copy task keep their compact storage; a dataset holding its
    inputs in ``.x`` (e.g. :class:`~bnn_shared.data.LabeledTensors` of token ids) gives them
    as they are; any other dataset goes through :func:`~bnn_shared.data.as_tensors`.
    """
    inner = dataset.dataset if isinstance(dataset, BnnDataset) else dataset
    if isinstance(inner, Split):
        return inner
    if isinstance(inner, PixelSequences):
        targets = torch.as_tensor(inner.targets).long()
        return PixelSplit(inner.pixels, targets, inner.max_pixel, inner.permutation)
    if isinstance(inner, CopyTask):
        return CopySplit(inner.symbols, inner.seq_length, inner.vocabulary)
    x, targets = getattr(inner, "x", None), getattr(inner, "targets", None)
    if isinstance(x, Tensor) and targets is not None:
        return TensorSplit(x, torch.as_tensor(targets).long())
    return TensorSplit(*as_tensors(dataset))


def batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    balanced: bool = False,
    limit: int | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """The batches ``(x, y)`` of one pass over ``split``.

    Args:
        split: the split.
        batch_size: items per batch (the last batch may be smaller).
        shuffle: a random order drawn with ``generator`` (else ``0..N-1``).
        generator: the random source of ``shuffle`` and ``balanced``.
        balanced: class-balanced sampling instead: ``N`` draws with replacement, each item
            weighted ``1 / (count of its class)``.
        limit: stop after this many batches (None: all).
    """
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
