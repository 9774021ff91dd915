"""Stanford Dogs and MIT Indoor-67 read from a few generated JPEGs in the official layouts
(tiny .mat lists written with scipy); nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from bnn_shared.data import dataset_info, load_dataset, load_tensors
from bnn_shared.errors import DatasetNotFoundError
from PIL import Image

BREEDS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog"]
ROOMS = ["bakery", "airport_inside", "kitchen"]


def _jpeg(path: Path, shade: int, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (shade, 255 - shade, 7)).save(path, "JPEG")


def _cell(strings: list[str]) -> np.ndarray:
    """A MATLAB cell column of strings, as the official lists hold them."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = np.array([text])
    return cell


def _dogs(root: Path) -> dict[str, list[tuple[str, int]]]:
    from scipy.io import savemat

    folder = root / "stanford_dogs"
    lists = {
        "train": [(f"{BREEDS[0]}/{BREEDS[0][:9]}_1", 1), (f"{BREEDS[2]}/{BREEDS[2][:9]}_7", 3)],
        "test": [(f"{BREEDS[1]}/{BREEDS[1][:9]}_2", 2)],
    }
    for split, entries in lists.items():
        for i, (entry, _) in enumerate(entries):
            _jpeg(folder / "Images" / f"{entry}.jpg", 40 * i + 10)
        names = [entry for entry, _ in entries]
        labels = np.array([[label] for _, label in entries], dtype=np.uint8)
        files = _cell([f"{name}.jpg" for name in names])
        savemat(
            folder / f"{split}_list.mat",
            {"annotation_list": _cell(names), "file_list": files, "labels": labels},
        )
    return lists


def _indoor(root: Path) -> list[str]:
    folder = root / "mit_indoor"
    every = [f"{room}/img_{i}.jpg" for room in ROOMS for i in range(3)]
    for i, entry in enumerate(every):
        _jpeg(folder / "Images" / entry, 20 * i, size=(33 + i, 21))
    test = [f"{room}/img_1.jpg" for room in ROOMS]
    (folder / "TestImages.txt").write_text("\n".join(test) + "\n")
    return every


def test_stanford_dogs_reads_the_official_lists(tmp_path):
    lists = _dogs(tmp_path)
    train = load_dataset("dogs", "train", data_dir=tmp_path)
    assert train.name == "stanford_dogs" and train.num_classes == 120
    assert len(train) == 2 and train.targets.tolist() == [0, 2]  # labels 1..120 -> 0..119
    assert [p.parent.name for p, _ in train.samples] == [BREEDS[0], BREEDS[2]]
    assert train.classes == sorted(BREEDS)
    x, y = train[1]
    assert x.shape == (3, 224, 224) and y == 2
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    test = load_dataset("stanford_dogs", "test", data_dir=tmp_path)
    assert len(test) == len(lists["test"]) and test.targets.tolist() == [1]


def test_stanford_dogs_stacks_to_tensors_with_a_smaller_transform(tmp_path):
    from torchvision import transforms

    _dogs(tmp_path)
    small = transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()])
    x, y, _ = load_tensors("dogs", "train", tmp_path, transform=small)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32 and y.tolist() == [0, 2]


def test_mit_indoor_train_is_every_image_not_in_the_test_list_sorted(tmp_path):
    every = _indoor(tmp_path)
    test = load_dataset("indoor", "test", data_dir=tmp_path)
    train = load_dataset("mit_indoor", "train", data_dir=tmp_path)
    assert train.name == "mit_indoor" and train.num_classes == 67
    assert len(test) == 3 and len(train) == len(every) - 3
    entries = [f"{p.parent.name}/{p.name}" for p, _ in train.samples]
    assert entries == sorted(entries) and not set(entries) & {
        f"{p.parent.name}/{p.name}" for p, _ in test.samples
    }
    assert train.classes == sorted(ROOMS)  # labels index the sorted folders
    assert [train.classes[label] for label in train.targets.tolist()] == [
        entry.split("/")[0] for entry in entries
    ]
    x, y = test[0]
    assert x.shape == (3, 224, 224) and test.classes[y] == "bakery"


def test_mit_indoor_order_does_not_depend_on_the_file_creation_order(tmp_path):
    _indoor(tmp_path / "a")
    folder = tmp_path / "b" / "mit_indoor"
    for room in reversed(ROOMS):  # the same files, created in another order
        for i in reversed(range(3)):
            _jpeg(folder / "Images" / room / f"img_{i}.jpg", i)
    (folder / "TestImages.txt").write_text((tmp_path / "a/mit_indoor/TestImages.txt").read_text())
    first = load_dataset("indoor", "train", data_dir=tmp_path / "a")
    second = load_dataset("indoor", "train", data_dir=tmp_path / "b")
    names = [[(p.parent.name, p.name, y) for p, y in d.samples] for d in (first, second)]
    assert names[0] == names[1]


@pytest.mark.parametrize(
    "name, missing",
    [("stanford_dogs", "train_list.mat"), ("mit_indoor", "TestImages.txt")],
)
def test_missing_files_give_the_one_message(tmp_path, name, missing):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset(name, "train", data_dir=tmp_path)
    message = str(caught.value)
    assert missing in message and "--download" in message and "'digits'" in message
    assert "\n" not in message


def test_an_image_named_in_a_list_but_absent_is_the_one_message(tmp_path):
    _indoor(tmp_path)
    (tmp_path / "mit_indoor/Images/kitchen/img_1.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match="kitchen/img_1.jpg"):
        load_dataset("indoor", "test", data_dir=tmp_path)
    _dogs(tmp_path)
    (tmp_path / "stanford_dogs/train_list.mat").write_text("not a mat file")
    with pytest.raises(DatasetNotFoundError, match="train_list.mat"):
        load_dataset("dogs", "train", data_dir=tmp_path)


def test_metadata_needs_no_files():
    for name, classes in (("dogs", 120), ("indoor", 67)):
        info = dataset_info(name)
        assert info.num_classes == classes and info.input_shape == (3, 224, 224)
        assert info.mean == (0.485, 0.456, 0.406)


def test_items_are_stacked_into_one_tensor_with_the_values_of_torch_stack():
    from bnn_shared.data import as_tensors
    from bnn_shared.errors import ShapeError

    items = [(torch.randn(2, 3, dtype=torch.float64), i % 3) for i in range(5)]
    x, y = as_tensors(items)
    expected = torch.stack([item for item, _ in items]).float()
    assert x.dtype == torch.float32 and torch.equal(x, expected) and y.tolist() == [0, 1, 2, 0, 1]
    with pytest.raises(ShapeError, match="item 2"):
        as_tensors([(torch.zeros(3), 0), (torch.zeros(3), 1), (torch.zeros(1), 0)])
