"""``scripts/binary_feedback_order.py``: the study's config of every model x method x binary
part exists, and runs of several invocations merge into one CSV (the training is faked)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location(
    "binary_feedback_order", ROOT / "scripts" / "binary_feedback_order.py"
)
order = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(order)


@pytest.mark.parametrize("binary", sorted(order.BINARY))
def test_every_config_exists(binary):
    for model in order.MODELS:
        for method in order.METHODS:
            path = order.config_file(model, method, binary)
            assert path.is_file(), path
            act, weights = order.BINARY[binary]
            assert f"binary-act={act}_binary-weights={weights}" in path.name


def fake_training(accuracies):
    """A stand-in for ``python -m binary_feedback.train`` writing metrics.csv."""

    def run(command, check):
        assert command[1:3] == ["-m", "binary_feedback.train"] and check
        out = Path(command[command.index("--out-dir") + 1])
        out.mkdir(parents=True, exist_ok=True)
        lines = ["epoch,train/accuracy,test/accuracy"]
        lines += [f"{i + 1},{a / 2},{a}" for i, a in enumerate(accuracies)]
        (out / "metrics.csv").write_text("\n".join(lines) + "\n")

    return run


def test_invocations_merge_into_one_table(tmp_path, monkeypatch):
    out = tmp_path / "results.csv"
    common = ["--epochs", "2", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    monkeypatch.setattr(order.subprocess, "run", fake_training([0.2, 0.5]))
    assert order.main(["--models", "vgg19", "--methods", "dfa", "bp", *common]) == 0
    monkeypatch.setattr(order.subprocess, "run", fake_training([0.4, 0.3]))
    assert order.main(["--models", "MobileNetV2", "--methods", "bp", *common]) == 0
    monkeypatch.setattr(order.subprocess, "run", fake_training([0.6]))
    assert order.main(["--models", "vgg19", "--methods", "dfa", *common]) == 0  # replaces
    rows = list(csv.DictReader(out.open()))
    assert [(r["model"], r["method"]) for r in rows] == [
        ("MobileNetV2", "bp"),
        ("vgg19", "bp"),
        ("vgg19", "dfa"),
    ]
    assert [r["best_test_accuracy"] for r in rows] == ["40.0", "50.0", "60.0"]
    assert [r["last_test_accuracy"] for r in rows] == ["30.0", "50.0", "60.0"]
    assert rows[2]["best_train_accuracy"] == "30.0" and rows[2]["epochs"] == "1"
    assert rows[1]["study_imagenette_accuracy"] == "21.2"  # VGG-19 fully binary BP


def test_bad_choice_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        order.main(["--binary", "half", "--out", str(tmp_path / "x.csv")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "x.csv").exists()
