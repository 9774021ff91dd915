"""Every member builds a wheel that carries what it needs (kernel sources, entry points)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = [ROOT / "shared"] + sorted(
    p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists()
)


def build_wheel(member: Path, out: Path) -> Path:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(member),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # as a user outside the Hatch workspace would: packages then reference ../../shared
        env={k: v for k, v in os.environ.items() if k != "BNN_WORKSPACE"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.mark.slow
@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_wheel_builds_offline(member, tmp_path):
    wheel = build_wheel(member, tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("METADATA") for n in names)
    if member.name == "shared":
        assert "bnn_shared/ext/csrc/bitpack.cpp" in names
        assert "bnn_shared/ext/csrc/cuda/bitpack_cuda.cu" in names
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "bnn_shared.demos" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_dwn_wheel_installs_into_a_fresh_virtualenv_and_trains(tmp_path):
    """Build the core and dwn wheels, install them into a new virtualenv and train a layer.

    The heavy third-party dependencies (torch, numpy, ...) come from this environment through
    a .pth file, so that the test needs no network and no 5 GB reinstall of torch; the two
    project wheels themselves are installed for real and imported from the new environment.
    """
    import site
    import venv

    wheels = tmp_path / "wheels"
    shared_wheel = build_wheel(ROOT / "shared", wheels / "shared")
    dwn_wheel = build_wheel(ROOT / "packages" / "dwn", wheels / "dwn")
    metadata = next(n for n in zipfile.ZipFile(dwn_wheel).namelist() if n.endswith("METADATA"))
    requires = zipfile.ZipFile(dwn_wheel).read(metadata).decode()
    assert f"bnn-shared @ {(ROOT / 'shared').as_uri()}" in requires

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    Path(purelib, "deps.pth").write_text("\n".join(deps) + "\n")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--target",
            purelib,
            str(shared_wheel),
            str(dwn_wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    code = (
        "import torch, dwn, bnn_shared\n"
        f"assert dwn.__file__.startswith({purelib!r}), dwn.__file__\n"
        "torch.manual_seed(0)\n"
        "x = (torch.rand(64, 32) > 0.5).float(); y = torch.randint(0, 4, (64,))\n"
        "model = torch.nn.Sequential(dwn.LUTLayer(32, 40, n=4, backend='torch'),"
        " dwn.GroupSum(4, tau=2.0))\n"
        "opt = torch.optim.Adam(model.parameters(), lr=1e-2)\n"
        "for _ in range(5):\n"
        "    opt.zero_grad(); loss = torch.nn.functional.cross_entropy(model(x), y);"
        " loss.backward(); opt.step()\n"
        "assert model[0].luts.grad is not None\n"
        "print('trained', float(loss))\n"
    )
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "trained" in proc.stdout
