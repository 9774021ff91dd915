"""bnn_shared.utils: the allocator setting of the training CLIs."""

from __future__ import annotations

import ctypes.util
import sys

import bnn_shared.cli
import pytest
from bnn_shared.cli import run_cli
from bnn_shared.utils import keep_freed_memory


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
    reason="glibc's mallopt",
)
def test_keep_freed_memory_sets_glibc_thresholds():
    assert keep_freed_memory() is True
    assert keep_freed_memory(trim_threshold=2**40) is True  # clamped to what glibc accepts


def test_keep_freed_memory_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("BNN_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False


def test_run_cli_sets_the_allocator_before_main(monkeypatch):
    calls = []
    monkeypatch.setattr(bnn_shared.cli, "keep_freed_memory", lambda: calls.append("alloc"))
    assert run_cli(lambda argv: calls.append("main") or 0, []) == 0
    assert calls == ["alloc", "main"]
