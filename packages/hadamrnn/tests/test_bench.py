"""``scripts/bench_hadamrnn.py`` runs on tiny shapes and writes its CSV (to a temp dir)."""

from __future__ import annotations

import csv


def test_bench_writes_both_engines(tmp_path, load_script):
    bench = load_script("bench_hadamrnn")
    out = tmp_path / "bench.csv"
    argv = [
        "--devices",
        "cpu",
        "--tasks",
        "pmnist",
        "copy",
        "--batches",
        "2",
        "--hidden",
        "32",
        "--steps",
        "40",
        "--batch-size",
        "4",
        "--out",
        str(out),
    ]
    assert bench.main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["task"], r["engine"]) for r in rows] == [
        ("pmnist", "sequential"),
        ("pmnist", "parallel"),
        ("copy", "sequential"),
        ("copy", "parallel"),
    ]
    assert all(float(r["samples_per_s"]) > 0 for r in rows)
    assert float(rows[1]["speedup"]) > 0
