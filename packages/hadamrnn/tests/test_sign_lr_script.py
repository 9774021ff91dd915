"""``scripts/hadamrnn_copy_sign_lr.py`` trains tiny copy tasks and writes its CSV (in tmp)."""

from __future__ import annotations

import csv

import pytest


def test_sweep_writes_one_row_per_pair_and_epoch(tmp_path, load_script):
    script = load_script("hadamrnn_copy_sign_lr")
    out = tmp_path / "sweep.csv"
    argv = ["--seq-length", "30", "--epochs", "2", "--batches", "2"]
    argv += ["--pairs", "1e-3:null", "1e-3:0", "--runs-dir", str(tmp_path / "runs")]
    assert script.main(argv + ["--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["lr"], r["sign_lr"], r["epoch"], r["steps"]) for r in rows] == [
        ("0.001", "null", "1", "2"),
        ("0.001", "null", "2", "4"),
        ("0.001", "0", "1", "2"),
        ("0.001", "0", "2", "4"),
    ]
    fixed = rows[2:]
    assert all(r["flips"] == "0" for r in fixed)  # SIGN_LR=0 keeps every sign
    assert [bool(r["median_abs_s_end"]) for r in rows] == [False, True, False, True]
    assert float(rows[0]["naive_baseline"]) == pytest.approx(10 * 2.0794415 / 30, rel=1e-5)


def test_bad_pair_is_a_usage_error(tmp_path, capsys, load_script):
    script = load_script("hadamrnn_copy_sign_lr")
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--pairs", "fast", "--out", str(tmp_path / "x.csv")])
    assert exit_info.value.code == 2
    assert "expected LR:SIGN_LR" in capsys.readouterr().err
