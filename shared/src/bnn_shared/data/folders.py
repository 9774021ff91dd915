"""Image datasets read from their official folder layouts: Stanford Dogs and MIT Indoor-67.

Both are lazy, like torchvision's ImageFolder (and the core's Imagenette): a split is a list
of ``(file, label)`` pairs, and an item is decoded with PIL (RGB) when it is read and passed
through ``transform``, by default ``Resize((224, 224))`` and ``ToTensor`` (the test-time
transform of the study that uses them), giving 3x224x224 floats in [0, 1]. Stacking a whole
split in memory (:func:`~bnn_shared.data.load_tensors`) takes 0.6 MB an image in float32
(Dogs' 12,000 training images: 7.2 GB); pass a smaller ``transform`` to take less.

Files, under :func:`~bnn_shared.data.data_root`:

* ``stanford_dogs/``: ``Images/<wnid-breed>/<name>.jpg``, ``train_list.mat`` and
  ``test_list.mat`` (official lists: ``annotation_list`` holds ``"<wnid-breed>/<name>"``,
  ``labels`` 1..120, shifted to 0..119). ``Annotation/`` (bounding boxes) is not read.
  12,000 train and 8,580 test images.
* ``mit_indoor/``: ``Images/<category>/<file>`` and ``TestImages.txt`` (lines
  ``"<category>/<file>"``). Classes are the sorted folder names; train is every image under
  ``Images/`` that the test list does not name, in sorted order (the official
  ``TrainImages.txt`` is not read, as in the study). 14,280 train and 1,340 test images.

Nothing is fetched unless ``download=True``: then the official archives are downloaded and
unpacked (Dogs: ``images.tar``, ``annotation.tar``, ``lists.tar``; Indoor:
``indoorCVPR_09.tar``, ``TrainImages.txt``, ``TestImages.txt``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .registry import missing_dataset_error, register_dataset

__all__ = ["DOGS_URLS", "INDOOR_URLS", "ImageFiles", "dogs_samples", "indoor_samples"]

#: The side both datasets are resized to by default (``Resize((224, 224))``).
SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOGS_FOLDER = "stanford_dogs"
INDOOR_FOLDER = "mit_indoor"
_DOGS_SITE = "http://vision.stanford.edu/aditya86/ImageNetDogs/"
#: The archives ``download=True`` fetches and unpacks into ``<root>/stanford_dogs``.
DOGS_URLS = tuple(_DOGS_SITE + name for name in ("images.tar", "annotation.tar", "lists.tar"))
#: Indoor-67's image archive and its two lists (only TestImages.txt is read).
INDOOR_URLS = (
    "http://groups.csail.mit.edu/vision/LabelMe/NewImages/indoorCVPR_09.tar",
    "http://web.mit.edu/torralba/www/TrainImages.txt",
    "http://web.mit.edu/torralba/www/TestImages.txt",
)
_LIST_FILES = {"train": "train_list.mat", "test": "test_list.mat"}


def _default_transform() -> Callable:
    from torchvision import transforms

    return transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.ToTensor()])


class ImageFiles(Dataset):
    """Images decoded from files on access: item ``i`` is ``(transform(image), label)``.

    Args:
        samples: ``(path, label)`` pairs, in the split's order.
        classes: the class names, index = label.
        transform: applied to the RGB PIL image; default ``Resize((224, 224))``, ``ToTensor``.
        target_transform: applied to the label.
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        classes: Sequence[str],
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        self.samples = [(Path(path), int(label)) for path, label in samples]
        self.classes = list(classes)
        self.targets = torch.tensor([label for _, label in self.samples], dtype=torch.long)
        self.transform = transform if transform is not None else _default_transform()
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as image:
            x = self.transform(image.convert("RGB"))
        return x, self.target_transform(label) if self.target_transform else label


def _fetch(name: str, folder: Path, urls: Sequence[str], missing: list[str]) -> None:
    """Download ``urls`` into ``folder``, unpacking archives; any failure is the one message."""
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    try:
        for url in urls:
            if url.endswith(".tar"):
                download_and_extract_archive(url, download_root=str(folder), remove_finished=True)
            else:
                download_url(url, str(folder))
    except Exception as exc:  # network, HTTP and archive errors all mean: no files
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise missing_dataset_error(
            name, folder, missing=missing, reason=f"the download failed: {text[:300]}"
        ) from exc


def _ensure(name: str, folder: Path, needed: Sequence[str], urls, download: bool) -> None:
    missing = [item for item in needed if not (folder / item).exists()]
    if missing and not download:
        raise missing_dataset_error(name, folder, missing=missing)
    if missing:
        _fetch(name, folder, urls, missing)
        still = [item for item in needed if not (folder / item).exists()]
        if still:
            raise missing_dataset_error(
                name, folder, missing=still, reason="the downloaded archives lack them"
            )


def _check_files(name: str, folder: Path, samples: Sequence[tuple[Path, int]], what: str):
    absent = [str(path.relative_to(folder)) for path, _ in samples if not path.is_file()]
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        raise missing_dataset_error(
            name, folder, reason=f"{len(absent)} image(s) named in {what} are absent: {shown}"
        )


def _strings(array) -> list[str]:
    """The strings of a MATLAB cell array as ``scipy.io.loadmat`` returns it."""
    import numpy as np

    out = []
    for item in np.asarray(array, dtype=object).ravel():
        while isinstance(item, np.ndarray):
            item = item.ravel()[0]
        out.append(str(item))
    return out


def dogs_samples(folder: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """Stanford Dogs' ``split`` from ``<folder>/<split>_list.mat``: ``(path, label)`` pairs
    (labels 0..119) and the class names (the sorted folders of ``Images/``)."""
    import numpy as np
    from scipy.io import loadmat

    list_file = folder / _LIST_FILES[split]
    try:
        mat = loadmat(str(list_file))
        entries = _strings(mat["annotation_list"])
        labels = np.asarray(mat["labels"]).ravel().astype(np.int64) - 1
    except Exception as exc:  # unreadable .mat or missing keys
        raise missing_dataset_error(
            "stanford_dogs", folder, reason=f"{list_file.name} is not an official list: {exc}"
        ) from exc
    if len(entries) != len(labels) or (len(labels) and labels.min() < 0):
        raise missing_dataset_error(
            "stanford_dogs", folder, reason=f"{list_file.name}: entries and labels 1..120 disagree"
        )
    samples = [(folder / "Images" / f"{entry}.jpg", int(label)) for entry, label in zip(
        entries, labels.tolist(), strict=True
    )]  # fmt: skip
    classes = sorted(path.name for path in (folder / "Images").iterdir() if path.is_dir())
    return samples, classes


def indoor_samples(folder: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """MIT Indoor-67's ``split``: test = the lines of ``TestImages.txt``, train = every other
    image under ``Images/``, sorted; labels index the sorted category folders."""
    images = folder / "Images"
    classes = sorted(path.name for path in images.iterdir() if path.is_dir())
    index = {name: i for i, name in enumerate(classes)}
    lines = (folder / "TestImages.txt").read_text().splitlines()
    test = [line.strip().replace("\\", "/") for line in lines if line.strip()]
    unknown = sorted({entry.split("/")[0] for entry in test} - set(index))
    if unknown:
        raise missing_dataset_error(
            "mit_indoor", folder, reason=f"TestImages.txt names unknown categories: {unknown[:3]}"
        )
    if split == "test":
        entries = test
    else:
        held_out = set(test)
        every = (f"{c}/{p.name}" for c in classes for p in (images / c).iterdir() if p.is_file())
        entries = sorted(entry for entry in every if entry not in held_out)
    samples = [(images / entry, index[entry.split("/")[0]]) for entry in entries]
    return samples, classes


@register_dataset(
    "stanford_dogs",
    input_shape=(3, SIZE, SIZE),
    num_classes=120,
    extra={"default_transform": "Resize((224, 224))", "folder": DOGS_FOLDER},
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    aliases=("dogs", "stanforddogs"),
)
def stanford_dogs(split, root, download, *, transform=None, target_transform=None):
    """Stanford Dogs (120 breeds), 12,000 train / 8,580 test, from the official lists."""
    folder = Path(root) / DOGS_FOLDER
    _ensure("stanford_dogs", folder, ("Images", *_LIST_FILES.values()), DOGS_URLS, download)
    samples, classes = dogs_samples(folder, split)
    _check_files("stanford_dogs", folder, samples, _LIST_FILES[split])
    return ImageFiles(samples, classes, transform, target_transform)


@register_dataset(
    "mit_indoor",
    input_shape=(3, SIZE, SIZE),
    num_classes=67,
    extra={"default_transform": "Resize((224, 224))", "folder": INDOOR_FOLDER},
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    aliases=("indoor", "indoor67", "mit_indoor67"),
)
def mit_indoor(split, root, download, *, transform=None, target_transform=None):
    """MIT Indoor-67, 14,280 train / 1,340 test (train: all images not in TestImages.txt)."""
    folder = Path(root) / INDOOR_FOLDER
    _ensure("mit_indoor", folder, ("Images", "TestImages.txt"), INDOOR_URLS, download)
    samples, classes = indoor_samples(folder, split)
    _check_files("mit_indoor", folder, samples, "TestImages.txt")
    return ImageFiles(samples, classes, transform, target_transform)
