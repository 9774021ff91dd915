"""The README never lies: its test command is what CI runs, and its examples run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
    commands = [
        line.split("#")[0].strip() for block in code_blocks("bash") for line in block.splitlines()
    ]
    readme_test = [c for c in commands if c.startswith("hatch test")]
    assert readme_test == ["hatch test --all"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_commands = [line.strip() for line in ci if line.strip().startswith("hatch test")]
    assert ci_commands == readme_test


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks("python")
    assert blocks, "the README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_results_table_lists_committed_csvs():
    """Every package with measured results under experiments_results/ has README rows (the
    folder has the import name, e.g. bnn_shared; a row may give the distribution's,
    bnn-shared)."""
    results = ROOT / "experiments_results"
    for package_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        if any(package_dir.glob("*.csv")):
            names = {package_dir.name, package_dir.name.replace("_", "-")}
            rows = [f"| {name} |" for name in names]
            assert any(row in README for row in rows), f"no README result row for {package_dir}"
