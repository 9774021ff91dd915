"""Test configuration: CUDA-marked tests skip cleanly without a GPU."""

from __future__ import annotations

from bnn_shared.testing import skip_cuda_without_gpu


def pytest_collection_modifyitems(config, items):
    skip_cuda_without_gpu(items)
