"""Every member builds a wheel that carries what it needs (kernel sources, entry points)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = [ROOT / "shared"] + sorted(
    p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists()
)


def build_wheel(member: Path, out: Path) -> Path:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(member),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.mark.slow
@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_wheel_builds_offline(member, tmp_path):
    wheel = build_wheel(member, tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("METADATA") for n in names)
    if member.name == "shared":
        assert "bnn_shared/ext/csrc/bitpack.cpp" in names
        assert "bnn_shared/ext/csrc/cuda/bitpack_cuda.cu" in names
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "bnn_shared.demos" in zipfile.ZipFile(wheel).read(entry_points).decode()
