"""Tests of bnn_shared.tracking: atomic files, RNG states, metrics.csv, Run and resuming."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from bnn_shared.errors import BnnError, CheckpointError, MissingDependencyError
from bnn_shared.tracking import (
    MetricsLog,
    Run,
    atomic_save,
    atomic_write_text,
    capture_rng_state,
    config_differences,
    restore_rng_state,
)
from torch import nn

RESUME_SCRIPT = Path(__file__).with_name("resume_script.py")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fail(*args, **kwargs):
    raise OSError("simulated crash")


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def _tiny_setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return model, optimizer, scheduler


def _train_step(model, optimizer, scheduler):
    loss = model(torch.randn(4, 3)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


class TestAtomicFiles:
    def test_write_text_replaces_content(self, tmp_path):
        path = tmp_path / "sub" / "a.txt"
        atomic_write_text(path, "one")
        atomic_write_text(path, "two")
        assert path.read_text() == "two"
        assert _leftovers(path.parent) == []

    @pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
    def test_new_file_mode_follows_umask(self, tmp_path):
        umask = os.umask(0o022)
        try:
            atomic_write_text(tmp_path / "a.txt", "x")
        finally:
            os.umask(umask)
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644

    def test_failed_replace_keeps_old_text(self, tmp_path, monkeypatch):
        path = tmp_path / "a.txt"
        atomic_write_text(path, "old")
        monkeypatch.setattr(os, "replace", _fail)
        with pytest.raises(OSError, match="simulated"):
            atomic_write_text(path, "new")
        assert path.read_text() == "old"
        assert _leftovers(tmp_path) == []

    def test_save_round_trip(self, tmp_path):
        atomic_save({"w": torch.arange(3)}, tmp_path / "x.pt")
        assert torch.equal(torch.load(tmp_path / "x.pt")["w"], torch.arange(3))

    def test_crash_while_saving_keeps_old_checkpoint(self, tmp_path, monkeypatch):
        path = tmp_path / "x.pt"
        atomic_save({"v": 1}, path)

        def half_save(obj, handle):
            handle.write(b"PK\x03\x04 half a zip")
            raise RuntimeError("killed mid-write")

        monkeypatch.setattr(torch, "save", half_save)
        with pytest.raises(RuntimeError, match="mid-write"):
            atomic_save({"v": 2}, path)
        assert torch.load(path) == {"v": 1}
        assert _leftovers(tmp_path) == []


class TestRngState:
    def _draw(self):
        return (random.random(), float(np.random.rand()), torch.rand(1).item())

    def test_restore_replays_every_generator(self):
        state = capture_rng_state()
        first = self._draw()
        restore_rng_state(state)
        assert self._draw() == first

    def test_state_survives_weights_only_load(self, tmp_path):
        state = capture_rng_state()
        first = self._draw()
        atomic_save(state, tmp_path / "rng.pt")
        restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
        assert self._draw() == first

    @pytest.mark.cuda
    def test_cuda_generators(self):
        torch.zeros(1, device="cuda")  # CUDA states are captured once CUDA is in use
        state = capture_rng_state()
        assert len(state["cuda"]) == torch.cuda.device_count()
        first = torch.rand(3, device="cuda")
        restore_rng_state(state)
        assert torch.equal(torch.rand(3, device="cuda"), first)


class TestMetricsLog:
    def test_columns_union_in_first_seen_order_epoch_first(self, tmp_path):
        log = MetricsLog(tmp_path / "m.csv")
        log.append({"loss": 1.0, "epoch": 0})
        log.append({"epoch": 1, "acc": 0.5, "loss": 0.5})
        assert log.columns == ["epoch", "loss", "acc"]
        lines = (tmp_path / "m.csv").read_text().splitlines()
        assert lines == ["epoch,loss,acc", "0,1.0,", "1,0.5,0.5"]

    def test_load_gives_exact_values(self, tmp_path):
        log = MetricsLog(tmp_path / "m.csv")
        values = [0.1 + 0.2, 1 / 3, 1e-12, float("inf"), 7.0]
        for epoch, value in enumerate(values):
            log.append({"epoch": epoch, "v": value, "ok": epoch % 2 == 0, "tag": "a,b"})
        log.append({"epoch": 5, "t": torch.tensor(2.5), "n": np.float32(0.25)})
        loaded = MetricsLog.load(tmp_path / "m.csv")
        assert loaded.rows == log.rows
        assert [row["v"] for row in loaded.rows[:5]] == values
        assert loaded.rows[5] == {"epoch": 5, "t": 2.5, "n": 0.25}

    def test_truncate_drops_rows_after_epoch(self, tmp_path):
        log = MetricsLog(tmp_path / "m.csv")
        for epoch in range(4):
            log.append({"epoch": epoch, "loss": float(epoch)})
        log.truncate(after_epoch=1)
        assert [row["epoch"] for row in MetricsLog.load(log.path).rows] == [0, 1]

    def test_failed_write_keeps_previous_file(self, tmp_path, monkeypatch):
        log = MetricsLog(tmp_path / "m.csv")
        log.append({"epoch": 0, "loss": 1.0})
        before = log.path.read_text()
        monkeypatch.setattr(os, "replace", _fail)
        with pytest.raises(OSError):
            log.append({"epoch": 1, "loss": 0.5})
        assert log.path.read_text() == before
        assert _leftovers(tmp_path) == []


class TestRunFiles:
    def test_writes_config_metrics_checkpoint(self, tmp_path):
        model, optimizer, scheduler = _tiny_setup()

        @dataclasses.dataclass
        class Cfg:
            lr: float = 0.1
            sizes: tuple[int, int] = (3, 2)
            out_dir: Path = tmp_path
            mean: np.ndarray = dataclasses.field(default_factory=lambda: np.array([0.5, 0.25]))

        with Run(tmp_path / "run", Cfg(), quiet=True) as run:
            assert run.restore(model, optimizer, scheduler) == 0
            run.log(0, loss=torch.tensor(1.5))
            run.log(0, acc=0.5)  # same epoch: same row
            run.save_checkpoint(0, model, optimizer, scheduler, best=0.5)
        files = sorted(p.name for p in (tmp_path / "run").iterdir())
        assert files == ["checkpoint.pt", "config.yaml", "metrics.csv"]
        assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()) == {
            "lr": 0.1,
            "sizes": [3, 2],
            "out_dir": str(tmp_path),
            "mean": [0.5, 0.25],
        }
        assert (tmp_path / "run" / "metrics.csv").read_text() == "epoch,loss,acc\n0,1.5,0.5\n"
        checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
        assert checkpoint["epoch"] == 0 and checkpoint["extra"] == {"best": 0.5}

    def test_fresh_run_moves_previous_run_aside(self, tmp_path):
        model, _, _ = _tiny_setup()
        with Run(tmp_path, {"a": 1}, quiet=True) as run:
            run.log(0, loss=1.0)
            run.save_checkpoint(0, model)
        Run(tmp_path, {"a": 2}, quiet=True).finish()
        (previous,) = tmp_path.glob("previous-*")
        assert sorted(p.name for p in previous.iterdir()) == [
            "checkpoint.pt",
            "config.yaml",
            "metrics.csv",
        ]
        assert not (tmp_path / "metrics.csv").exists()

    def test_failed_checkpoint_write_keeps_old_checkpoint(self, tmp_path, monkeypatch):
        model, optimizer, scheduler = _tiny_setup()
        run = Run(tmp_path, {}, quiet=True)
        run.save_checkpoint(0, model, optimizer, scheduler)
        before = (tmp_path / "checkpoint.pt").read_bytes()
        monkeypatch.setattr(os, "replace", _fail)
        with pytest.raises(OSError):
            run.save_checkpoint(1, model, optimizer, scheduler)
        assert (tmp_path / "checkpoint.pt").read_bytes() == before
        assert _leftovers(tmp_path) == []


class TestResume:
    def _interrupted_run(self, out_dir, config, epochs_done=2, extra_rows=1):
        model, optimizer, scheduler = _tiny_setup()
        run = Run(out_dir, config, quiet=True)
        for epoch in range(epochs_done):
            run.log(epoch, loss=_train_step(model, optimizer, scheduler))
            run.save_checkpoint(epoch, model, optimizer, scheduler, best=float(epoch))
        for epoch in range(epochs_done, epochs_done + extra_rows):  # logged, never saved
            run.log(epoch, loss=_train_step(model, optimizer, scheduler))
        return model, optimizer, scheduler

    def test_restore_states_rng_extras_and_metrics(self, tmp_path):
        config = {"lr": 0.1, "epochs": 5}
        self._interrupted_run(tmp_path, config)
        checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        model, optimizer, scheduler = _tiny_setup(seed=123)
        run = Run(tmp_path, {**config, "epochs": 9, "resume": True}, resume=True, quiet=True)
        assert run.restore(model, optimizer, scheduler) == 2
        assert run.extra == {"best": 1.0}
        for key, value in model.state_dict().items():
            assert torch.equal(value, checkpoint["model"][key])
        assert scheduler.get_last_lr() == [0.1 * 0.5**2]
        assert [row["epoch"] for row in MetricsLog.load(tmp_path / "metrics.csv").rows] == [0, 1]
        assert torch.equal(torch.get_rng_state(), checkpoint["rng"]["torch"])

    def test_resume_without_checkpoint_is_a_clear_error(self, tmp_path):
        with pytest.raises(CheckpointError) as info:
            Run(tmp_path, {}, resume=True)
        message = str(info.value)
        assert str(tmp_path / "checkpoint.pt") in message
        assert "without --resume" in message

    def test_resume_with_changed_config_names_the_keys(self, tmp_path):
        self._interrupted_run(tmp_path, {"lr": 0.1, "model": {"hidden": 4}, "epochs": 3})
        changed = {"lr": 0.2, "model": {"hidden": 8}, "epochs": 10, "device": "cpu"}
        with pytest.raises(CheckpointError, match=r"lr, model\.hidden \("):
            Run(tmp_path, changed, resume=True)

    def test_ignore_keys_is_a_parameter(self, tmp_path):
        self._interrupted_run(tmp_path, {"lr": 0.1, "epochs": 3})
        with pytest.raises(CheckpointError, match="epochs"):
            Run(tmp_path, {"lr": 0.1, "epochs": 4}, resume=True, ignore_keys=())
        Run(tmp_path, {"lr": 0.3, "epochs": 3}, resume=True, ignore_keys={"lr"}, quiet=True)

    def test_broken_checkpoint_is_a_clear_error(self, tmp_path):
        (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
        with pytest.raises(CheckpointError, match="cannot read the checkpoint"):
            Run(tmp_path, {}, resume=True)

    def test_model_that_does_not_fit(self, tmp_path):
        self._interrupted_run(tmp_path, {})
        run = Run(tmp_path, {}, resume=True, quiet=True)
        with pytest.raises(CheckpointError, match="model does not fit"):
            run.restore(nn.Linear(5, 2))

    def test_optimizer_missing_from_checkpoint(self, tmp_path):
        model, optimizer, _ = _tiny_setup()
        Run(tmp_path, {}, quiet=True).save_checkpoint(0, model)
        run = Run(tmp_path, {}, resume=True, quiet=True)
        with pytest.raises(CheckpointError, match="no optimizer state"):
            run.restore(model, optimizer)

    def test_config_differences_helper(self):
        old = {"a": 1, "b": {"c": 2, "epochs": 3}, "flag": True}
        new = {"a": 1, "b": {"c": 5, "epochs": 4}, "flag": 1, "d": 0}
        assert config_differences(old, new, ignore={"epochs"}) == {
            "b.c": (2, 5),
            "flag": (True, 1),
            "d": ("<missing>", 0),
        }

    def test_keys_added_later_resume_at_their_default(self, tmp_path):
        defaults = {"a": 0, "new": {"lr": None, "mode": "x"}}
        model, optimizer, _ = _tiny_setup()
        with Run(tmp_path, {"a": 1}, quiet=True) as run:  # written before "new" existed
            run.save_checkpoint(0, model, optimizer)
        same = {"a": 1, "new": {"lr": None, "mode": "x"}}
        assert Run(tmp_path, same, resume=True, quiet=True, defaults=defaults).start_epoch == 0
        changed = {"a": 1, "new": {"lr": 0.1, "mode": "x"}}
        with pytest.raises(CheckpointError, match=r"new.lr: None -> 0.1"):
            Run(tmp_path, changed, resume=True, quiet=True, defaults=defaults)
        with pytest.raises(CheckpointError, match="new.mode"):  # without defaults: missing
            Run(tmp_path, same, resume=True, quiet=True)


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path):
    """SIGKILL right after the checkpoint of epoch 2, resume: the same metrics.csv."""

    def start(out_dir, *flags):
        command = [sys.executable, str(RESUME_SCRIPT), str(out_dir), *flags]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(process):
        out, err = process.communicate(timeout=60)
        return process.returncode, err.decode()

    whole, killed = start(tmp_path / "whole"), start(tmp_path / "killed", "--kill-after", "2")
    code, err = finish(whole)
    assert code == 0, err
    code, err = finish(killed)
    assert code == -signal.SIGKILL, err
    assert len(MetricsLog.load(tmp_path / "killed" / "metrics.csv").rows) == 3

    code, err = finish(start(tmp_path / "killed", "--resume"))
    assert code == 0, err
    expected = (tmp_path / "whole" / "metrics.csv").read_text()
    resumed = (tmp_path / "killed" / "metrics.csv").read_text()
    assert len(expected.splitlines()) == 5
    assert resumed == expected


class TestProgressAndFinish:
    def test_progress_disabled_when_quiet_or_not_a_terminal(self, tmp_path, monkeypatch):
        monkeypatch.setattr(sys, "stderr", _Terminal())
        assert Run(tmp_path / "a", {}, quiet=True).progress(range(3)).disable
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        assert Run(tmp_path / "b", {}).progress(range(3), desc="x").disable
        assert list(Run(tmp_path / "c", {}, quiet=True).progress(range(3))) == [0, 1, 2]

    def test_progress_enabled_on_a_terminal(self, tmp_path, monkeypatch):
        monkeypatch.setattr(sys, "stderr", _Terminal())
        bar = Run(tmp_path, {}).progress(range(3), desc="train", total=3)
        assert not bar.disable
        assert list(bar) == [0, 1, 2]
        assert "train" in sys.stderr.getvalue()

    def test_finish_prints_and_returns_summary(self, tmp_path, capsys):
        run = Run(tmp_path, {})
        for epoch in range(3):
            run.log(epoch, loss=1.0)
        line = run.finish(test_acc=0.97123, steps=12)
        assert line.startswith("done: 3 epochs in ")
        assert line.endswith(f"s | test_acc 0.9712 | steps 12 | {tmp_path}")
        assert capsys.readouterr().out == line + "\n"
        assert run.finish() == line  # idempotent, printed once
        assert capsys.readouterr().out == ""

    def test_finish_writes_the_final_metrics(self, tmp_path):
        run = Run(tmp_path, {}, quiet=True)
        run.log(0, loss=1.0)
        run.finish(test_acc=torch.tensor(0.25), path="a,b")
        with open(tmp_path / "final.csv", newline="") as f:
            assert list(csv.reader(f)) == [["test_acc", "path"], ["0.25", "a,b"]]
        # A later fresh run in the same directory moves it aside with the rest.
        Run(tmp_path, {}, quiet=True).finish()
        (previous,) = tmp_path.glob("previous-*")
        assert (previous / "final.csv").is_file() and not (tmp_path / "final.csv").exists()

    def test_finish_without_metrics_writes_no_final_file(self, tmp_path):
        Run(tmp_path, {}, quiet=True).finish()
        assert not (tmp_path / "final.csv").exists()

    def test_quiet_finish_prints_nothing(self, tmp_path, capsys):
        with Run(tmp_path, {}, quiet=True) as run:
            run.log(0, loss=1.0)
        assert capsys.readouterr().out == ""
        assert run.finish().startswith("done: 1 epoch in")


class TestWandb:
    def test_missing_wandb_names_the_extra(self, tmp_path, monkeypatch):
        monkeypatch.setitem(sys.modules, "wandb", None)
        with pytest.raises(MissingDependencyError, match=r"bnn-shared\[wandb\]") as info:
            Run(tmp_path, {}, use_wandb=True)
        assert isinstance(info.value, BnnError)

    @pytest.mark.slow
    def test_offline_run_lives_in_out_dir(self, tmp_path, monkeypatch):
        pytest.importorskip("wandb")
        monkeypatch.setenv("WANDB_MODE", "offline")
        monkeypatch.setenv("WANDB_SILENT", "true")
        model = nn.Linear(2, 1)
        with Run(tmp_path, {"lr": 0.1}, use_wandb=True, quiet=True) as run:
            run.log(0, loss=1.0)
            run.save_checkpoint(0, model)
            run_id = run.wandb_run.id
            run.finish(test_acc=0.5)
        assert run.wandb_run is None
        assert list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))
        resumed = Run(tmp_path, {"lr": 0.1}, resume=True, use_wandb=True, quiet=True)
        assert resumed.wandb_run.id == run_id
        resumed.finish()


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"epoch,loss\n1,0.5,extra\n", b"epoch,loss\nx,0.5\n"],
)
def test_a_metrics_file_that_is_not_csv_is_one_clear_error(tmp_path, content):
    path = tmp_path / "metrics.csv"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a CSV of metrics"):
        MetricsLog.load(path)


def test_read_checkpoint_wraps_a_bare_state_dict_and_refuses_others(tmp_path):
    from bnn_shared.tracking import read_checkpoint

    state = torch.nn.Linear(2, 1).state_dict()
    torch.save(state, tmp_path / "bare.pt")
    assert read_checkpoint(tmp_path / "bare.pt")["model"].keys() == state.keys()
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds no model state dict"):
        read_checkpoint(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "none.pt")
