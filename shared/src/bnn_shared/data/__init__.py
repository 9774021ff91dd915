"""Datasets by name: ``load_dataset("pmnist", split="val")`` returns a :class:`BnnDataset`.

Modules: ``registry`` (names, metadata, :func:`load_dataset`, the missing-files message),
``vision`` (torchvision images: mnist, fashion_mnist, cifar10, cifar100, imagenette),
``folders`` (official folder layouts: stanford_dogs, mit_indoor),
``digits`` (scikit-learn's bundled 8x8 digits, always offline) and ``sequences`` (smnist,
pmnist, sdigits, pdigits, copy_task); ``tensors`` is the one path from a dataset to
in-memory tensors (:func:`load_tensors`, normalised with the statistics of the dataset's info).
Files live under :func:`data_root`: ``data_dir``, else
``$BNN_DATA_DIR``, else ``~/.cache/bnn/data``; nothing is downloaded unless ``download=True``.
"""

from . import digits, folders, sequences, vision  # noqa: F401  (importing registers the datasets)
from .registry import (
    TASKS,
    BnnDataset,
    DatasetInfo,
    LabeledTensors,
    available_datasets,
    data_root,
    dataset_info,
    load_dataset,
    missing_dataset_error,
    register_dataset,
)
from .sequences import CopyTask, PixelSequences, copy_task_baseline, pixel_permutation
from .tensors import as_tensors, load_tensors, normalize

__all__ = [
    "TASKS",
    "BnnDataset",
    "DatasetInfo",
    "LabeledTensors",
    "CopyTask",
    "PixelSequences",
    "as_tensors",
    "available_datasets",
    "copy_task_baseline",
    "data_root",
    "dataset_info",
    "load_dataset",
    "load_tensors",
    "missing_dataset_error",
    "normalize",
    "pixel_permutation",
    "register_dataset",
]
