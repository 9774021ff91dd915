"""Datasets of the six HadamRNN tasks (reference ``dataset_tools``), as compact splits.

:func:`load_splits` maps ``DATASET.NAME`` (the registry :data:`DATASETS`; reference names
such as ``pMNIST`` or ``CopyMemory`` are accepted) to train / val / test
:class:`~bnn_shared.data.splits.Split` objects (the core's compact splits) plus the dataset
facts a model needs. pMNIST, sMNIST, sdigits, pdigits and the copy task come from the core
(``bnn_shared.data``); IMDB and GLUE live in :mod:`.text`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bnn_shared.data import load_dataset
from bnn_shared.data.splits import Split, as_split
from bnn_shared.registry import Registry

from ..config import DatasetConfig

__all__ = ["Splits", "load_split", "load_splits", "DATASETS"]


@dataclass
class Splits:
    """The three splits and facts about them (``extra``: e.g. the copy task's baseline)."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    extra: dict[str, Any] = field(default_factory=dict)
    test_labels: bool = True  # False for GLUE: its test labels are hidden


def _core(name: str, options: Callable[[DatasetConfig, str], dict]) -> Callable[..., Splits]:
    def build(cfg: DatasetConfig, data_dir, download) -> Splits:
        parts = {}
        for split in ("train", "val", "test"):
            parts[split] = load_dataset(
                name, split, data_dir=data_dir, download=download, **options(cfg, split)
            )
        info = parts["train"].info
        return Splits(
            name,
            *(as_split(parts[s]) for s in ("train", "val", "test")),
            num_classes=info.num_classes,
            extra=dict(info.extra),
        )

    return build


def _mnist_options(cfg: DatasetConfig, split: str) -> dict:
    return {} if cfg.val is None else {"val_size": cfg.val}


def _copy_options(cfg: DatasetConfig, split: str) -> dict:
    sizes = {"train": cfg.train, "val": cfg.val, "test": cfg.test}
    options = {
        "seq_length": cfg.seq_length or 1000,
        "sent_length": cfg.sent_length,
        "vocabulary": cfg.vocabulary,
        "seed": cfg.seed,
    }
    if sizes[split] is not None:
        options["size"] = sizes[split]
    return options


def _no_options(cfg: DatasetConfig, split: str) -> dict:
    return {}


def _imdb(cfg: DatasetConfig, data_dir, download) -> Splits:
    from .text import imdb_splits

    return imdb_splits(cfg, data_dir, download)


def _glue(cfg: DatasetConfig, data_dir, download) -> Splits:
    from .text import glue_splits

    return glue_splits(cfg, data_dir, download)


#: Options of the core datasets (``bnn_shared.data``) by name: ``options(cfg, split) -> dict``.
_CORE_OPTIONS: dict[str, Callable[[DatasetConfig, str], dict]] = {
    "copy_task": _copy_options,
    "pmnist": _mnist_options,
    "smnist": _mnist_options,
    "sdigits": _no_options,
    "pdigits": _no_options,
}

#: Builders by name (``DATASET.NAME``): ``builder(dataset_config, data_dir, download) -> Splits``.
DATASETS: Registry[Callable[..., Splits]] = Registry("dataset", flag="DATASET.NAME")
DATASETS.register("copy_task", _core("copy_task", _copy_options), aliases=("copymemory", "copy"))
DATASETS.register("pmnist", _core("pmnist", _mnist_options))
DATASETS.register("smnist", _core("smnist", _mnist_options))
DATASETS.register("sdigits", _core("sdigits", _no_options))
DATASETS.register("pdigits", _core("pdigits", _no_options))
DATASETS.register("imdb", _imdb)
DATASETS.register("glue", _glue)


def load_splits(cfg: DatasetConfig, data_dir=None, download: bool = False) -> Splits:
    """Train / val / test splits of ``cfg.name`` (files under ``data_dir``, never fetched
    unless ``download``)."""
    return DATASETS.get(cfg.name)(cfg, data_dir, download)


def load_split(cfg: DatasetConfig, split: str, data_dir=None, download: bool = False) -> Split:
    """One split (``train``, ``val`` or ``test``) of ``cfg.name``, exactly as in
    :func:`load_splits` (same options, same pMNIST permutation); the core datasets load only
    that split."""
    name = DATASETS.canonical(cfg.name)
    options = _CORE_OPTIONS.get(name)
    if options is None:  # IMDB, GLUE: built together
        return getattr(load_splits(cfg, data_dir, download), split)
    part = load_dataset(name, split, data_dir=data_dir, download=download, **options(cfg, split))
    return as_split(part)
