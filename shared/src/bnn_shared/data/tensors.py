"""The one data path from a registered dataset to tensors held in memory.

Every package trains on ``(x, y)`` tensors of a split: :func:`load_tensors` loads a registered
dataset's split and stacks it (images ``(N, C, H, W)`` float32 in [0, 1], sequences as their
dataset gives them, integer labels), optionally normalised with the statistics in the dataset's
:class:`~bnn_shared.data.DatasetInfo` (``mean`` / ``std`` per channel). torchvision datasets
are read from their raw arrays, without a per-item Python loop.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError, DatasetNotFoundError, ShapeError
from .registry import BnnDataset, load_dataset

__all__ = ["as_tensors", "load_tensors", "normalize"]


def as_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``dataset`` as ``(x, y)``: ``x`` float32, ``y`` int64.

    Images get a channel axis: torchvision's MNIST-style ``uint8 (N, H, W)`` arrays become
    ``(N, 1, H, W)`` in [0, 1] and CIFAR's ``uint8 (N, H, W, C)`` become ``(N, C, H, W)``,
    the values ``ToTensor`` gives; a dataset holding its inputs in ``.x`` (e.g.
    :class:`~bnn_shared.data.LabeledTensors`) gives them as they are; any other dataset is
    stacked item by item.
    """
    inner = getattr(dataset, "dataset", dataset)
    data, targets, x = (getattr(inner, key, None) for key in ("data", "targets", "x"))
    if isinstance(x, torch.Tensor) and targets is not None:
        inputs = x.float()
    elif isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and targets is not None:
        inputs = data.float().div_(255)
    elif data is not None and getattr(data, "dtype", None) is not None and targets is not None:
        inputs = torch.as_tensor(data).float().div_(255).permute(0, 3, 1, 2)
    elif len(dataset):
        inputs, targets = _stack_items(dataset)
    else:
        items, targets = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
        inputs = torch.stack([torch.as_tensor(item) for item in items]).float()
    if inputs.dim() == 3 and isinstance(data, torch.Tensor) and data.dim() == 3:
        inputs = inputs.unsqueeze(1)
    labels = torch.as_tensor(targets).long()
    if len(inputs) != len(labels):
        name = getattr(getattr(dataset, "info", None), "name", type(inner).__name__)
        raise DatasetNotFoundError(
            f"dataset {name!r}: its files disagree: {len(inputs)} inputs but {len(labels)} "
            "labels (an image file and a label file of different splits or a cut download?); "
            "put matching files in place or download them again with --download"
        )
    return inputs.contiguous(), labels


def _stack_items(dataset: Any) -> tuple[torch.Tensor, list]:
    """A dataset's items read one by one into one preallocated float32 tensor, so that a large
    split (Stanford Dogs at 224 x 224: 7.2 GB) is held once, not twice, while stacking."""
    x, y = dataset[0]
    first = torch.as_tensor(x)
    inputs = torch.empty((len(dataset), *first.shape), dtype=torch.float32)
    inputs[0] = first
    targets = [y]
    for i in range(1, len(dataset)):
        x, y = dataset[i]
        item = torch.as_tensor(x)
        if item.shape != first.shape:
            raise ShapeError(
                f"item {i} has shape {tuple(item.shape)}, item 0 {tuple(first.shape)}: the "
                "items of a dataset must have one shape to be stacked"
            )
        inputs[i] = item
        targets.append(y)
    return inputs, targets


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel (axis 1) of an image batch ``(N, C, H, W)``."""
    channels = x.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"normalisation statistics for {len(mean)} channel(s), but the images have {channels}"
        )
    view = (1, channels, *([1] * (x.dim() - 2)))
    return (x - torch.tensor(mean).view(view)) / torch.tensor(std).view(view)


def load_tensors(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    *,
    normalized: bool = False,
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor, BnnDataset]:
    """One split of a registered dataset as tensors: ``(x, y, dataset)``.

    Args:
        name: a registered name or alias (see :func:`~bnn_shared.data.available_datasets`).
        split: one of the dataset's splits.
        data_dir, download: where the files are, and whether they may be fetched.
        normalized: normalise images with the dataset's ``info.mean`` / ``info.std``.
        **options: the dataset builder's own options.

    Returns:
        ``x`` and ``y`` as :func:`as_tensors` makes them, and the loaded dataset (its
        ``info`` holds the shapes, class count and statistics).

    Raises:
        DatasetNotFoundError: the files are missing (the message says where and how).
        ConfigError: ``normalized`` for a dataset without statistics.
    """
    dataset = load_dataset(name, split, data_dir=data_dir, download=download, **options)
    x, y = as_tensors(dataset)
    if normalized:
        info = dataset.info
        if info.mean is None or info.std is None:
            raise ConfigError(f"dataset {info.name!r} has no normalisation statistics")
        x = normalize(x, info.mean, info.std)
    return x, y, dataset
