"""Test configuration: CUDA-marked tests skip cleanly without a GPU; the README commands
(eqprop_readme_commands.py) are importable by the tests."""

from __future__ import annotations

import sys
from pathlib import Path

from bnn_shared.testing import skip_cuda_without_gpu

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config, items):
    skip_cuda_without_gpu(items)
