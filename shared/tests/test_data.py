"""Tests of bnn_shared.data: registry, digits, pixel sequences, copy task, missing files and a
fake MNIST written in torchvision's raw idx format (no real data, nothing downloaded)."""

from __future__ import annotations

import math
import os
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from bnn_shared.data import (
    BnnDataset,
    CopyTask,
    DatasetInfo,
    available_datasets,
    copy_task_baseline,
    data_root,
    dataset_info,
    load_dataset,
    register_dataset,
)
from bnn_shared.data import registry as registry_module
from bnn_shared.errors import (
    BnnError,
    ConfigError,
    DatasetNotFoundError,
    MissingDependencyError,
    ShapeError,
)
from torch.utils.data import DataLoader, random_split

CORE_DATASETS = [
    "digits",
    "sdigits",
    "pdigits",
    "copy_task",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "imagenette",
    "smnist",
    "pmnist",
]
FILE_DATASETS = ["mnist", "fashion_mnist", "cifar10", "cifar100", "imagenette", "smnist", "pmnist"]
OFFLINE_SPLITS = [
    (name, split) for name in ("digits", "sdigits", "pdigits") for split in ("train", "val", "test")
]


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(registry_module, "DATASETS", registry_module.DATASETS.copy())


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
    """An empty data root, also set as BNN_DATA_DIR so that no real files leak in."""
    monkeypatch.setenv("BNN_DATA_DIR", str(tmp_path))
    return tmp_path


# ----------------------------------------------------------------------------- fake MNIST


def write_idx_images(path: Path, images: np.ndarray) -> None:
    count, rows, cols = images.shape
    path.write_bytes(struct.pack(">iiii", 2051, count, rows, cols) + images.tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    """60 train / 20 test random 28x28 images in <root>/MNIST/raw, torchvision's layout."""
    root = tmp_path_factory.mktemp("fake_mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, count in (("train", 60), ("t10k", 20)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).astype(np.int64)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = (images, labels)
    return root, arrays


# ----------------------------------------------------------------------------- registry


class TestRegistry:
    def test_lists_core_datasets(self):
        names = available_datasets()
        assert names == sorted(names)
        assert set(CORE_DATASETS) <= set(names)

    @pytest.mark.parametrize(
        ("alias", "name"),
        [
            ("MNIST", "mnist"),
            ("Fashion-MNIST", "fashion_mnist"),
            (" Copy-Task ", "copy_task"),
            ("copy", "copy_task"),
            ("PMNIST", "pmnist"),
        ],
    )
    def test_names_are_case_and_dash_insensitive(self, alias, name):
        assert dataset_info(alias).name == name

    def test_unknown_name_lists_choices(self):
        with pytest.raises(BnnError, match="unknown dataset 'nope'.*digits"):
            load_dataset("nope")

    def test_unknown_split_lists_choices(self):
        with pytest.raises(BnnError, match="no split 'val'; choose one of train, test"):
            load_dataset("mnist", split="val")

    def test_unknown_option_lists_options(self):
        with pytest.raises(ConfigError, match="'colour'.*split_seed"):
            load_dataset("digits", colour=True)

    @pytest.mark.parametrize("name", CORE_DATASETS)
    def test_info_without_files(self, name, empty_data_dir):
        info = dataset_info(name)
        assert isinstance(info, DatasetInfo)
        assert info.name == name and info.num_classes >= 2 and info.splits
        assert not any(empty_data_dir.iterdir())

    def test_info_values(self):
        assert dataset_info("mnist").input_shape == (1, 28, 28)
        assert dataset_info("cifar100").num_classes == 100
        assert dataset_info("pmnist").input_shape == (784, 1)
        assert dataset_info("pmnist").task == "sequence_classification"
        assert dataset_info("pmnist").splits == ("train", "val", "test")
        assert dataset_info("copy_task").task == "sequence_to_sequence"

    def test_info_is_a_copy(self):
        dataset_info("pmnist").extra["permutation_seed"] = 1
        assert dataset_info("pmnist").extra["permutation_seed"] == 92916

    def test_data_root_precedence(self, tmp_path, monkeypatch):
        monkeypatch.setenv("BNN_DATA_DIR", str(tmp_path / "env"))
        assert data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
        assert data_root() == (tmp_path / "env").resolve()
        monkeypatch.delenv("BNN_DATA_DIR")
        assert data_root() == Path("~/.cache/bnn/data").expanduser().resolve()

    def test_register_and_load(self, scratch_registry, tmp_path):
        calls = []

        @register_dataset("My-Set", input_shape=(3,), num_classes=2, splits=("train", "dev"))
        def my_set(split, root, download, *, scale=1.0):
            calls.append((split, root, download))
            return torch.utils.data.TensorDataset(torch.ones(4, 3) * scale, torch.zeros(4))

        assert "my_set" in available_datasets()
        dataset = load_dataset("my-set", split="DEV", data_dir=tmp_path, scale=2.0)
        assert isinstance(dataset, BnnDataset)
        assert (dataset.name, dataset.split, dataset.input_shape) == ("my_set", "dev", (3,))
        assert dataset.num_classes == 2 and len(dataset) == 4
        assert torch.equal(dataset[0][0], torch.full((3,), 2.0))
        assert calls == [("dev", tmp_path.resolve(), False)]

    def test_register_with_info_object(self, scratch_registry):
        info = DatasetInfo("ignored", (2,), 3, extra={"k": 1})

        @register_dataset("with_info", info=info)
        def with_info(split, root, download):
            return torch.utils.data.TensorDataset(torch.zeros(1, 2), torch.zeros(1))

        assert dataset_info("with_info") == DatasetInfo("with_info", (2,), 3, extra={"k": 1})

    def test_conflicting_registration(self, scratch_registry):
        with pytest.raises(BnnError, match="already registered"):

            @register_dataset("digits", input_shape=(1,), num_classes=2)
            def other(split, root, download):
                raise AssertionError

    def test_bad_task(self):
        with pytest.raises(ConfigError, match="task 'regression'"):
            DatasetInfo("x", (1,), 2, task="regression")

    def test_missing_extra_modules(self, scratch_registry):
        @register_dataset(
            "needs_extra",
            input_shape=(1,),
            num_classes=2,
            requires="fancy",
            modules=("bnn_no_such_module_xyz",),
        )
        def needs_extra(split, root, download):
            raise AssertionError("must not be called")

        dataset_info("needs_extra")  # metadata needs no dependency
        with pytest.raises(MissingDependencyError, match=r"pip install 'bnn-shared\[fancy\]'"):
            load_dataset("needs_extra")

    def test_missing_extra_import_in_builder(self, scratch_registry):
        @register_dataset("imports_late", input_shape=(1,), num_classes=2, requires="nlp2")
        def imports_late(split, root, download):
            import bnn_no_such_module_xyz  # noqa: F401

        with pytest.raises(MissingDependencyError, match=r"'nlp2'.*bnn-shared\[nlp2\]") as info:
            load_dataset("imports_late")
        assert info.value.exit_code == 2

    def test_wrapper_forwards_attributes_and_pickles(self):
        dataset = load_dataset("pdigits", split="val")
        assert dataset.permutation.shape == (64,)
        copy = pickle.loads(pickle.dumps(dataset))
        assert torch.equal(copy[3][0], dataset[3][0]) and copy.info == dataset.info
        with pytest.raises(AttributeError):
            _ = dataset.no_such_attribute


# ----------------------------------------------------------------------------- digits


class TestDigits:
    @pytest.mark.parametrize(("split", "size"), [("train", 1258), ("val", 180), ("test", 359)])
    def test_shapes_and_range(self, split, size):
        dataset = load_dataset("digits", split=split)
        assert len(dataset) == size
        assert dataset.input_shape == (1, 8, 8) and dataset.num_classes == 10
        x, y = next(iter(DataLoader(dataset, batch_size=len(dataset))))
        assert x.shape == (size, 1, 8, 8) and x.dtype == torch.float32
        assert x.min() == 0 and x.max() == 1
        assert torch.equal(x * 16, (x * 16).round())  # pixels / 16
        assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))

    def test_stratified(self):
        totals = np.bincount(load_dataset("digits").dataset.targets.numpy(), minlength=10)
        totals = totals + sum(
            np.bincount(load_dataset("digits", split=s).dataset.targets.numpy(), minlength=10)
            for s in ("val", "test")
        )
        for split, fraction in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
            counts = np.bincount(load_dataset("digits", split=split).targets.numpy(), minlength=10)
            assert np.all(np.abs(counts - fraction * totals) <= 1.5), (split, counts)

    def test_splits_partition_all_images(self):
        from bnn_shared.data.digits import digits_split_indices

        parts = digits_split_indices(0)
        joined = np.concatenate([parts["train"], parts["val"], parts["test"]])
        assert len(joined) == 1797 and len(np.unique(joined)) == 1797

    def test_no_overlap_by_content(self):
        def rows(split):
            x = load_dataset("digits", split=split).dataset.x.reshape(-1, 64)
            return {tuple(r.tolist()) for r in x}

        train, val, test = rows("train"), rows("val"), rows("test")
        # digits has no duplicate images, so disjoint indices mean disjoint contents
        assert not (train & val) and not (train & test) and not (val & test)

    def test_deterministic_and_seeded(self):
        a, b = load_dataset("digits", split="test"), load_dataset("digits", split="test")
        assert torch.equal(a.dataset.x, b.dataset.x) and torch.equal(a.targets, b.targets)
        other = load_dataset("digits", split="test", split_seed=1)
        assert not torch.equal(a.dataset.x, other.dataset.x)


class TestPixelDigits:
    @pytest.mark.parametrize(("name", "split"), OFFLINE_SPLITS[3:])
    def test_shapes(self, name, split):
        dataset = load_dataset(name, split=split)
        x, y = dataset[0]
        assert x.shape == (64, 1) == dataset.input_shape and x.dtype == torch.float32
        assert isinstance(y, int) and dataset.info.task == "sequence_classification"

    def test_sdigits_is_flattened_digits(self):
        images, sequences = load_dataset("digits", split="val"), load_dataset("sdigits", "val")
        for i in (0, 5, 179):
            assert torch.equal(images[i][0].reshape(64, 1), sequences[i][0])
            assert images[i][1] == sequences[i][1]

    def test_pdigits_is_fixed_permutation(self):
        expected = np.random.RandomState(92916).permutation(64)
        for split in ("train", "test"):
            plain, permuted = load_dataset("sdigits", split), load_dataset("pdigits", split)
            assert np.array_equal(permuted.permutation.numpy(), expected)
            for i in (0, 1, len(plain) - 1):
                assert torch.equal(permuted[i][0], plain[i][0][expected])
                assert permuted[i][1] == plain[i][1]

    def test_permutation_seed(self):
        a = load_dataset("pdigits", "val", permutation_seed=1)
        assert np.array_equal(a.permutation.numpy(), np.random.RandomState(1).permutation(64))
        assert a.info.extra["permutation_seed"] == 1


# ----------------------------------------------------------------------------- copy task


class TestCopyTask:
    def test_layout(self):
        dataset = load_dataset("copy_task", split="val", size=5)
        T, K, V = 1000, 10, 10
        assert dataset.input_shape == (T, V) and dataset.num_classes == V - 1
        for i in range(len(dataset)):
            x, y = dataset[i]
            assert x.shape == (T, V) and x.dtype == torch.float32
            assert y.shape == (T,) and y.dtype == torch.int64
            assert torch.equal(x.sum(dim=1), torch.ones(T))  # one-hot
            tokens = x.argmax(dim=1)
            symbols = tokens[:K]
            assert symbols.min() >= 1 and symbols.max() <= V - 2
            assert torch.all(tokens[K : T - K] == 0)  # T - 2K = 980 blanks
            assert tokens[T - K] == V - 1  # marker
            assert torch.all(tokens[T - K + 1 :] == 0)  # K - 1 blanks
            assert torch.all(y[: T - K] == 0) and torch.equal(y[T - K :], symbols)
            assert torch.equal(tokens, dataset.dataset.input_tokens(i))

    def test_brute_force_small(self):
        dataset = load_dataset("copy", "test", seq_length=7, sent_length=2, vocabulary=4, size=3)
        for i in range(3):
            x, y = dataset[i]
            a, b = dataset.dataset.symbols[i].tolist()
            assert x.argmax(1).tolist() == [a, b, 0, 0, 0, 3, 0]
            assert y.tolist() == [0, 0, 0, 0, 0, a, b]
        assert dataset.input_shape == (7, 4) and dataset.num_classes == 3
        assert dataset.info.extra["delay"] == 3

    def test_symbols_uniform(self):
        symbols = load_dataset("copy_task", "val").dataset.symbols
        assert symbols.shape == (2000, 10)
        counts = torch.bincount(symbols.flatten().long(), minlength=9)
        assert counts[0] == 0 and torch.all(counts[1:] > 2000)  # 20,000 draws over 8 symbols

    def test_default_sizes(self):
        assert len(load_dataset("copy_task", "test")) == 2000
        assert len(load_dataset("copy_task", "train")) == 512_000

    def test_deterministic(self):
        a = load_dataset("copy_task", "train", size=50).dataset.symbols
        b = load_dataset("copy_task", "train", size=50).dataset.symbols
        assert torch.equal(a, b)

    def test_splits_and_seeds_differ(self):
        def symbols(split, seed=0):
            return load_dataset("copy_task", split, size=50, seed=seed).dataset.symbols

        train, val, test = symbols("train"), symbols("val"), symbols("test")
        assert not torch.equal(train, val) and not torch.equal(val, test)
        assert not torch.equal(train, test) and not torch.equal(train, symbols("train", 1))

    @pytest.mark.parametrize(("seq_length", "sent_length"), [(20, 10), (19, 10), (5, 3)])
    def test_too_short(self, seq_length, sent_length):
        with pytest.raises(ShapeError, match="must exceed"):
            load_dataset("copy_task", seq_length=seq_length, sent_length=sent_length, size=1)

    def test_tiny_vocabulary(self):
        with pytest.raises(ShapeError, match="vocabulary >= 3"):
            CopyTask.generate(1, seq_length=30, vocabulary=2)

    def test_baseline(self):
        assert dataset_info("copy_task").extra["baseline_loss"] == pytest.approx(0.020794, 1e-4)
        assert copy_task_baseline() == pytest.approx(10 * math.log(8) / 1000)
        dataset = load_dataset("copy_task", "val", seq_length=100, vocabulary=6, size=1)
        assert dataset.info.extra["baseline_loss"] == pytest.approx(10 * math.log(4) / 100)

    def test_batches(self):
        dataset = load_dataset("copy_task", "val", size=8)
        x, y = next(iter(DataLoader(dataset, batch_size=4)))
        assert x.shape == (4, 1000, 10) and y.shape == (4, 1000)


# ----------------------------------------------------------------------------- missing files


class TestMissingFiles:
    @pytest.mark.parametrize("name", FILE_DATASETS)
    def test_message(self, name, empty_data_dir, monkeypatch):
        import torchvision.datasets

        for cls in ("MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "Imagenette"):
            monkeypatch.setattr(torchvision.datasets, cls, _never_called)
        with pytest.raises(DatasetNotFoundError) as caught:
            load_dataset(name, split="test")
        message = str(caught.value)
        assert str(empty_data_dir.resolve()) in message
        assert "--download" in message and "download=True" in message
        assert "BNN_DATA_DIR" in message and "'digits'" in message
        assert "\n" not in message and caught.value.exit_code == 2
        assert isinstance(caught.value, FileNotFoundError)

    def test_mnist_path_in_message(self, tmp_path):
        with pytest.raises(DatasetNotFoundError) as caught:
            load_dataset("mnist", data_dir=tmp_path)
        assert str(tmp_path.resolve() / "MNIST" / "raw") in str(caught.value)
        assert "train-images-idx3-ubyte" in str(caught.value)

    def test_failed_download(self, tmp_path, monkeypatch):
        import torchvision.datasets

        def offline(self):
            raise URLError("no network")

        monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
        with pytest.raises(DatasetNotFoundError, match="download failed.*no network.*digits"):
            load_dataset("mnist", data_dir=tmp_path, download=True)

    def test_unreadable_files(self, tmp_path):
        raw = tmp_path / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
            (raw / f"{name}-idx{3 if 'images' in name else 1}-ubyte").write_bytes(b"junk")
        with pytest.raises(DatasetNotFoundError, match="could not read"):
            load_dataset("mnist", data_dir=tmp_path)


def _never_called(*args, **kwargs):
    raise AssertionError("torchvision must not be called when files are missing")


# ----------------------------------------------------------------------------- fake MNIST


class TestFakeMnist:
    def test_mnist(self, fake_mnist):
        root, arrays = fake_mnist
        for split, prefix, count in (("train", "train", 60), ("test", "t10k", 20)):
            dataset = load_dataset("mnist", split=split, data_dir=root)
            assert len(dataset) == count and dataset.input_shape == (1, 28, 28)
            images, labels = arrays[prefix]
            x, y = dataset[3]
            assert x.shape == (1, 28, 28) and y == labels[3]
            assert torch.allclose(x[0], torch.from_numpy(images[3]).float() / 255)

    def test_smnist_split(self, fake_mnist):
        root, arrays = fake_mnist
        images, labels = arrays["train"]
        train = load_dataset("smnist", "train", data_dir=root, val_size=10)
        val = load_dataset("smnist", "val", data_dir=root, val_size=10)
        assert (len(train), len(val)) == (50, 10) and train.input_shape == (784, 1)
        # the same as random_split with a Generator seeded 5544 (HadamRNN spec 4.2)
        generator = torch.Generator().manual_seed(5544)
        ref_train, ref_val = random_split(range(60), [50, 10], generator=generator)
        for dataset, indices in ((train, ref_train.indices), (val, ref_val.indices)):
            for i, source in enumerate(indices):
                x, y = dataset[i]
                expected = torch.from_numpy(images[source]).float().div(255).reshape(784, 1)
                assert torch.equal(x, expected) and y == labels[source]

    def test_smnist_split_seed(self, fake_mnist):
        root, _ = fake_mnist
        a = load_dataset("smnist", "val", data_dir=root, val_size=10)
        b = load_dataset("smnist", "val", data_dir=root, val_size=10, split_seed=1)
        assert not torch.equal(a.pixels, b.pixels)

    @pytest.mark.parametrize("split", ["train", "val", "test"])
    def test_pmnist_is_permuted_smnist(self, fake_mnist, split):
        root, _ = fake_mnist
        plain = load_dataset("smnist", split, data_dir=root, val_size=10)
        permuted = load_dataset("pmnist", split, data_dir=root, val_size=10)
        order = torch.from_numpy(np.random.RandomState(92916).permutation(784))
        assert len(plain) == len(permuted)
        for i in range(len(plain)):
            assert torch.equal(permuted[i][0], plain[i][0][order])
            assert permuted[i][1] == plain[i][1]

    def test_test_split_is_official(self, fake_mnist):
        root, arrays = fake_mnist
        images, labels = arrays["t10k"]
        test = load_dataset("smnist", "test", data_dir=root, val_size=10)
        assert len(test) == 20 and test[19][1] == labels[19]
        assert torch.equal(test[19][0].flatten(), torch.from_numpy(images[19]).flatten() / 255)

    def test_val_size_too_large(self, fake_mnist):
        root, _ = fake_mnist
        with pytest.raises(ConfigError, match="val_size=10000"):
            load_dataset("pmnist", "train", data_dir=root)


# ----------------------------------------------------------------------------- real data

REAL_ROOT = os.environ.get("BNN_DATA_DIR")
HAS_REAL_MNIST = bool(REAL_ROOT) and (Path(REAL_ROOT) / "MNIST" / "raw").is_dir()


@pytest.mark.skipif(not HAS_REAL_MNIST, reason="set BNN_DATA_DIR to a folder holding MNIST/raw")
def test_real_mnist_sizes():
    assert len(load_dataset("mnist", "test", data_dir=REAL_ROOT)) == 10_000
    train = load_dataset("pmnist", "train", data_dir=REAL_ROOT)
    assert len(train) == 50_000 and train[0][0].shape == (784, 1)


def test_inputs_and_labels_that_disagree_in_count_are_one_clear_error():
    from bnn_shared.data import LabeledTensors, as_tensors
    from bnn_shared.errors import DatasetNotFoundError

    dataset = LabeledTensors(torch.zeros(3, 2), torch.zeros(3))
    dataset.targets = torch.zeros(2)  # as a label file cut short would give
    with pytest.raises(DatasetNotFoundError, match="3 inputs but 2 labels"):
        as_tensors(dataset)
