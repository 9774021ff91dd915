"""The package README's Python example runs as written; its first command trains."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from eqprop_binary.main import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    assert list(tmp_path.glob("runs/readme/DATA-0-conv-digits/*/S-1/results.csv"))


def test_readme_commands_parse():
    commands = re.findall(r"python -m eqprop_binary\.main (.*?)(?:\n\S|\n\n|#)", README, re.S)
    assert len(commands) >= 2
    for command in commands:
        build_parser().parse_args(shlex.split(command.replace("\\\n", " ")))
