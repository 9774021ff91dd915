"""``hatch run demo`` end to end: offline, prints the table, writes the CSV."""

from __future__ import annotations

import csv

import pytest
from bnn_shared.demo import discover


@pytest.mark.slow
def test_demo_script_trains_offline_and_writes_the_table(run_python, tmp_path):
    out = tmp_path / "demo.csv"
    proc = run_python("scripts/demo.py", "--only", "bnn_shared", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "binary MLP" in proc.stdout and "digits" in proc.stdout
    rows = list(csv.DictReader(out.open()))
    assert [r["package"] for r in rows] == ["bnn-shared"]
    row = rows[0]
    assert row["metric"] == "test_acc" and float(row["value"]) > 0.8
    assert row["weight_bits"] == "1/32"  # binary weights, float batch-norm parameters
    assert float(row["size_kib"]) < float(row["float32_kib"]) / 10


def test_every_installed_package_registers_a_demo():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    names = set(discover())
    assert "bnn_shared" in names
    for package in (root / "packages").iterdir():
        if (package / "pyproject.toml").exists():
            assert package.name in names, f"{package.name} has no bnn_shared.demos entry point"


def test_unknown_demo_is_a_clear_error(run_python):
    proc = run_python("scripts/demo.py", "--only", "nope")
    assert proc.returncode == 2
    assert "unknown demo" in proc.stderr and "Traceback" not in proc.stderr
