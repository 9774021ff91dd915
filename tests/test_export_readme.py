"""The README's three export lines, run on the bundled digits instead of MNIST."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Why are my trained weights floats?", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_the_readme_export_lines_run(run_python, tmp_path):
    train, export, load = export_lines()
    assert train.startswith("python -m binary_feedback.train --config")
    assert export == "python -m bnn_shared.export runs/tanh_dfa --verify"
    run_dir = tmp_path / "runs" / "tanh_dfa"
    train_args = train.split()[1:] + ["--epochs", "1", "--set", "dataset=digits", "--quiet"]
    train_args = [str(run_dir) if a == "runs/tanh_dfa" else a for a in train_args]
    result = run_python(*train_args, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    result = run_python("-m", "bnn_shared.export", str(run_dir), "--verify", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the same class on 359 of 359 test inputs" in result.stdout
    code = load.split('"', 1)[1].rsplit('"', 1)[0].replace("runs/tanh_dfa", str(run_dir))
    result = run_python("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MLP(")
