"""bnn_shared.runner: the one loop: epochs from 1, resume to the same metrics, a drawn seed
that resume reuses, NaN detection that keeps the last good checkpoint, device fallback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from bnn_shared.errors import BnnError, ConfigError
from bnn_shared.runner import (
    NonFiniteLossError,
    RunSettings,
    check_out_dir,
    fit,
    resolve_device,
)
from bnn_shared.testing import metric_rows

TOY_SCRIPT = Path(__file__).with_name("runner_toy.py")
_spec = importlib.util.spec_from_file_location("runner_toy", TOY_SCRIPT)
runner_toy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner_toy)
Toy, ToyConfig = runner_toy.Toy, runner_toy.ToyConfig


def _fit(tmp_path, name="run", resume=False, **config):
    settings = RunSettings(out_dir=tmp_path / name, resume=resume, quiet=True, device="cpu")
    return fit(Toy(ToyConfig(**config)), settings)


def test_epochs_count_from_one_and_the_run_files_exist(tmp_path):
    final = _fit(tmp_path)
    rows = metric_rows(tmp_path / "run" / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[-1]["test/accuracy"] == final["test/accuracy"] > 0.5
    assert [row["lr"] for row in rows] == [0.05, 0.025, 0.0125]
    for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "final.csv"):
        assert (tmp_path / "run" / name).is_file()


def test_resume_gives_the_metrics_of_an_uninterrupted_run(tmp_path):
    _fit(tmp_path, "straight")
    _fit(tmp_path, "resumed", epochs=1)
    _fit(tmp_path, "resumed", resume=True)
    assert metric_rows(tmp_path / "straight") == metric_rows(tmp_path / "resumed")


def test_a_drawn_seed_is_stored_and_reused_on_resume(tmp_path):
    _fit(tmp_path, "a", seed=None, epochs=1)
    stored = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["seed"]
    assert isinstance(stored, int)
    _fit(tmp_path, "a", seed=None, resume=True)
    _fit(tmp_path, "b", seed=stored)
    assert metric_rows(tmp_path / "a") == metric_rows(tmp_path / "b")


def test_nan_loss_stops_and_keeps_the_last_good_epoch(tmp_path):
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 0") as info:
        _fit(tmp_path, nan_at_epoch=2)
    assert info.value.exit_code == 2
    run = tmp_path / "run"
    assert [row["epoch"] for row in metric_rows(run / "metrics.csv")] == [1]
    assert torch.load(run / "checkpoint.pt", weights_only=False)["epoch"] == 1
    _fit(tmp_path, resume=True)  # the same settings without the fault: continues from 1
    assert [row["epoch"] for row in metric_rows(run / "metrics.csv")] == [1, 2, 3]


def test_a_numbered_gpu_without_cuda_falls_back_to_the_cpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("0") == torch.device("cpu")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: --device 0 names a GPU")
    with pytest.raises(BnnError, match="no CUDA GPU"):
        resolve_device("cuda")


class TestOutDir:
    def _files(self, root):
        return sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))

    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (lambda root: (root / "f").write_text("x") and root / "f", "is a file"),
            (lambda root: (root / "f").write_text("x") and root / "f" / "run", "which is a file"),
        ],
    )
    def test_bad_out_dir_is_one_error_and_nothing_changes(self, tmp_path, make, message):
        out_dir = make(tmp_path)
        before = self._files(tmp_path)
        settings = RunSettings(out_dir=out_dir, quiet=True, device="cpu")
        with pytest.raises(ConfigError, match=f"--out-dir .*{message}"):
            fit(Toy(ToyConfig()), settings)
        assert self._files(tmp_path) == before

    def test_not_writable(self, tmp_path, monkeypatch):
        monkeypatch.setattr("bnn_shared.context.os.access", lambda path, mode: False)
        with pytest.raises(ConfigError, match="is not writable"):
            check_out_dir(tmp_path / "run")

    def test_resume_needs_the_directory(self, tmp_path):
        with pytest.raises(ConfigError, match="--resume: there is no run directory"):
            check_out_dir(tmp_path / "run", resume=True)
        assert not (tmp_path / "run").exists()


def _torchrun(out_dir, *args, nproc=2):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", str(TOY_SCRIPT), str(out_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
class TestTorchrun:
    def test_two_processes_match_one_with_the_same_global_batch(self, tmp_path):
        single = _torchrun(tmp_path / "one", "--set", "epochs=2", nproc=1)
        double = _torchrun(tmp_path / "two", "--set", "epochs=2")
        assert single.returncode == 0, single.stderr
        assert double.returncode == 0, double.stderr
        one, two = metric_rows(tmp_path / "one"), metric_rows(tmp_path / "two")
        assert len(one) == len(two) == 3
        for a, b in zip(one, two, strict=True):
            for key in a:
                tolerance = 1e-4 if "loss" in key else 3e-3  # accuracy: one digit of 359
                assert abs(a[key] - b[key]) <= tolerance, (key, a[key], b[key])
        assert not (tmp_path / "two" / "previous").exists()

    def test_killed_and_resumed_under_torchrun_ends_like_an_uninterrupted_run(self, tmp_path):
        straight = _torchrun(tmp_path / "straight")
        assert straight.returncode == 0, straight.stderr
        killed = _torchrun(tmp_path / "killed", "--set", "kill_after=1")
        assert killed.returncode != 0
        assert [r["epoch"] for r in metric_rows(tmp_path / "killed" / "metrics.csv")] == [1]
        resumed = _torchrun(tmp_path / "killed", "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert metric_rows(tmp_path / "killed") == metric_rows(tmp_path / "straight")

    def test_closing_frees_the_process_group(self, tmp_path):
        # A group still referenced at exit keeps gloo's worker threads running while the
        # interpreter shuts down, and a process then aborts now and then (SIGABRT).
        script = tmp_path / "close.py"
        script.write_text(
            "import pathlib, sys, torch, torch.distributed as dist\n"
            "from bnn_shared.distributed import init_from_env\n"
            "group = init_from_env(torch.device('cpu'))\n"
            "world = dist.group.WORLD\n"
            "torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)\n"
            "group.close()\n"
            "out = pathlib.Path(sys.argv[1]) / f'rank{group.rank}'\n"
            "out.write_text(str(sys.getrefcount(world) - 1))\n"
        )
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc-per-node=2", str(script), str(tmp_path)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        references = [(tmp_path / f"rank{rank}").read_text() for rank in range(2)]
        assert references == ["1", "1"]  # the script's own name only

    def test_resume_needs_the_same_number_of_processes(self, tmp_path):
        assert _torchrun(tmp_path / "run", "--set", "epochs=1").returncode == 0
        result = _torchrun(tmp_path / "run", "--resume", nproc=1)
        assert result.returncode != 0 and "trained on 2 process(es)" in result.stderr
