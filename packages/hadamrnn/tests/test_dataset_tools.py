"""Datasets: copy-task layout, pixel splits, the registry, IMDB fixture, GLUE errors (the
compact splits and their batches are the core's, tested in shared/tests/test_splits.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bnn_shared.data import load_dataset
from bnn_shared.data.splits import batches
from bnn_shared.errors import ConfigError, DatasetNotFoundError, MissingDependencyError
from hadamrnn.config import DatasetConfig
from hadamrnn.dataset_tools import DATASETS, load_splits
from hadamrnn.dataset_tools.text import imdb_arrays, pad_sequences


def test_copy_task_layout():
    cfg = DatasetConfig(name="CopyMemory", seq_length=30, train=6, val=2, test=2)
    splits = load_splits(cfg)
    x, y = splits.train.batch(torch.arange(6))
    assert x.shape == (6, 30, 10) and y.shape == (6, 30)
    tokens = x.argmax(-1)
    assert torch.equal(x.sum(-1), torch.ones(6, 30))  # one-hot
    symbols = tokens[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (tokens[:, 10:20] == 0).all()  # blanks: delay T - 2K = 10
    assert (tokens[:, 20] == 9).all()  # marker at T - K
    assert (tokens[:, 21:] == 0).all()
    assert (y[:, :20] == 0).all() and torch.equal(y[:, 20:], symbols)
    assert splits.extra["baseline_loss"] == pytest.approx(10 * np.log(8) / 30)
    core = load_dataset("copy_task", "train", seq_length=30, size=6)
    for i in range(6):  # the same items as the core's dataset
        assert torch.equal(core[i][0], x[i]) and torch.equal(core[i][1], y[i])


def test_pixel_split_equals_the_core_items():
    splits = load_splits(DatasetConfig(name="pdigits"))
    core = load_dataset("pdigits", "val")
    x, y = splits.val.batch(torch.arange(len(core)))
    assert x.shape == (len(core), 64, 1)
    for i in (0, 7, len(core) - 1):
        assert torch.equal(core[i][0], x[i]) and core[i][1] == y[i]


def test_batches_of_a_task_split():
    splits = load_splits(DatasetConfig(name="sdigits"))
    seen = torch.cat([y for _, y in batches(splits.test, 50)])
    assert len(seen) == len(splits.test)
    generator = torch.Generator().manual_seed(0)
    assert len(list(batches(splits.train, 10, shuffle=True, generator=generator, limit=3))) == 3


def test_dataset_registry_names():
    assert DATASETS.canonical("pMNIST") == "pmnist"
    assert DATASETS.canonical("CopyMemory") == DATASETS.canonical("copy") == "copy_task"
    assert DATASETS.names() == [
        "copy_task",
        "glue",
        "imdb",
        "pdigits",
        "pmnist",
        "sdigits",
        "smnist",
    ]
    with pytest.raises(ConfigError, match=r"unknown dataset 'cifar' \(DATASET\.NAME\)"):
        load_splits(DatasetConfig(name="cifar"))


def _write_imdb(folder):
    rng = np.random.RandomState(0)

    def reviews(count):
        out = np.empty(count, dtype=object)
        for i in range(count):
            out[i] = list(rng.randint(1, 20, size=rng.randint(3, 12)))
        return out

    folder.mkdir(parents=True)
    np.savez(
        folder / "imdb.npz",
        x_train=reviews(8),
        y_train=np.arange(8) % 2,
        x_test=reviews(6),
        y_test=np.arange(6) % 2,
    )


def test_imdb_keras_format(tmp_path):
    _write_imdb(tmp_path / "imdb")
    x_train, y_train, x_test, y_test = imdb_arrays(tmp_path, num_words=10, maxlen=8)
    assert x_train.shape == (8, 8) and x_test.shape == (6, 8)
    assert x_train.max() <= 9  # ranks >= num_words became the out-of-vocabulary id 2
    with np.load(tmp_path / "imdb" / "imdb.npz", allow_pickle=True) as raw:
        lengths = sorted(len(r) + 1 for r in raw["x_train"])  # + the start token
    got = sorted(min(int((row != 0).sum()), 8) for row in x_train)
    assert got == sorted(min(n, 8) for n in lengths)
    for row in x_train:  # pre-padding: zeros first, then the start token or the kept tail
        nonzero = np.flatnonzero(row)
        assert nonzero[-1] == 7 and (row[: nonzero[0]] == 0).all()
    splits = load_splits(DatasetConfig(name="imdb", seq_length=8, vocab_size=10), data_dir=tmp_path)
    assert len(splits.train) == 8 and len(splits.val) == 3 and len(splits.test) == 3
    core = load_dataset("imdb", "test", data_dir=tmp_path, num_words=10, maxlen=8)
    assert torch.equal(core[0][0], splits.test.batch(torch.tensor([0]))[0][0])


def test_pad_sequences_keeps_the_last_tokens():
    assert pad_sequences([[1, 2, 3, 4], [5]], 3).tolist() == [[2, 3, 4], [0, 0, 5]]


def test_missing_imdb_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="imdb.npz"):
        load_splits(DatasetConfig(name="imdb"), data_dir=tmp_path)


def test_glue_without_its_extra_is_a_clear_error(tmp_path):
    try:
        import datasets  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"hadamrnn\[nlp\]"):
            load_splits(DatasetConfig(name="glue", task="sst2"), data_dir=tmp_path)
    else:  # offline with the extra installed: the missing cache is reported
        with pytest.raises(DatasetNotFoundError):
            load_splits(DatasetConfig(name="glue", task="sst2"), data_dir=tmp_path)


def test_imdb_falls_back_to_hugging_face_ranks(tmp_path, monkeypatch):
    import sys
    import types

    texts = {"train": ["good good film", "bad film<br />bad"], "test": ["good", "awful film"]}
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda name, cache_dir: {
        split: {"text": texts[split], "label": [1, 0]} for split in texts
    }
    monkeypatch.setitem(sys.modules, "datasets", fake)
    x_train, y_train, x_test, _ = imdb_arrays(tmp_path, num_words=10, maxlen=5)
    # ranks over the training words: good 1, film 2, bad 3 (ties by first use); +3, start 1;
    # rows are shuffled as Keras does, so compare them as sets
    rows = {tuple(row): label for row, label in zip(x_train.tolist(), y_train, strict=True)}
    assert rows == {(0, 1, 4, 4, 5): 1, (0, 1, 6, 5, 6): 0}
    unknown = 4 + 3  # a word not seen in training gets the next rank
    assert sorted(map(tuple, x_test.tolist())) == [(0, 0, 0, 1, 4), (0, 0, 1, unknown, 5)]
