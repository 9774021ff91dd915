"""The README's Python example runs as written; its commands parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from hadamrnn.train import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "runs" / "readme" / "metrics.csv").is_file()


def test_readme_train_commands_parse():
    shell = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S))
    commands = re.findall(r"python -m hadamrnn\.train (.*)", shell.replace("\\\n", " "))
    assert len(commands) >= 2
    for command in commands:
        build_parser().parse_args(shlex.split(command))


def test_readme_names_every_config():
    for config in (Path(__file__).resolve().parents[3] / "configs" / "hadamrnn").glob("*.yaml"):
        assert config.name in README
