"""scripts/sync_members.py finds members whose installed metadata no longer matches the tree."""

from __future__ import annotations

import importlib.util
import json
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sync_members", ROOT / "scripts" / "sync_members.py")
sync_members = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_members)


def dist_info(tmp_path: Path, *, url: str, version: str, entry_points: str, editable=True):
    """A distribution as pip writes it for an editable install, read back by importlib."""
    folder = tmp_path / f"dwn-{version}.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(f"Metadata-Version: 2.3\nName: dwn\nVersion: {version}\n")
    (folder / "entry_points.txt").write_text(entry_points)
    (folder / "direct_url.json").write_text(
        json.dumps({"dir_info": {"editable": editable}, "url": url})
    )
    return metadata.PathDistribution(folder)


def declared_entry_points(folder: Path) -> str:
    groups: dict[str, list[str]] = {}
    for group, name, value in sorted(sync_members.declared(folder)[2]):
        groups.setdefault(group, []).append(f"{name} = {value}")
    return "".join(f"[{g}]\n" + "\n".join(lines) + "\n\n" for g, lines in groups.items())


def test_every_member_is_found_and_declares_its_entry_points():
    folders = sync_members.members()
    names = {sync_members.declared(folder)[0] for folder in folders}
    assert {"bnn-shared", "dwn", "eqprop-binary", "binary-feedback", "hadamrnn"} <= {
        name.replace("_", "-") for name in names
    }
    _, _, points = sync_members.declared(ROOT / "packages" / "dwn")
    assert ("bnn_shared.models", "dwn", "dwn.exporting") in points


def test_an_install_matching_the_tree_is_current(tmp_path):
    folder = ROOT / "packages" / "dwn"
    dist = dist_info(
        tmp_path,
        url=folder.as_uri(),
        version=sync_members.declared(folder)[1],
        entry_points=declared_entry_points(folder),
    )
    assert sync_members.stale_reasons(folder, dist) == []


def test_a_missing_entry_point_makes_the_install_stale(tmp_path):
    """An environment created before the package registered bnn_shared.models."""
    folder = ROOT / "packages" / "dwn"
    dist = dist_info(
        tmp_path,
        url=folder.as_uri(),
        version=sync_members.declared(folder)[1],
        entry_points="[bnn_shared.demos]\ndwn = dwn.demo:demo\n",
    )
    reasons = sync_members.stale_reasons(folder, dist)
    assert "entry point bnn_shared.models:dwn = dwn.exporting missing" in reasons


def test_another_checkout_a_removed_entry_point_or_a_plain_install_is_stale(tmp_path):
    folder = ROOT / "packages" / "dwn"
    text = declared_entry_points(folder) + "[bnn_shared.old]\ndwn = dwn.gone\n"
    elsewhere = dist_info(
        tmp_path, url="file:///elsewhere/packages/dwn", version="0.0.1", entry_points=text
    )
    reasons = sync_members.stale_reasons(folder, elsewhere)
    assert "installed from /elsewhere/packages/dwn" in reasons
    assert any(reason.startswith("version 0.0.1 installed") for reason in reasons)
    assert "entry point bnn_shared.old:dwn = dwn.gone no longer declared" in reasons
    plain = tmp_path / "plain"
    plain.mkdir()
    wheel = dist_info(
        plain,
        url=folder.as_uri(),
        version=sync_members.declared(folder)[1],
        entry_points=declared_entry_points(folder),
        editable=False,
    )
    assert sync_members.stale_reasons(folder, wheel) == ["not an editable install of this checkout"]


def test_the_running_environment_is_in_sync():
    """Hatch ran the script before these tests: nothing it holds is stale."""
    assert sync_members.main(["--check"]) == 0
