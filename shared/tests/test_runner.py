"""bnn_shared.runner: the one loop: epochs from 1, resume to the same metrics, a drawn seed
that resume reuses, NaN detection that keeps the last good checkpoint, device fallback."""

from __future__ import annotations

import pytest
import torch
import yaml
from bnn_shared.config import ConfigModel
from bnn_shared.data import load_tensors
from bnn_shared.errors import BnnError, ConfigError
from bnn_shared.runner import (
    Experiment,
    NonFiniteLossError,
    RunSettings,
    check_out_dir,
    fit,
    resolve_device,
)
from bnn_shared.testing import metric_rows
from pydantic import Field
from torch import nn


class ToyConfig(ConfigModel):
    epochs: int = Field(3, ge=0)
    lr: float = Field(0.05, gt=0)
    batch_size: int = Field(64, ge=1)
    seed: int | None = 0
    nan_at_epoch: int = 0  # make the loss NaN in this epoch (0: never)


class Toy(Experiment):
    """Softmax regression on digits."""

    project = "toy"
    resume_ignored = frozenset({"nan_at_epoch"})

    def setup(self, ctx):
        self.x, self.y, _ = load_tensors("digits", "train")
        self.x_test, self.y_test, _ = load_tensors("digits", "test")
        self.model = nn.Linear(64, 10).to(ctx.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.config.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 1, 0.5)

    def train_epoch(self, epoch, ctx):
        total = 0.0
        for step, idx in enumerate(ctx.batches(len(self.y), self.config.batch_size)):
            loss = nn.functional.cross_entropy(self.model(self.x[idx].flatten(1)), self.y[idx])
            if epoch == self.config.nan_at_epoch:
                loss = loss * float("nan")
            ctx.check_loss(loss, step)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(idx)
        return {"train/loss": total / len(self.y), "lr": self.optimizer.param_groups[0]["lr"]}

    def evaluate(self, epoch, ctx):
        with torch.no_grad():
            out = self.model(self.x_test.flatten(1))
        return {"test/accuracy": (out.argmax(1) == self.y_test).float().mean().item()}


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
    with pytest.warns(UserWarning, match="running on the CPU"):
        assert resolve_device("0") == torch.device("cpu")
    assert capsys.readouterr().err.count("\n") == 1
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
        monkeypatch.setattr("bnn_shared.runner.os.access", lambda path, mode: False)
        with pytest.raises(ConfigError, match="is not writable"):
            check_out_dir(tmp_path / "run")

    def test_resume_needs_the_directory(self, tmp_path):
        with pytest.raises(ConfigError, match="--resume: there is no run directory"):
            check_out_dir(tmp_path / "run", resume=True)
        assert not (tmp_path / "run").exists()
