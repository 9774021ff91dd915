"""``python -m hadamrnn.train``: one tiny epoch on sdigits, --resume, outputs, clean errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bnn_shared.cli import run_cli
from hadamrnn.train import build_parser, main

ROOT = Path(__file__).resolve().parents[3]
SDIGITS = str(ROOT / "configs" / "hadamrnn" / "sdigits.yaml")
SMALL = ["MODEL.HIDDEN_SIZE=16", "TRAIN.BATCH_SIZE=64"]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _train(out: Path, epochs: int, *extra: str) -> int:
    argv = [
        "--config",
        SDIGITS,
        "--out-dir",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        "--set",
        *SMALL,
        f"TRAIN.N_EPOCHS={epochs}",
        *extra,
    ]
    return run_cli(main, argv)


def test_one_epoch_writes_the_run_files(tmp_path):
    assert _train(tmp_path / "run", 1, "--save-network", "--save-name", "tiny") == 0
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "best.pt", "tiny.pth", "tiny.txt"):
        assert (run / name).is_file(), name
    (row,) = _rows(run / "metrics.csv")
    for key in (
        "train/loss",
        "train/accuracy",
        "val/loss",
        "val/accuracy",
        "train/flips",
        "sv/min",
        "sv/max",
        "sv/ratio",
        "lr",
    ):
        assert key in row
    assert row["epoch"] == "1"  # epochs count from 1
    assert abs(float(row["sv/min"]) - 1) < 1e-5 and abs(float(row["sv/max"]) - 1) < 1e-5
    assert "test/accuracy:" in (run / "tiny.txt").read_text()
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] == 1
    assert set(torch.load(run / "tiny.pth", weights_only=True)) >= {"recurrent.s"}


def test_resume_continues_to_the_same_result(tmp_path):
    assert _train(tmp_path / "straight", 2) == 0
    assert _train(tmp_path / "resumed", 1) == 0
    assert _train(tmp_path / "resumed", 2, "--resume") == 0
    straight = _rows(tmp_path / "straight" / "metrics.csv")
    assert len(straight) == 2
    assert _rows(tmp_path / "resumed" / "metrics.csv") == straight


def test_engines_give_the_same_training(tmp_path):
    assert _train(tmp_path / "par", 1) == 0
    assert _train(tmp_path / "seq", 1, "MODEL.ENGINE=sequential") == 0
    par, seq = _rows(tmp_path / "par" / "metrics.csv"), _rows(tmp_path / "seq" / "metrics.csv")
    assert abs(float(par[0]["train/loss"]) - float(seq[0]["train/loss"])) < 1e-4


@pytest.mark.parametrize("allow", [True, False])
def test_allow_tf32_holds_for_the_run_and_is_restored(tmp_path, monkeypatch, allow):
    from hadamrnn import training

    seen, train_epoch = [], training.train_epoch

    def recording(*args, **kwargs):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", recording)
    with training.tf32_matmuls(not allow):  # the opposite setting outside the run
        assert _train(tmp_path / "run", 1, f"TRAIN.ALLOW_TF32={allow}") == 0
        after = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    assert seen == [(allow, allow)]
    assert after == (not allow, not allow)
    assert f"allow_tf32: {str(allow).lower()}" in (tmp_path / "run" / "config.yaml").read_text()


def test_flags_and_aliases():
    args = build_parser().parse_args(
        [
            "--use_wandb",
            "--save_network",
            "--save_name",
            "x",
            "--set",
            "A.B=1",
            "C=2",
            "--data-dir",
            "d",
            "--resume",
        ]
    )
    assert args.wandb and args.save_network and args.save_name == "x" and args.resume
    assert args.overrides == ["A.B=1", "C=2"] and args.data_dir == "d"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--config", SDIGITS, "--set", "MODEL.HIDEN=3"], "hiden"),
        (["--config", SDIGITS, "--set", "TRAIN.LR=fast"], "train.lr"),
        (["--config", "missing.yaml"], "not found"),
        (["--config", SDIGITS, "--resume", "--out-dir", "/nonexistent/run"], "checkpoint"),
    ],
)
def test_mistakes_are_one_line_errors(argv, needle, capsys):
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    "override, needle",
    [("MODEL.NAME=transformer", "unknown model"), ("DATASET.NAME=cifar", "unknown dataset")],
)
def test_setup_errors_leave_no_run_directory(tmp_path, capsys, override, needle):
    assert _train(tmp_path / "run", 1, override) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_module_entry_point_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hadamrnn.train", "--config", SDIGITS, "--set", "MODEL.X=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown key 'x'" in proc.stderr and "sdigits.yaml" in proc.stderr
