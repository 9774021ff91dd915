"""Helpers for the test suites of the core and of every package."""

from __future__ import annotations

import pytest

__all__ = ["CPU_AND_CUDA", "relative_difference", "skip_cuda_without_gpu"]

#: Device parameters: ``cpu`` always, ``cuda`` marked ``cuda`` so that it skips without a GPU
#: (every package's conftest turns the ``cuda`` marker into a skip when CUDA is absent).
CPU_AND_CUDA = ("cpu", pytest.param("cuda", marks=pytest.mark.cuda))


def skip_cuda_without_gpu(items) -> None:
    """Mark every test carrying the ``cuda`` marker as skipped when no CUDA GPU is present.

    Each package's ``tests/conftest.py`` calls it from ``pytest_collection_modifyitems``.
    """
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


def relative_difference(a, b) -> float:
    """``|a - b| / |b|`` in the Frobenius norm (``|b|`` floored at 1e-30), as a float."""
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
