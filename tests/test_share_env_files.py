"""scripts/share_env_files.py links identical large files across environments, nothing else."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "share_env_files", ROOT / "scripts" / "share_env_files.py"
)
share_env_files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(share_env_files)

MIB = 1 << 20


def make_env(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    (folder / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for rel, data in files.items():
        path = folder / "lib" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def inode(path: Path) -> int:
    return path.stat().st_ino


def test_links_identical_large_files_only(tmp_path):
    big = os.urandom(2 * MIB)
    other = bytearray(big)
    other[-1] ^= 1
    a = make_env(tmp_path / "a", {"torch/lib.so": big, "torch/diff.so": big, "small.py": b"x"})
    b = make_env(
        tmp_path / "b",
        {"torch/lib.so": big, "torch/diff.so": bytes(other), "small.py": b"x", "only_b.so": big},
    )
    (tmp_path / "not_an_env").mkdir()

    linked, freed = share_env_files.share(b, min_size=MIB)

    assert (linked, freed) == (1, 2 * MIB)
    assert inode(b / "lib/torch/lib.so") == inode(a / "lib/torch/lib.so")
    assert inode(b / "lib/torch/diff.so") != inode(a / "lib/torch/diff.so")
    assert (b / "lib/torch/diff.so").read_bytes() == bytes(other)
    assert inode(b / "lib/small.py") != inode(a / "lib/small.py")
    assert (b / "lib/torch/lib.so").read_bytes() == big
    assert not list(b.rglob("*.share-tmp"))
    # A second run finds nothing more to do; the other direction finds the link made.
    assert share_env_files.share(b, min_size=MIB) == (0, 0)
    assert share_env_files.share(a, min_size=MIB) == (0, 0)


def test_removing_a_sibling_keeps_the_linked_copy(tmp_path):
    big = os.urandom(MIB)
    a = make_env(tmp_path / "a", {"lib.so": big})
    b = make_env(tmp_path / "b", {"lib.so": big})
    share_env_files.share(b, min_size=MIB)
    (a / "lib/lib.so").unlink()
    assert (b / "lib/lib.so").read_bytes() == big


def test_cli_outside_an_environment_changes_nothing(tmp_path, capsys):
    assert share_env_files.main(["--env", str(tmp_path)]) == 0
    assert "not a virtual environment" in capsys.readouterr().out
