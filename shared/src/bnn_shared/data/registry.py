"""Dataset registry: every dataset is a name, a :class:`DatasetInfo` and a builder function.

A builder is registered with :func:`register_dataset` and called by :func:`load_dataset` as
``builder(split, root, download, **kwargs)``, where ``root`` is :func:`data_root` (a folder that
holds the files in torchvision's layout) and ``download`` says whether fetching missing files is
allowed. It returns any map-style ``torch.utils.data.Dataset`` yielding ``(x, y)``; the registry
wraps it in a :class:`BnnDataset` that carries the metadata. A builder whose metadata depends on
its options (the copy task's length) returns a :class:`BnnDataset` itself, which is kept as is.

Packages outside the core register their datasets (IMDB, GLUE, JSC) in their own modules; a
package can also declare an entry point in the group ``bnn_shared.datasets`` naming that module,
so that :func:`load_dataset` finds its datasets without the module being imported first.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import BnnError, ConfigError, DatasetNotFoundError, MissingDependencyError
from ..registry import Registry, normalize_name

__all__ = [
    "TASKS",
    "DatasetInfo",
    "BnnDataset",
    "LabeledTensors",
    "data_root",
    "missing_dataset_error",
    "register_dataset",
    "load_dataset",
    "dataset_info",
    "available_datasets",
]

#: The kinds of task a dataset can declare in :attr:`DatasetInfo.task`.
TASKS = ("classification", "sequence_classification", "sequence_to_sequence")

#: The modules that must import for each optional extra of ``bnn-shared`` (see pyproject.toml).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "nlp": ("datasets", "transformers"),
    "keras": ("keras",),
    "wandb": ("wandb",),
}

ENTRY_POINT_GROUP = "bnn_shared.datasets"
DATA_DIR_ENV = "BNN_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/bnn/data")

Builder = Callable[..., Dataset]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset, available without loading any file.

    Args:
        name: canonical registered name (lower case, ``_`` separators).
        input_shape: shape of one input ``x`` without the batch dimension, e.g. ``(1, 28, 28)``
            for images or ``(T, features)`` for sequences.
        num_classes: number of target classes (per time step for sequence-to-sequence tasks).
        task: one of :data:`TASKS`.
        splits: the split names :func:`load_dataset` accepts, e.g. ``("train", "val", "test")``.
        extra: dataset-specific facts (seeds, baselines, sequence lengths).
        mean, std: per-channel statistics of the training images in [0, 1], for
            normalisation (:func:`~bnn_shared.data.load_tensors`); None when not defined.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    task: str = "classification"
    splits: tuple[str, ...] = ("train", "test")
    extra: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "splits", tuple(self.splits))
        object.__setattr__(self, "extra", dict(self.extra))
        if self.task not in TASKS:
            raise ConfigError(
                f"dataset {self.name!r}: task {self.task!r} is not one of {', '.join(TASKS)}"
            )
        if int(self.num_classes) < 1 or not self.splits:
            raise ConfigError(f"dataset {self.name!r}: needs num_classes >= 1 and a split")


class BnnDataset(Dataset):
    """A map-style dataset returning ``(x, y)`` together with its :class:`DatasetInfo`.

    Attributes that are not found here are looked up on the wrapped dataset, so that e.g.
    ``.targets`` or ``.permutation`` stay reachable.

    Args:
        dataset: the wrapped map-style dataset.
        info: its metadata.
        split: which split of ``info.splits`` it holds.
    """

    def __init__(self, dataset: Dataset, info: DatasetInfo, split: str) -> None:
        if split not in info.splits:
            raise BnnError(f"dataset {info.name!r} has no split {split!r}")
        self.dataset = dataset
        self.info = info
        self.split = split

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.info.input_shape

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        # Only called for missing attributes; guard against recursion while unpickling.
        if name.startswith("__") or "dataset" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["dataset"], name)

    def __repr__(self) -> str:
        return (
            f"BnnDataset(name={self.name!r}, split={self.split!r}, size={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


class LabeledTensors(Dataset):
    """Inputs stacked in one tensor and integer labels; item ``i`` is ``(x[i], int(y[i]))``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise BnnError(f"{len(x)} inputs but {len(y)} labels")
        self.x = x
        self.targets = y

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.x[index], int(self.targets[index])


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds dataset files: ``data_dir``, else ``$BNN_DATA_DIR``, else
    ``~/.cache/bnn/data``; returned absolute, with ``~`` expanded."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    path = Path(chosen) if chosen is not None else DEFAULT_DATA_DIR
    return path.expanduser().resolve()


def missing_dataset_error(
    name: str,
    folder: str | os.PathLike,
    *,
    missing: Sequence[str] = (),
    reason: str | None = None,
) -> DatasetNotFoundError:
    """Build the one message every missing dataset raises (the caller raises it).

    Args:
        name: the dataset name the user asked for.
        folder: where its files are expected (made absolute in the message).
        missing: file or folder names that are absent there, listed when given.
        reason: why they could not be obtained (e.g. the download error), when known.
    """
    where = Path(folder).expanduser().resolve()
    missing_text = f" (missing: {', '.join(missing)})" if missing else ""
    reason_text = f"; {reason}" if reason else ""
    return DatasetNotFoundError(
        f"dataset {name!r} not found: its files are expected in {where}{missing_text}"
        f"{reason_text}. To get them, pass --download on the command line (download=True in "
        f"Python), or set {DATA_DIR_ENV} or --data-dir (data_dir= in Python) to a folder that "
        "already holds them. The bundled 'digits' dataset works offline."
    )


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    builder: Builder
    requires: str | None
    modules: tuple[str, ...]


#: Every dataset by name and alias (an entry holds its info, builder and requirements).
DATASETS: Registry[_Entry] = Registry("dataset", flag="--dataset")
_plugins_loaded = False


def register_dataset(
    name: str,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    task: str = "classification",
    splits: Sequence[str] = ("train", "test"),
    extra: dict[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    info: DatasetInfo | None = None,
    requires: str | None = None,
    modules: Sequence[str] | None = None,
    aliases: Sequence[str] = (),
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(split, root, download, **kwargs)`` under ``name``.

    Give the metadata either as ``info=DatasetInfo(...)`` or as the fields ``input_shape``,
    ``num_classes``, ``task``, ``splits``, ``extra``, ``mean`` and ``std`` (see
    :class:`DatasetInfo`).

    Args:
        name: the name; case-insensitive, ``-`` and ``_`` are the same.
        requires: an optional extra of ``bnn-shared`` (e.g. ``"nlp"``) the builder needs; when
            its modules do not import, loading raises :class:`MissingDependencyError` telling
            to ``pip install 'bnn-shared[<extra>]'``.
        modules: the modules to check for ``requires``; default: the extra's known modules.
        aliases: more names for the same dataset.
    """
    key = normalize_name(name)
    if info is None:
        if input_shape is None or num_classes is None:
            raise ConfigError(f"register_dataset({name!r}) needs input_shape and num_classes")
        info = DatasetInfo(key, tuple(input_shape), int(num_classes), task, tuple(splits))
        stats = {"mean": tuple(mean) if mean else None, "std": tuple(std) if std else None}
        info = replace(info, extra=dict(extra or {}), **stats)
    else:
        info = replace(info, name=key)
    checked = tuple(modules) if modules is not None else EXTRA_MODULES.get(requires or "", ())

    def decorator(builder: Builder) -> Builder:
        previous = DATASETS.get(key) if key in DATASETS else None
        if previous is not None and _qualname(previous.builder) != _qualname(builder):
            raise BnnError(
                f"dataset {key!r} is already registered by {_qualname(previous.builder)}"
            )
        # the same builder again (its module reloaded) replaces its entry
        entry = _Entry(info, builder, requires, checked)
        DATASETS.register(key, entry, aliases=aliases, replace=True)
        return builder

    return decorator


def _qualname(function: Callable) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def _load_plugins() -> None:
    """Import once every module declared in the ``bnn_shared.datasets`` entry-point group."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as exc:  # a broken plugin must not break the core datasets
            warnings.warn(
                f"could not load datasets from {entry_point.value!r}: {exc}", stacklevel=3
            )


def _find(name: str) -> _Entry | None:
    return DATASETS.get(name) if name in DATASETS else None


def _lookup(name: str) -> _Entry:
    entry = _find(name)
    if entry is None:
        _load_plugins()
        entry = _find(name)
    if entry is None:
        raise ConfigError(DATASETS.unknown_message(name))
    return entry


def available_datasets() -> list[str]:
    """The canonical names of all registered datasets, sorted."""
    _load_plugins()
    return DATASETS.names()


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` with default options; reads no file."""
    return replace(_lookup(name).info)


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    **kwargs: Any,
) -> BnnDataset:
    """Load one split of a registered dataset.

    Args:
        name: a name from :func:`available_datasets` (case-insensitive, ``-`` equals ``_``).
        split: one of the dataset's ``info.splits``; default ``"train"``.
        data_dir: folder holding the files; default :func:`data_root`.
        download: fetch missing files (network); default False, which never downloads.
        **kwargs: dataset options (e.g. ``transform=``, ``seed=``, ``val_size=``).

    Raises:
        BnnError: unknown name, split or option (the message lists the choices).
        DatasetNotFoundError: the files are missing and were not downloaded.
        MissingDependencyError: the dataset needs an optional extra that is not installed.
    """
    entry = _lookup(name)
    info = entry.info
    split_key = str(split).strip().lower()
    if split_key not in info.splits:
        raise BnnError(
            f"dataset {info.name!r} has no split {split!r}; choose one of {', '.join(info.splits)}"
        )
    _check_requirements(entry)
    _check_options(entry, kwargs)
    root = data_root(data_dir)
    try:
        dataset = entry.builder(split_key, root, bool(download), **kwargs)
    except ModuleNotFoundError as exc:
        if entry.requires is None or (exc.name or "").startswith("bnn_shared"):
            raise
        raise _missing_extra(info.name, entry.requires, exc.name) from exc
    if isinstance(dataset, BnnDataset):
        return dataset
    return BnnDataset(dataset, info, split_key)


def _missing_extra(name: str, extra: str, module: str | None) -> MissingDependencyError:
    return MissingDependencyError(
        f"dataset {name!r} needs the optional extra {extra!r} (module {module!r} is missing): "
        f"pip install 'bnn-shared[{extra}]'"
    )


def _check_requirements(entry: _Entry) -> None:
    if entry.requires is None:
        return
    for module in entry.modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise _missing_extra(entry.info.name, entry.requires, module) from exc


def _check_options(entry: _Entry, kwargs: dict[str, Any]) -> None:
    parameters = list(inspect.signature(entry.builder).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [p.name for p in parameters[3:]]  # after (split, root, download)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"dataset {entry.info.name!r} has no option {', '.join(map(repr, unknown))}; "
            f"options: {', '.join(accepted) or 'none'}"
        )
