"""The ``jsc`` dataset registered by dwn: loaded through the core's one data path from a
small cache file written by the test (the real one is OpenML 42468, fetched with --download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bnn_shared.data import available_datasets, dataset_info, load_tensors
from bnn_shared.errors import DatasetNotFoundError
from dwn.config import TrainConfig
from dwn.datasets import JSC_OPENML_ID, load_arrays
from dwn.experiment import train_model

CLASSES = np.array(["g", "q", "t", "w", "z"])


@pytest.fixture
def jsc_dir(tmp_path):
    """A data folder holding a 100-sample JSC cache: 16 features, string labels."""
    rng = np.random.default_rng(0)
    labels = CLASSES[np.arange(100) % 5]
    x = rng.normal(size=(100, 16)).astype(np.float32) + (np.arange(100) % 5)[:, None]
    (tmp_path / "jsc").mkdir()
    np.savez_compressed(tmp_path / "jsc" / f"jsc_openml_{JSC_OPENML_ID}.npz", x=x, y=labels)
    return tmp_path


def test_jsc_is_registered():
    info = dataset_info("jsc")
    assert "jsc" in available_datasets()
    assert (info.input_shape, info.num_classes, info.splits) == ((16,), 5, ("train", "test"))


def test_jsc_splits_through_load_tensors(jsc_dir):
    x_train, y_train, train_set = load_tensors("jsc", "train", jsc_dir, train_size=0.7)
    x_test, y_test, _ = load_tensors("jsc", "test", jsc_dir, train_size=0.7)
    assert x_train.shape == (70, 16) and x_test.shape == (30, 16)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert train_set.num_classes == 5 and set(y_train.tolist()) <= set(range(5))
    # the two splits partition the samples
    everything = torch.cat([x_train, x_test])
    assert torch.unique(everything, dim=0).shape == (100, 16)


def test_jsc_without_files_gives_the_core_message(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"'jsc' not found.*--download"):
        load_tensors("jsc", "train", tmp_path)


def test_load_arrays_passes_train_size_to_jsc_only(jsc_dir):
    cfg = TrainConfig(dataset="jsc", train_size=0.5)
    x_train, _, x_test, _, classes = load_arrays(cfg, jsc_dir)
    assert (len(x_train), len(x_test), classes) == (50, 50, 5)
    x_train, _, _, _, classes = load_arrays(TrainConfig(dataset="digits"))
    assert x_train.shape[1] == 64 and classes == 10


def test_short_jsc_run(jsc_dir, tmp_path):
    cfg = TrainConfig(
        dataset="jsc", bits=4, layers=[40], mapping=["random"], n=4, epochs=1, backend="torch"
    )
    run = tmp_path / "run"
    final = train_model(cfg, out_dir=run, data_dir=str(jsc_dir), device="cpu", quiet=True)
    assert final["export/agreement"] == 1.0 and 0 <= final["test/accuracy"] <= 1
