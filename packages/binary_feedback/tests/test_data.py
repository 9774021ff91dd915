"""The studies' data: scaling, study B's normalisation, split, resizing and augmentation."""

from __future__ import annotations

import pytest
import torch
from binary_feedback import data


def test_study_a_scales_pixels_to_plus_minus_one():
    x = torch.tensor([0.0, 0.25, 1.0]).view(1, 1, 1, 3)
    assert data.scale_study_a(x).flatten().tolist() == [-1.0, -0.5, 1.0]


def test_study_b_normalises_rgb_with_imagenet_statistics_and_grey_with_halves():
    rgb = torch.rand(2, 3, 4, 4)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    assert torch.equal(data.normalize_study_b(rgb), (rgb - mean) / std)
    grey = torch.rand(2, 1, 4, 4)
    assert torch.equal(data.normalize_study_b(grey), (grey - 0.5) / 0.5)


def test_validation_split_is_a_seeded_partition():
    x, y = torch.arange(20.0).view(20, 1), torch.arange(20)
    x_train, y_train, x_val, y_val = data.validation_split(x, y, 0.9, seed=3)
    assert (len(y_train), len(y_val)) == (18, 2)
    assert sorted([*y_train.tolist(), *y_val.tolist()]) == list(range(20))
    assert torch.equal(x_train.flatten().long(), y_train)
    again = data.validation_split(x, y, 0.9, seed=3)
    assert torch.equal(again[3], y_val)


@pytest.mark.parametrize(
    "model, native, size, expected",
    [("mobilenetv2", 8, None, 224), ("smallcnn", 8, None, 8), ("vgg16", 8, 32, 32)],
)
def test_input_size(model, native, size, expected):
    assert data.input_size(model, native, size) == expected


def test_resize_only_changes_other_sizes():
    x = torch.rand(2, 1, 8, 8)
    assert data.resize(x, (8, 8)) is x
    assert data.resize(x, (16, 16)).shape == (2, 1, 16, 16)


def test_study_b_augmentation_keeps_shapes_and_follows_the_generator():
    x = torch.randn(4, 3, 32, 32)
    a = data.augment(x, torch.Generator().manual_seed(0), full=True)
    b = data.augment(x, torch.Generator().manual_seed(0), full=True)
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)
    flipped = data.augment(x, torch.Generator().manual_seed(0), full=False)
    for original, out in zip(x, flipped, strict=True):  # only flips without --augment
        assert torch.equal(out, original) or torch.equal(out, original.flip(-1))


def test_splits_are_images_in_the_unit_interval():
    x_train, y_train, x_test, y_test = data.load_splits("digits")
    assert x_train.dim() == 4 and x_train.shape[1:] == (1, 8, 8)
    assert float(x_train.min()) >= 0.0 and float(x_train.max()) <= 1.0
    assert len(x_test) == len(y_test) and y_train.dtype == torch.int64
