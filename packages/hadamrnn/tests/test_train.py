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


# -- the reference's TRAIN switches -------------------------------------------------------


def test_compute_sv_off_drops_the_singular_values(tmp_path):
    assert _train(tmp_path / "run", 1, "TRAIN.MAX_BATCHES=2", "TRAIN.COMPUTE_SV=false") == 0
    (row,) = _rows(tmp_path / "run" / "metrics.csv")
    assert "sv/min" not in row and "train/loss" in row


def test_get_gradients_logs_the_recurrent_layers_own_parameters(tmp_path):
    assert _train(tmp_path / "run", 1, "TRAIN.MAX_BATCHES=2", "TRAIN.GET_GRADIENTS=true") == 0
    (row,) = _rows(tmp_path / "run" / "metrics.csv")
    assert float(row["gradients/recurrent_1_s"]) > 0
    assert float(row["gradients/recurrent_1_bias"]) > 0
    assert _train(tmp_path / "off", 1, "TRAIN.MAX_BATCHES=2") == 0
    assert not any(
        key.startswith("gradients/") for key in _rows(tmp_path / "off" / "metrics.csv")[0]
    )


def test_display_every_and_display_epoch_print(tmp_path, capsys):
    assert _train(tmp_path / "run", 1, "TRAIN.MAX_BATCHES=5", "TRAIN.DISPLAY_EVERY=2") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("loss")]
    assert [line.split(" batch ")[1] for line in lines] == [
        "0/5 epoch 1",
        "2/5 epoch 1",
        "4/5 epoch 1",
    ]
    assert "only_loss" in lines[0]
    assert _train(tmp_path / "epoch", 1, "TRAIN.MAX_BATCHES=1", "TRAIN.DISPLAY_EPOCH=true") == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("epoch 1: loss ") and "val/loss" in line and "val/accuracy" in line


def test_display_epoch_without_validation_prints_the_training_loss():
    from hadamrnn.training import _epoch_line

    assert _epoch_line(3, {"train/loss": 0.5}) == "epoch 3: loss 0.5  only_loss 0.5"


def test_alternate_gradients_trains_latents_and_the_rest_in_turn():
    from hadamrnn.config import load
    from hadamrnn.getters import get_loss, get_model, get_optimizer
    from hadamrnn.training import set_alternate_phase, train_epoch

    cfg = load(None, ["MODEL.HIDDEN_SIZE=8", "TRAIN.ALTERNATE_GRADIENTS=true", "TRAIN.LR=0.05"])
    torch.manual_seed(0)
    model = get_model(cfg)
    optimizer, loss = get_optimizer(cfg, model), get_loss(cfg)
    data = [(torch.randn(16, 5, 1), torch.randint(0, 10, (16,))) for _ in range(3)]
    names = {name for name, _ in model.named_parameters()}
    for epoch, expected in ((1, names - {"recurrent.s"}), (2, {"recurrent.s"}), (3, None)):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        set_alternate_phase(model, epoch)
        train_epoch(model, data, optimizer, loss, None, torch.device("cpu"), track_flips=False)
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        assert changed == (expected or names - {"recurrent.s"}), epoch


def test_alternate_gradients_needs_binary_latents():
    from bnn_shared.errors import ConfigError
    from hadamrnn.config import load
    from hadamrnn.getters import get_model
    from hadamrnn.training import set_alternate_phase

    model = get_model(load(None, ["MODEL.NAME=ornn", "MODEL.HIDDEN_SIZE=8", "MODEL.NUM_BITS=null"]))
    with pytest.raises(ConfigError, match="ALTERNATE_GRADIENTS"):
        set_alternate_phase(model, 1)


def test_alternate_gradients_survives_resume(tmp_path):
    extra = ("TRAIN.MAX_BATCHES=3", "TRAIN.ALTERNATE_GRADIENTS=true")
    assert _train(tmp_path / "straight", 2, *extra) == 0
    assert _train(tmp_path / "resumed", 1, *extra) == 0
    assert _train(tmp_path / "resumed", 2, *extra, "--resume") == 0
    straight = _rows(tmp_path / "straight" / "metrics.csv")
    assert _rows(tmp_path / "resumed" / "metrics.csv") == straight
    assert straight[0]["train/flips"] == "0"  # epoch 1: the sign latents are frozen
