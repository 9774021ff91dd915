"""bnn_shared.data.splits: compact splits give the datasets' items; batches cover, shuffle with
the given generator, balance classes and stop at a limit."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.data import LabeledTensors, load_dataset
from bnn_shared.data.splits import (
    CopySplit,
    PixelSplit,
    Split,
    TensorSplit,
    as_split,
    batches,
)
from torch.utils.data import Dataset


class TestAsSplit:
    @pytest.mark.parametrize("name", ["sdigits", "pdigits"])
    def test_pixel_split_equals_the_dataset_items(self, name):
        dataset = load_dataset(name, "val")
        split = as_split(dataset)
        assert isinstance(split, PixelSplit) and len(split) == len(dataset)
        x, y = split.batch(torch.arange(len(dataset)))
        assert x.shape == (len(dataset), 64, 1) and x.dtype == torch.float32
        for i in (0, 7, len(dataset) - 1):
            assert torch.equal(dataset[i][0], x[i]) and dataset[i][1] == y[i]

    def test_copy_split_equals_the_dataset_items(self):
        dataset = load_dataset("copy_task", "train", seq_length=30, size=6)
        split = as_split(dataset)
        assert isinstance(split, CopySplit) and len(split) == 6
        x, y = split.batch(torch.arange(6))
        assert x.shape == (6, 30, 10) and y.shape == (6, 30)
        for i in range(6):
            assert torch.equal(dataset[i][0], x[i]) and torch.equal(dataset[i][1], y[i])

    def test_labeled_tensors_keep_their_dtype(self):
        tokens = torch.randint(0, 100, (5, 7))
        split = as_split(LabeledTensors(tokens, torch.arange(5) % 2))
        assert isinstance(split, TensorSplit)
        x, y = split.batch(torch.tensor([1, 3]))
        assert x.dtype == torch.int64 and torch.equal(x, tokens[[1, 3]])
        assert y.tolist() == [1, 1]

    def test_other_datasets_are_stacked(self):
        class Items(Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return torch.full((2, 3), float(i)), i % 2

        split = as_split(Items())
        x, y = split.batch(torch.arange(4))
        assert x.shape == (4, 2, 3) and x[2].eq(2).all() and y.tolist() == [0, 1, 0, 1]

    def test_a_split_is_kept(self):
        split = TensorSplit(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
        assert as_split(split) is split


class _Skewed(Split):
    targets = torch.tensor([0] * 90 + [1] * 10)

    def batch(self, indices):
        return indices, self.targets[indices]


class TestBatches:
    def test_in_order_covers_every_item_once(self):
        order = torch.cat([x for x, _ in batches(_Skewed(), 30)])
        assert order.tolist() == list(range(100))

    def test_shuffle_follows_the_generator(self):
        first = torch.cat(
            [
                x
                for x, _ in batches(
                    _Skewed(), 30, shuffle=True, generator=torch.Generator().manual_seed(3)
                )
            ]
        )
        again = torch.cat(
            [
                x
                for x, _ in batches(
                    _Skewed(), 30, shuffle=True, generator=torch.Generator().manual_seed(3)
                )
            ]
        )
        assert torch.equal(first, again) and sorted(first.tolist()) == list(range(100))
        assert first.tolist() != list(range(100))
        expected = torch.randperm(100, generator=torch.Generator().manual_seed(3))
        assert torch.equal(first, expected)

    def test_limit(self):
        assert len(list(batches(_Skewed(), 10, limit=3))) == 3
        assert len(list(batches(_Skewed(), 10, limit=30))) == 10

    def test_balanced_draws_each_class_alike(self):
        generator = torch.Generator().manual_seed(0)
        drawn = torch.cat(
            [y for _, y in batches(_Skewed(), 100, balanced=True, generator=generator)]
        )
        assert len(drawn) == 100 and 0.3 < drawn.float().mean() < 0.7
