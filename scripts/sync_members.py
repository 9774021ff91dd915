"""Reinstall the workspace members whose installed metadata no longer matches their pyproject.

Hatch installs the workspace members (``shared/`` and ``packages/<name>/``) editable when it
creates an environment, and afterwards only checks that their dependencies are present. An
editable install picks up changed *source* at once, but its metadata (version, entry points,
the folder it points to) is frozen at install time: an environment created before a package
registered a new entry point (``bnn_shared.models``, ``bnn_shared.demos``,
``bnn_shared.datasets``) does not see it, and one created from another checkout of the
project imports that checkout's code. Hatch runs this script before the tests and the demo;
for each member installed in the running environment it compares

* the folder the editable install points to with the member's folder here,
* the version and the entry points with the member's ``pyproject.toml``,

and reinstalls the member where any differs, the way Hatch installed it (``pip install
--no-deps -e``: the build backend comes from the same package index as the environment's
other packages). Members the environment does not hold are left alone.

    python scripts/sync_members.py          # check and repair the running environment
    python scripts/sync_members.py --check  # only report; exit 1 if a member is stale
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]


def members(root: Path = ROOT) -> list[Path]:
    """The workspace members' folders: the core, then every package."""
    found = [root / "shared", *sorted((root / "packages").glob("*"))]
    return [path for path in found if (path / "pyproject.toml").is_file()]


def declared(folder: Path) -> tuple[str, str, set[tuple[str, str, str]]]:
    """(name, version, entry points as (group, name, value)) from a member's pyproject."""
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    points = {
        (group, name, value)
        for group, table in project.get("entry-points", {}).items()
        for name, value in table.items()
    }
    for group in ("scripts", "gui-scripts"):
        key = "console_scripts" if group == "scripts" else "gui_scripts"
        points |= {(key, name, value) for name, value in project.get(group, {}).items()}
    return project["name"], str(project.get("version", "")), points


def installed_folder(dist: metadata.Distribution) -> Path | None:
    """The folder an editable install points to (None if it is not an editable install)."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    if not info.get("dir_info", {}).get("editable"):
        return None
    url = urlparse(info.get("url", ""))
    return Path(unquote(url.path)) if url.scheme == "file" else None


def stale_reasons(folder: Path, dist: metadata.Distribution) -> list[str]:
    """Why the installed ``dist`` no longer matches the member in ``folder`` (empty if current)."""
    _, version, points = declared(folder)
    reasons = []
    where = installed_folder(dist)
    if where is None:
        reasons.append("not an editable install of this checkout")
    elif where.resolve() != folder.resolve():
        reasons.append(f"installed from {where}")
    if version and dist.version != version:
        reasons.append(f"version {dist.version} installed, {version} declared")
    have = {(ep.group, ep.name, ep.value) for ep in dist.entry_points}
    for group, name, value in sorted(points - have):
        reasons.append(f"entry point {group}:{name} = {value} missing")
    for group, name, value in sorted(have - points):
        reasons.append(f"entry point {group}:{name} = {value} no longer declared")
    return reasons


def find_installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def reinstall(folder: Path) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(folder)]
    # the packages' build hooks then name the core plainly (see the root pyproject.toml)
    env = {**os.environ, "BNN_WORKSPACE": "1"}
    subprocess.run(command, check=True, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report only; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = []
    for folder in members():
        name = declared(folder)[0]
        dist = find_installed(name)
        if dist is None:
            continue
        reasons = stale_reasons(folder, dist)
        if reasons:
            stale.append(folder)
            print(f"sync_members: {name} is stale: {'; '.join(reasons)}")
    if args.check or not stale:
        return 1 if stale else 0
    for folder in stale:
        try:
            reinstall(folder)
        except (OSError, subprocess.CalledProcessError) as err:
            print(f"sync_members: could not reinstall {folder.name} ({err})", file=sys.stderr)
            return 1
        print(f"sync_members: reinstalled {folder.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
