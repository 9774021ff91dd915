"""Study B's data as its code prepares each dataset (statistics, flip, --augment, resize), the
dataset switches, the ImageNette default without files and the validation transforms (quirk
27); synthetic tensors only, no dataset files."""

from __future__ import annotations

import shlex

import pytest
import torch
from binary_feedback import data
from binary_feedback.config import StudyBConfig
from binary_feedback.experiment import StudyBExperiment
from binary_feedback.train import main, resolve
from bnn_shared.testing import assert_bad_input
from PIL import Image

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: dataset -> (channels, mean, std, flips, honours --augment, the reference's resize)
EXPECTED = {
    "mnist": (1, (0.1307,), (0.3081,), False, False, None),
    "fashion_mnist": (1, (0.2860,), (0.3530,), False, False, None),
    "cifar10": (3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), False, False, 224),
    "imagenette": (3, *IMAGENET, True, True, 224),
    "stanford_dogs": (3, *IMAGENET, True, True, 224),
    "mit_indoor": (3, *IMAGENET, True, True, 224),
}
B = "--model MLP --bs 64 --epochs 1 --seed 0 --device cpu --quiet"


def _view(values):
    return torch.tensor(values).view(1, -1, 1, 1)


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_statistics_of_each_dataset(dataset):
    channels, mean, std, *_ = EXPECTED[dataset]
    x = torch.rand(2, channels, 5, 5)
    expected = (x - _view(mean)) / _view(std)
    assert torch.allclose(data.normalize_study_b(x, dataset), expected, atol=1e-6)


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_flip_and_augment_of_each_dataset(dataset):
    channels, _, _, flips, augments, _ = EXPECTED[dataset]
    x = torch.randn(16, channels, 12, 12)
    plain = data.augment_study_b(x, torch.Generator().manual_seed(1), dataset, full=False)
    full = data.augment_study_b(x, torch.Generator().manual_seed(1), dataset, full=True)
    if not flips:  # MNIST, Fashion-MNIST, CIFAR-10: untouched, --augment ignored
        assert torch.equal(plain, x) and torch.equal(full, x)
        return
    same = [torch.equal(a, b) for a, b in zip(plain, x, strict=True)]
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(plain, x, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True)) and 0 < sum(mirrored) < 16
    assert augments and not any(torch.equal(a, b) for a, b in zip(full, plain, strict=True))


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_resize_of_each_dataset(dataset):
    *_, size = EXPECTED[dataset]
    assert data.study_b_transform(dataset).size == size
    native = 28 if size is None else size if dataset != "cifar10" else 32
    assert data.input_size("mobilenetv2", native, None) == 224
    assert data.input_size("mlp", native, None) == native  # sized from the data (quirk 26)
    assert data.input_size("mlp", native, 224) == 224


def test_imagenette_is_read_at_224_by_224_without_a_crop():
    transform = data._loader_options("imagenette")["transform"]
    image = Image.new("RGB", (320, 240))
    image.paste((255, 0, 0), (0, 0, 20, 240))  # a red band on the left edge, cut by a crop
    x = transform(image)
    assert x.shape == (3, 224, 224) and float(x[0, 112, 0]) == 1.0
    assert data._loader_options("mnist") == {}


def test_digits_keeps_the_recorded_rule():
    spec = data.study_b_transform("digits")
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(data.normalize_study_b(x, "digits"), (x - 0.5) / 0.5)
    assert spec.flip and spec.augments and spec.size is None
    rgb = torch.rand(2, 3, 4, 4)
    assert torch.equal(data.normalize_study_b(rgb, "digits"), data.normalize_study_b(rgb))


def test_the_experiment_uses_the_dataset_pipeline():
    exp = StudyBExperiment(StudyBConfig(model="MLP", dataset="MNIST"))
    x = torch.rand(8, 1, 6, 6)
    assert torch.allclose(exp.preprocess(x), (x - 0.1307) / 0.3081)
    assert torch.equal(exp.augment(x, torch.Generator().manual_seed(0)), x)  # no flip
    digits = StudyBExperiment(StudyBConfig(model="MLP", dataset="digits"))
    flipped = digits.augment(torch.arange(64.0).view(16, 1, 2, 2), torch.Generator())
    assert not torch.equal(flipped, torch.arange(64.0).view(16, 1, 2, 2))


@pytest.mark.parametrize("reference", [False, True])
def test_validation_gets_the_test_transform_unless_the_reference_is_asked(reference):
    config = StudyBConfig(model="MLP", dataset="digits", val_train_transforms=reference)
    x, y = torch.randn(200, 1, 4, 4), torch.arange(200) % 10
    _, _, x_val, y_val = StudyBExperiment(config).split(x, y, x[:1], y[:1], seed=3)
    _, _, plain, _ = data.validation_split(x, y, 0.9, seed=3)
    assert len(x_val) == 20 and torch.equal(x_val, plain) is not reference
    assert all(
        torch.equal(a, b) or torch.equal(a, b.flip(-1)) for a, b in zip(x_val, plain, strict=True)
    )


@pytest.mark.parametrize(
    "argv, expected",
    [
        ("--mnist", "mnist"),
        ("--indoor --dogs --cifar10 --fashion-mnist --mnist", "mnist"),
        ("--indoor --dogs --cifar10 --fashion-mnist", "fashion_mnist"),
        ("--indoor --cifar10 --dogs", "cifar10"),
        ("--indoor --dogs", "stanford_dogs"),
        ("--indoor", "mit_indoor"),
        ("--model MLP", "imagenette"),
        ("--dataset MNIST --mnist", "mnist"),
        ("--cifar10 --dataset cifar-10", "cifar10"),
    ],
)
def test_dataset_switches_and_their_precedence(argv, expected):
    config = resolve(shlex.split(argv))
    assert config.study == "B" and config.dataset == expected
    assert type(config.dataset) is str


def test_study_a_dataset_names():
    for name, expected in (("cifar", "cifar10"), ("CIFAR-10", "cifar10"), ("fashion_mnist",
                           "fashion_mnist"), ("mnist", "mnist")):  # fmt: skip
        config = resolve(["--dataset", name])
        assert config.study == "A" and config.dataset == expected


@pytest.mark.parametrize(
    "change, needles",
    [
        ("--dataset cifar10 --mnist", ("--dataset cifar10", "--mnist")),
        ("--dogs --dataset digits", ("--dataset digits", "--dogs")),
        ("--set val_train_transforms=maybe", ("val_train_transforms",)),
        ("--val-train-transforms=yes", ("--val-train-transforms",)),
        ("--mnist=1", ("--mnist",)),
        ("--study A --val-train-transforms", ("--val-train-transforms", "study B")),
    ],
)
def test_bad_dataset_switches(tmp_path, change, needles):
    argv = shlex.split(f"{B} {change} --out-dir {tmp_path / 'run'}")
    assert_bad_input(main, argv, tmp_path, *needles)


def test_default_imagenette_without_files_names_the_files_download_and_digits(tmp_path):
    (tmp_path / "data").mkdir()
    argv = shlex.split(f"{B} --data-dir {tmp_path / 'data'} --out-dir {tmp_path / 'run'}")
    line = assert_bad_input(main, argv, tmp_path, "imagenette", "imagenette2-320", "--download")
    assert "'digits'" in line


def test_a_study_b_run_on_a_generated_indoor_layout(tmp_path):
    from bnn_shared.cli import run_cli
    from bnn_shared.testing import metric_rows

    images = tmp_path / "data" / "mit_indoor" / "Images"
    for r, room in enumerate(("bakery", "kitchen", "office")):
        for i in range(3):
            (images / room).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (30 + i, 20), (80 * r, 40 * i, 9)).save(images / room / f"{i}.jpg")
    (images.parent / "TestImages.txt").write_text("bakery/0.jpg\nkitchen/0.jpg\noffice/0.jpg\n")
    argv = shlex.split(
        f"--indoor --model MLP --image-size 8 --bs 2 --test-set --epochs 1 --seed 0 --device cpu "
        f"--quiet --data-dir {tmp_path / 'data'} --out-dir {tmp_path / 'run'}"
    )
    assert run_cli(main, argv) == 0
    rows = metric_rows(tmp_path / "run" / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1] and 0.0 <= rows[0]["test/accuracy"] <= 1.0
    assert "dataset: mit_indoor" in (tmp_path / "run" / "config.yaml").read_text()
