"""End-to-end tests of the workspace: CLIs, the README, wheels and the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_python(tmp_path):
    """Run ``python ARGS`` from the repo root offline; returns the CompletedProcess."""

    def run(*args: str, env: dict | None = None, timeout: float = 600, cwd=None):
        full_env = {
            **os.environ,
            "BNN_DATA_DIR": str(tmp_path / "no-data"),
            "WANDB_MODE": "offline",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, *args],
            cwd=cwd or ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
