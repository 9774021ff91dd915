"""Helpers for the test suites of the core and of every package."""

from __future__ import annotations

import pytest

__all__ = ["CPU_AND_CUDA"]

#: Device parameters: ``cpu`` always, ``cuda`` marked ``cuda`` so that it skips without a GPU
#: (every package's conftest turns the ``cuda`` marker into a skip when CUDA is absent).
CPU_AND_CUDA = ("cpu", pytest.param("cuda", marks=pytest.mark.cuda))
