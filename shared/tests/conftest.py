"""Test configuration: CUDA-marked tests skip cleanly without a GPU; the compiled-kernel
fixtures of the ext tests (test_ext.py, test_bitops.py)."""

from __future__ import annotations

import pytest
from bnn_shared import ext
from bnn_shared.testing import skip_cuda_without_gpu

#: the ``backend=`` that runs an op's compiled kernel on each device
BACKEND_OF = {"cpu": "cpp", "cuda": "cuda"}


def pytest_collection_modifyitems(config, items):
    skip_cuda_without_gpu(items)


@pytest.fixture(scope="session")
def compiled() -> dict:
    """The compiled library, built once per session; skips only if it cannot build here."""
    if not ext.load():
        pytest.skip(f"compiled bnn_shared kernels unavailable here: {ext.status()['error']}")
    return ext.status()


@pytest.fixture
def device_backend(request, compiled) -> tuple[str, str]:
    """``(device, backend)`` of a test parametrized indirectly over devices."""
    device = request.param
    if device == "cuda" and not compiled["cuda"]:
        pytest.skip(f"CUDA kernels were not built: {compiled['error']}")
    return device, BACKEND_OF[device]
