"""The workspace's structure: every package is tested, declares the core, imports no sibling."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())
ROOT_CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())


def import_name(package_dir: Path) -> str:
    return package_dir.name.replace("-", "_")


def test_layout():
    for name in ("packages", "shared", "configs", "experiments_results", "scripts", "tests"):
        assert (ROOT / name).is_dir(), name
    assert (ROOT / "shared" / "src" / "bnn_shared" / "__init__.py").exists()


def test_every_member_has_a_test_environment():
    envs = ROOT_CONFIG["tool"]["hatch"]["envs"]
    matrix = envs["hatch-test"]["matrix"]
    pkgs = {p for entry in matrix for p in entry.get("pkg", [])}
    assert {"shared", "e2e"} <= pkgs
    assert {p.name for p in PACKAGES} <= pkgs


def test_every_member_is_in_the_demo_and_e2e_environments():
    envs = ROOT_CONFIG["tool"]["hatch"]["envs"]
    default_members = envs["default"]["workspace"]["members"]
    overrides = envs["hatch-test"]["overrides"]["matrix"]["pkg"]["workspace"]["members"]

    def members_of(pkg: str) -> list[str]:
        return [e["value"] for e in overrides if "if" not in e or pkg in e["if"]]

    for members in (default_members, members_of("e2e")):
        assert "shared" in members
        for package in PACKAGES:
            assert f"packages/{package.name}" in members or "packages/*" in members
    for package in PACKAGES:
        assert members_of(package.name) == ["shared", f"packages/{package.name}"]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_declares_the_core_and_imports_no_sibling(package):
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    if "dependencies" in project.get("dynamic", []):  # named by the package's build hook
        assert '"bnn-shared' in (package / "hatch_build.py").read_text()
    else:
        assert any(dep.startswith("bnn-shared") for dep in project["dependencies"])
    siblings = {import_name(p) for p in PACKAGES} - {import_name(package)}
    for source in (package / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in siblings, f"{source} imports {name}"


def test_core_imports_no_package():
    packages = {import_name(p) for p in PACKAGES}
    for source in (ROOT / "shared" / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert node.module.split(".")[0] not in packages, source
