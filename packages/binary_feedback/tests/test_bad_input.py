"""``python -m binary_feedback.train`` with bad input, both studies: exit code 2, one line
naming the flag or key, no traceback, no file created or changed; a loss that turns NaN
stops the run and --resume continues; random invalid configs of each study's schema."""

from __future__ import annotations

import shlex

import pytest
from binary_feedback.config import StudyAConfig, StudyBConfig
from binary_feedback.train import main
from bnn_shared.cli import run_cli
from bnn_shared.testing import (
    assert_bad_input,
    assert_out_dir_refused,
    assert_rejected,
    invalid_configs,
    metric_rows,
)
from hypothesis import given, settings
from hypothesis import strategies as st

A = "--dataset digits --hidden 32,16 -b 32 --epochs 1 --seed 0 --device cpu --quiet"
B = "--dataset digits --model MLP --bs 64 --epochs 1 --seed 0 --device cpu --quiet"


@pytest.mark.parametrize(
    ("command", "change", "needle"),
    [
        (A, "-b 0", "batch_size"),
        (A, "--hidden 32,0", "hidden"),
        (A, "--epochs 0", "epochs"),
        (A, "--lr 0", "lr"),
        (A, "--lr=-1e-3", "lr"),
        (A, "--method SGDD", "SGDD"),
        (A, "--hidden-act relu6", "relu6"),
        (B, "--bs 0", "bs"),
        (B, "--lr 0", "lr"),
        (B, "--epochs -2", "epochs"),
        (B, "--image-size 0", "image_size"),
        (B, "--model ResNet", "ResNet"),
        (B, "--dataset svhn", "svhn"),
        (B, "--hidden 32", "hidden"),
    ],
)
def test_bad_values(tmp_path, command, change, needle):
    argv = shlex.split(f"{command} {change} --out-dir {tmp_path / 'run'}")
    assert_bad_input(main, argv, tmp_path, needle)


def test_out_dir_that_cannot_be_a_run_directory(tmp_path):
    assert_out_dir_refused(main, [*shlex.split(A)], tmp_path)


def test_unknown_key_in_a_config_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: digits\nlearning_rate: 0.1\n")
    argv = ["--config", str(path), "--out-dir", str(tmp_path / "run")]
    assert_bad_input(main, argv, tmp_path, "learning_rate")


def test_nan_loss_stops_and_resume_continues(tmp_path, monkeypatch):
    from binary_feedback.training import RULES

    rule_class = RULES.get("dfa")
    real, calls = rule_class.step, {"n": 0}

    def poisoned(self, *args, **kwargs):  # the 50th training step's loss is NaN (epoch 2)
        calls["n"] += 1
        stats = real(self, *args, **kwargs)
        return {**stats, "loss": float("nan")} if calls["n"] == 50 else stats

    out = tmp_path / "run"
    argv = shlex.split(f"{A} --method DFA --epochs 3 --out-dir {out}")
    monkeypatch.setattr(rule_class, "step", poisoned)
    assert run_cli(main, argv) == 2
    assert [row["epoch"] for row in metric_rows(out / "metrics.csv")] == [1]
    monkeypatch.setattr(rule_class, "step", real)
    assert run_cli(main, [*argv, "--resume"]) == 0
    assert [row["epoch"] for row in metric_rows(out / "metrics.csv")] == [1, 2, 3]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_invalid_configs_are_one_line_errors(data):
    schema = data.draw(st.sampled_from([StudyAConfig, StudyBConfig]))
    # verbose: a boolean is a count (0 or 1; config.yaml files from when -v was a switch)
    config, key = data.draw(invalid_configs(schema, exclude=["hidden", "verbose"]))
    assert_rejected(schema, config, key)


def test_image_and_label_files_that_disagree(tmp_path):
    from bnn_shared.testing import write_mnist_files

    data = write_mnist_files(tmp_path / "data", train=(12, 11), test=(5, 5))
    command = A.replace("digits", "mnist")
    argv = shlex.split(f"{command} --data-dir {data} --out-dir {tmp_path / 'run'}")
    assert_bad_input(main, argv, tmp_path, "12 images but 11 labels")
