"""The core's command-line tools: clear messages and exit code 2, never a traceback."""

from __future__ import annotations

import os
import shutil


def test_missing_dataset_is_one_clear_message(run_python, tmp_path):
    proc = run_python("-m", "bnn_shared.data", "mnist", "--data-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip()
    assert message.startswith("error:")
    for needle in (str(tmp_path), "--download", "digits"):
        assert needle in message


def test_dataset_info_for_bundled_digits(run_python):
    proc = run_python("-m", "bnn_shared.data", "digits")
    assert proc.returncode == 0, proc.stderr
    assert "digits" in proc.stdout and "10 classes" in proc.stdout


def test_import_needs_no_compiler_and_no_gpu(run_python, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(shutil.which("python3") or "/usr/bin/python3", bare / "python3")
    code = (
        "import bnn_shared, bnn_shared.ext as ext, bnn_shared.quantizers, bnn_shared.layers;"
        "print(ext.resolve_backend('auto', 'cpu'))"
    )
    proc = run_python(
        "-c",
        code,
        env={
            "PATH": str(bare),
            "CUDA_VISIBLE_DEVICES": "",
            "BNN_EXT_BUILD_DIR": str(tmp_path / "build"),
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "torch"


def test_ext_status_reports(run_python):
    proc = run_python("-m", "bnn_shared.ext", env={"BNN_SHARED_EXT": "0"})
    assert proc.returncode == 1, proc.stderr  # 1: no compiled kernel is loaded
    assert "cpp: False" in proc.stdout and "disabled by BNN_SHARED_EXT=0" in proc.stdout
