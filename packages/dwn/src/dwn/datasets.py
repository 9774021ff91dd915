"""The JSC dataset of the DWN paper, registered with the core, and the features of a config.

``jsc`` is the jet substructure classification task of LogicNets and the DWN paper: OpenML
42468 (hls4ml_lhc_jets_hlf, 16 features, 5 jet classes), fetched with scikit-learn when
``download`` is allowed, cached as ``<data_root>/jsc/jsc_openml_42468.npz`` and split
80/20 (``train_size``) with ``random_state=42``. Importing :mod:`dwn` registers it, so that
``bnn_shared.data.load_tensors("jsc", "train", train_size=0.8)`` works like any dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from bnn_shared.data import (
    LabeledTensors,
    dataset_info,
    load_tensors,
    missing_dataset_error,
    register_dataset,
)

from .config import TrainConfig

__all__ = ["JSC_OPENML_ID", "jsc", "load_arrays"]

JSC_OPENML_ID = 42468
JSC_SPLIT_SEED = 42


@register_dataset(
    "jsc",
    input_shape=(16,),
    num_classes=5,
    extra={"openml_id": JSC_OPENML_ID, "split_seed": JSC_SPLIT_SEED},
)
def jsc(split: str, root: Path, download: bool, *, train_size: float = 0.8) -> LabeledTensors:
    """One split of JSC: float32 features ``(N, 16)`` and labels 0..4 (the sorted class
    names), the split drawn by ``train_test_split(train_size, random_state=42)``."""
    from sklearn.model_selection import train_test_split

    folder = root / "jsc"
    cache = folder / f"jsc_openml_{JSC_OPENML_ID}.npz"
    if not cache.exists():
        if not download:
            raise missing_dataset_error("jsc", folder, missing=[cache.name])
        x, y = _fetch_jsc(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, x=x, y=y)
    with np.load(cache, allow_pickle=False) as data:
        x, y = data["x"].astype(np.float32), data["y"]
    _, y = np.unique(y, return_inverse=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, train_size=train_size, random_state=JSC_SPLIT_SEED
    )
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    return LabeledTensors(torch.from_numpy(x), torch.from_numpy(y).long())


def _fetch_jsc(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import fetch_openml

    try:
        bunch = fetch_openml(
            data_id=JSC_OPENML_ID,
            data_home=str(folder / "openml"),
            as_frame=False,
            parser="liac-arff",
            n_retries=1,
        )
    except Exception as exc:  # network errors come in many types; all mean "not here"
        raise missing_dataset_error("jsc", folder, reason=f"the download failed: {exc}") from exc
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target)


def load_arrays(
    cfg: TrainConfig, data_dir: str | os.PathLike | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Raw features ``(N, F)`` float32 and labels of the train and test splits of
    ``cfg.dataset``, and its number of classes (images are flattened)."""
    options = {"train_size": cfg.train_size} if dataset_info(cfg.dataset).name == "jsc" else {}
    arrays = []
    for split in ("train", "test"):
        x, y, dataset = load_tensors(cfg.dataset, split, data_dir, download, **options)
        arrays += [x.flatten(1), y]
    return (*arrays, dataset.num_classes)
