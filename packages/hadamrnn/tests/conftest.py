"""Test configuration: CUDA-marked tests skip cleanly without a GPU; scripts as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from bnn_shared.testing import skip_cuda_without_gpu

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def pytest_collection_modifyitems(config, items):
    skip_cuda_without_gpu(items)


@pytest.fixture
def load_script():
    """``load_script("name")``: the module ``scripts/name.py``, freshly imported."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
