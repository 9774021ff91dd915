"""Datasets: copy-task layout, pixel splits, the registry, IMDB (Keras npz and the
reference's pickle, its restricted unpickler and errors), GLUE errors (the
compact splits and their batches are the core's, tested in shared/tests/test_splits.py)."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from bnn_shared.cli import run_cli
from bnn_shared.data import load_dataset
from bnn_shared.data.splits import batches
from bnn_shared.errors import ConfigError, DatasetNotFoundError, MissingDependencyError
from bnn_shared.testing import assert_bad_input, metric_rows
from hadamrnn.config import DatasetConfig
from hadamrnn.dataset_tools import DATASETS, load_splits
from hadamrnn.dataset_tools.text import imdb_arrays, imdb_source, pad_sequences


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


def _write_pickle(path, rows=(6, 4), columns=10, vocab=50, **replace):
    """A tiny reference-style ``imdb_data.pkl`` (int32 ids 1..vocab-1, float32 0/1 labels);
    ``replace`` swaps an array, ``None`` drops the key."""
    data = {}
    for split, count in zip(("train", "test"), rows, strict=True):
        ids = np.arange(count * columns).reshape(count, columns) % (vocab - 1) + 1
        data[f"x_{split}"] = ids.astype(np.int32)
        data[f"y_{split}"] = (np.arange(count) % 2).astype(np.float32)
    data.update(replace)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump({k: v for k, v in data.items() if v is not None}, handle)
    return data


def test_imdb_reference_pickle(tmp_path):
    raw = _write_pickle(tmp_path / "imdb" / "imdb_data.pkl")
    cfg = DatasetConfig(name="imdb", seq_length=7, vocab_size=50)
    splits = load_splits(cfg, data_dir=tmp_path)
    x, y = splits.train.batch(torch.arange(6))
    assert x.shape == (6, 7) and x.dtype == torch.int64 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(raw["x_train"][:, 3:]).long())  # the LAST 7 columns
    assert y.tolist() == [0, 1, 0, 1, 0, 1]
    assert len(splits.val) == 2 and len(splits.test) == 2
    x_val, _ = splits.val.batch(torch.arange(2))
    x_test, _ = splits.test.batch(torch.arange(2))
    assert torch.equal(x_val, torch.from_numpy(raw["x_test"][2:, 3:]).long())  # last rows
    assert torch.equal(x_test, torch.from_numpy(raw["x_test"][:2, 3:]).long())  # first rows
    core = load_dataset("imdb", "val", data_dir=tmp_path, num_words=50, maxlen=7)
    assert torch.equal(core[1][0], x_val[1])


def test_imdb_pickle_and_npz_give_the_same_splits(tmp_path):
    _write_imdb(tmp_path / "npz" / "imdb")
    arrays = imdb_arrays(tmp_path / "npz", num_words=10, maxlen=8)
    (tmp_path / "pkl" / "imdb").mkdir(parents=True)
    with open(tmp_path / "pkl" / "imdb" / "imdb_data.pkl", "wb") as handle:
        keys = ("x_train", "y_train", "x_test", "y_test")
        pickle.dump(dict(zip(keys, arrays, strict=True)), handle)
    cfg = DatasetConfig(name="imdb", seq_length=8, vocab_size=10)
    a, b = (load_splits(cfg, data_dir=tmp_path / name) for name in ("npz", "pkl"))
    for split in ("train", "val", "test"):
        rows = torch.arange(len(getattr(a, split)))
        pairs = zip(getattr(a, split).batch(rows), getattr(b, split).batch(rows), strict=True)
        for left, right in pairs:
            assert left.dtype == right.dtype and torch.equal(left, right)


def test_imdb_pickle_wins_over_npz_and_the_reference_path_works(tmp_path, monkeypatch):
    _write_imdb(tmp_path / "imdb")
    _write_pickle(tmp_path / "imdb" / "imdb_data.pkl", rows=(4, 2))
    assert imdb_source(tmp_path).name == "imdb_data.pkl"
    cfg = DatasetConfig(name="imdb", seq_length=8, vocab_size=50)
    assert len(load_splits(cfg, data_dir=tmp_path).train) == 4  # the npz has 8 rows
    monkeypatch.chdir(tmp_path)
    _write_pickle(tmp_path / "downloaded_dataset" / "imdb" / "imdb_data.pkl", rows=(2, 2))
    assert imdb_source(tmp_path / "nothing") == Path("downloaded_dataset/imdb/imdb_data.pkl")
    assert len(load_splits(cfg, data_dir=tmp_path / "nothing").train) == 2


class _Payload:
    """Pickles as a call of ``os.system``: loading it with plain pickle would run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_imdb_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    _write_pickle(tmp_path / "imdb" / "imdb_data.pkl", y_test=_Payload(marker))
    cfg = DatasetConfig(name="imdb", seq_length=5, vocab_size=50)
    with pytest.raises(ConfigError, match=r"references (posix|os|nt)\.system, which is not"):
        load_splits(cfg, data_dir=tmp_path)
    assert not marker.exists()


def _imdb_argv(tmp_path) -> list[str]:
    config = Path(__file__).resolve().parents[3] / "configs" / "hadamrnn" / "imdb.yaml"
    argv = ["--config", str(config), "--device", "cpu", "--quiet", "--data-dir"]
    argv += [str(tmp_path / "data"), "--out-dir", str(tmp_path / "run"), "--set"]
    argv += ["DATASET.SEQ_LENGTH=5", "DATASET.VOCAB_SIZE=50", "MODEL.VOCAB_SIZE=50"]
    argv += ["MODEL.HIDDEN_SIZE=8", "MODEL.INPUT_SIZE=4", "TRAIN.N_EPOCHS=1"]
    return [*argv, "TRAIN.BATCH_SIZE=3"]


def test_imdb_pickle_trains_through_the_cli(tmp_path):
    from hadamrnn.train import main

    _write_pickle(tmp_path / "data" / "imdb" / "imdb_data.pkl")
    assert run_cli(main, _imdb_argv(tmp_path)) == 0
    rows = metric_rows(tmp_path / "run")
    assert rows and np.isfinite(rows[0]["train/loss"]) and "val/accuracy" in rows[0]


def test_imdb_pickle_bad_input_through_the_cli(tmp_path):
    from hadamrnn.train import main

    _write_pickle(tmp_path / "data" / "imdb" / "imdb_data.pkl", x_test=None)
    assert_bad_input(main, _imdb_argv(tmp_path), tmp_path, "lacks x_test", "imdb_data.pkl")


@pytest.mark.parametrize(
    ("replace", "options", "needle"),
    [
        ({"y_test": None}, {}, "lacks y_test"),
        ({}, {"vocab_size": 20}, "token id 49, outside 0..19"),
        ({"x_train": -np.ones((6, 10), dtype=np.int64)}, {}, "token id -1"),
        ({}, {"seq_length": 11}, "10 columns, fewer than DATASET.SEQ_LENGTH = 11"),
        ({"x_train": np.ones((6, 10), dtype=np.float32)}, {}, "2-D integer array"),
        ({"x_train": [[1, 2], [3]]}, {}, "2-D integer array"),
        ({"y_train": np.full(6, 2)}, {}, "0/1 labels"),
        ({"y_train": np.zeros(5)}, {}, "1-D array of 6 labels"),
    ],
)
def test_imdb_pickle_content_errors(tmp_path, replace, options, needle):
    _write_pickle(tmp_path / "imdb" / "imdb_data.pkl", **replace)
    cfg = DatasetConfig(name="imdb", **{"seq_length": 5, "vocab_size": 50, **options})
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_splits(cfg, data_dir=tmp_path)


def test_imdb_file_that_is_not_a_pickle(tmp_path):
    (tmp_path / "imdb").mkdir()
    (tmp_path / "imdb" / "imdb_data.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="is not a readable pickle"):
        load_splits(DatasetConfig(name="imdb"), data_dir=tmp_path)


def test_pad_sequences_keeps_the_last_tokens():
    assert pad_sequences([[1, 2, 3, 4], [5]], 3).tolist() == [[2, 3, 4], [0, 0, 5]]


def test_missing_imdb_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no downloaded_dataset/imdb/imdb_data.pkl here either
    with pytest.raises(DatasetNotFoundError) as info:
        load_splits(DatasetConfig(name="imdb"), data_dir=tmp_path)
    message = str(info.value)
    for needle in ("imdb_data.pkl", "imdb.npz", "downloaded_dataset/imdb", "--download"):
        assert needle in message, needle
    assert "sdigits or pdigits" in message


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
