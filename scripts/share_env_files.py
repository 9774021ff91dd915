"""Hard-link this environment's large files to identical ones in its sibling environments.

Hatch gives each of the workspace's environments (six test environments and the demo's) its
own PyTorch, about 5.5 GB with its CUDA libraries, so a full ``hatch test --all`` would hold
some 35 GB of identical bytes. Hatch runs this script before the tests and the demo: every file
of at least ``--min-mib`` under the running environment whose twin (same relative path, same
size, same bytes) exists in another environment of the same project folder is replaced by a
hard link to that twin, so the copies share their disk blocks and the environments together
take one PyTorch's worth. Disk use peaks at two copies, while a new environment is installed.

It is safe because installers never write into an installed file: pip removes and writes new
files, so an upgrade in one environment leaves the others' links intact, and removing an
environment frees nothing its siblings still link. Files are compared byte by byte, never by
name alone, and each replacement is atomic (link to a temporary name, then rename). Where hard
links are impossible (another file system, a platform without them) the script changes nothing
and says so; it never fails the command that runs it.

    python scripts/share_env_files.py              # the running environment (sys.prefix)
    python scripts/share_env_files.py --env PATH   # another one
"""

from __future__ import annotations

import argparse
import filecmp
import os
import stat
import sys
from pathlib import Path


def is_environment(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


def siblings(env: Path) -> list[Path]:
    """The other environments in the folder that holds ``env`` (Hatch's per-project folder)."""
    return sorted(p for p in env.parent.iterdir() if p != env and p.is_dir() and is_environment(p))


def large_files(root: Path, min_size: int):
    """Regular files (not links) under ``root`` of at least ``min_size`` bytes."""
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_size >= min_size:
                yield path, st


def link_over(path: Path, twin: Path) -> None:
    """Replace ``path`` by a hard link to ``twin`` atomically."""
    tmp = path.with_name(f".{path.name}.share-tmp")
    tmp.unlink(missing_ok=True)
    os.link(twin, tmp)
    os.replace(tmp, path)


def share(env: Path, *, min_size: int = 1 << 20) -> tuple[int, int]:
    """Link ``env``'s large files to identical ones of its siblings.

    Returns (files linked now, bytes those links freed). Files already sharing an inode with
    a sibling count for nothing. Raises OSError where a link cannot be made.
    """
    others = siblings(env)
    linked = freed = 0
    if not others:
        return linked, freed
    for path, st in large_files(env / "lib", min_size):
        rel = path.relative_to(env)
        for other in others:
            twin = other / rel
            try:
                tst = twin.lstat()
            except FileNotFoundError:
                continue
            if tst.st_ino == st.st_ino and tst.st_dev == st.st_dev:
                break  # already one file
            if (
                not stat.S_ISREG(tst.st_mode)
                or tst.st_size != st.st_size
                or tst.st_dev != st.st_dev
                or not filecmp.cmp(path, twin, shallow=False)
            ):
                continue
            link_over(path, twin)
            linked += 1
            freed += st.st_size if st.st_nlink == 1 else 0
            break
    return linked, freed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", type=Path, default=Path(sys.prefix), help="environment folder")
    parser.add_argument("--min-mib", type=float, default=1.0, help="smallest file to share")
    args = parser.parse_args(argv)
    env = args.env.resolve()
    if not is_environment(env):
        print(f"share_env_files: {env} is not a virtual environment; nothing shared")
        return 0
    try:
        linked, freed = share(env, min_size=int(args.min_mib * (1 << 20)))
    except OSError as err:
        print(f"share_env_files: hard links are not possible here ({err}); nothing more shared")
        return 0
    if linked:
        print(
            f"share_env_files: {linked} files of {env.name} now shared with its siblings, "
            f"{freed / (1 << 30):.2f} GiB freed"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
