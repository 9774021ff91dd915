"""Image datasets read through torchvision: MNIST, Fashion-MNIST, CIFAR-10/100 and Imagenette.

Files are expected in torchvision's layout under :func:`~bnn_shared.data.data_root`, e.g.
``<root>/MNIST/raw/train-images-idx3-ubyte`` or ``<root>/cifar-10-batches-py/data_batch_1``.
The files are checked here before torchvision is called, so that torchvision only downloads when
``download=True`` was given; a failed download or an unreadable file raises
:class:`~bnn_shared.errors.DatasetNotFoundError` with one message saying where the files go.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .registry import missing_dataset_error, register_dataset

__all__ = ["MNIST_FILES", "TORCHVISION_LAYOUT", "open_torchvision", "mnist_tensors"]

#: The four raw idx files torchvision's MNIST and FashionMNIST read from ``<root>/<Class>/raw``.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CIFAR100_FILES = ("train", "test", "meta")
IMAGENETTE_FOLDERS = {"full": "imagenette2", "320px": "imagenette2-320", "160px": "imagenette2-160"}


def open_torchvision(
    name: str,
    folder: Path,
    files: Sequence[str],
    download: bool,
    make: Callable[[bool], Dataset],
) -> Dataset:
    """Call ``make(fetch)`` only when ``files`` are all in ``folder`` or ``download`` is allowed.

    Args:
        name: dataset name for the error message.
        folder: where torchvision keeps the files.
        files: names inside ``folder`` that must exist.
        download: whether a download may be tried when files are missing.
        make: builds the torchvision dataset; its argument is torchvision's ``download`` flag,
            True only when files are missing and downloading is allowed.

    Raises:
        DatasetNotFoundError: files missing without ``download``, a failed download (network
            errors included), or torchvision failing to read the files (its ``RuntimeError``
            for missing or corrupted files, or a parse error); the cause is chained.
    """
    missing = [f for f in files if not (folder / f).exists()]
    if missing and not download:
        raise missing_dataset_error(name, folder, missing=missing)
    fetch = bool(missing)
    try:
        dataset = make(fetch)
    except Exception as exc:
        # Network, HTTP and archive errors while fetching, and torchvision's RuntimeError (or
        # a parse error) on broken files, all mean the same to the user: no usable files.
        what = "the download failed" if fetch else "torchvision could not read them"
        raise missing_dataset_error(name, folder, reason=f"{what}: {_short(exc)}") from exc
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if data is not None and targets is not None and len(data) != len(targets):
        reason = (
            f"the files disagree: {len(data)} images but {len(targets)} labels (files of "
            "different splits or a cut download?)"
        )
        raise missing_dataset_error(name, folder, reason=reason)
    return dataset


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_tensor() -> Callable:
    from torchvision import transforms

    return transforms.ToTensor()


#: name -> (torchvision class, folder under the data root, files that must be in that folder)
TORCHVISION_LAYOUT: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mnist": ("MNIST", "MNIST/raw", MNIST_FILES),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", MNIST_FILES),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", CIFAR10_FILES),
    "cifar100": ("CIFAR100", "cifar-100-python", CIFAR100_FILES),
}


def _split_images(
    name: str,
    root: Path,
    split: str,
    download: bool,
    transform: Callable | None = None,
    target_transform: Callable | None = None,
) -> Dataset:
    """The torchvision dataset of :data:`TORCHVISION_LAYOUT` ``name``; default transform
    ToTensor; ``split`` is ``"train"`` or ``"test"``."""
    import torchvision.datasets

    class_name, subfolder, files = TORCHVISION_LAYOUT[name]
    cls = getattr(torchvision.datasets, class_name)

    def make(fetch: bool) -> Dataset:
        return cls(
            str(root),
            train=split == "train",
            transform=transform if transform is not None else _to_tensor(),
            target_transform=target_transform,
            download=fetch,
        )

    return open_torchvision(name, root / subfolder, files, download, make)


def mnist_tensors(
    root: Path, split: str, download: bool = False, *, name: str = "mnist"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MNIST ``split`` (``"train"`` or ``"test"``) as uint8 images ``(N, 28, 28)`` and
    int64 labels ``(N,)``, read from ``<root>/MNIST/raw``; ``name`` is used in errors."""
    import torchvision.datasets

    def make(fetch: bool) -> Dataset:
        return torchvision.datasets.MNIST(str(root), train=split == "train", download=fetch)

    folder = root / "MNIST" / "raw"
    dataset = open_torchvision(name, folder, MNIST_FILES, download, make)
    return dataset.data, dataset.targets.long()


@register_dataset("mnist", input_shape=(1, 28, 28), num_classes=10, mean=(0.1307,), std=(0.3081,))
def mnist(split, root, download, *, transform=None, target_transform=None):
    """MNIST digits, 60,000 train / 10,000 test, 1x28x28 in [0, 1] (default ToTensor)."""
    return _split_images("mnist", root, split, download, transform, target_transform)


@register_dataset(
    "fashion_mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    mean=(0.2860,),
    std=(0.3530,),
    aliases=("fashionmnist", "fmnist"),
)
def fashion_mnist(split, root, download, *, transform=None, target_transform=None):
    """Fashion-MNIST, 60,000 train / 10,000 test, 1x28x28 in [0, 1] (default ToTensor)."""
    return _split_images("fashion_mnist", root, split, download, transform, target_transform)


@register_dataset(
    "cifar10",
    input_shape=(3, 32, 32),
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.247, 0.243, 0.261),
    aliases=("cifar_10", "cifar"),  # "cifar": binary_feedback's study A names it so
)
def cifar10(split, root, download, *, transform=None, target_transform=None):
    """CIFAR-10, 50,000 train / 10,000 test, 3x32x32 in [0, 1] (default ToTensor)."""
    return _split_images("cifar10", root, split, download, transform, target_transform)


@register_dataset(
    "cifar100",
    input_shape=(3, 32, 32),
    num_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    aliases=("cifar_100",),
)
def cifar100(split, root, download, *, transform=None, target_transform=None):
    """CIFAR-100 (fine labels), 50,000 train / 10,000 test, 3x32x32 in [0, 1] (ToTensor)."""
    return _split_images("cifar100", root, split, download, transform, target_transform)


@register_dataset(
    "imagenette",
    input_shape=(3, 224, 224),
    num_classes=10,
    extra={"sizes": tuple(IMAGENETTE_FOLDERS), "default_transform": "Resize(256), CenterCrop(224)"},
    mean=(0.485, 0.456, 0.406),  # ImageNet's
    std=(0.229, 0.224, 0.225),
)
def imagenette(split, root, download, *, size="320px", transform=None, target_transform=None):
    """Imagenette (10 ImageNet classes); ``test`` is its official ``val`` split.

    Files: ``<root>/imagenette2-320/{train,val}`` (``size="320px"``, default), ``imagenette2-160``
    (``"160px"``) or ``imagenette2`` (``"full"``). The default transform is ``Resize(256)``,
    ``CenterCrop(224)``, ``ToTensor`` (3x224x224 in [0, 1]); ``input_shape`` assumes it.
    """
    from torchvision import datasets, transforms

    if size not in IMAGENETTE_FOLDERS:
        raise ConfigError(
            f"imagenette size {size!r}: choose one of {', '.join(IMAGENETTE_FOLDERS)}"
        )
    if transform is None:
        transform = transforms.Compose(
            [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]
        )
    folder = root / IMAGENETTE_FOLDERS[size]
    torchvision_split = "val" if split == "test" else "train"

    def make(fetch: bool) -> Dataset:
        return datasets.Imagenette(
            str(root),
            split=torchvision_split,
            size=size,
            download=fetch,
            transform=transform,
            target_transform=target_transform,
        )

    return open_torchvision("imagenette", folder, (torchvision_split,), download, make)
