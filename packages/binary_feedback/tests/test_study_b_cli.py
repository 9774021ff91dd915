"""Study B's remaining flags (spec A.5): defaults as the study's code, bad values (one line,
exit 2, nothing written), --save / --autosave / --tags / --num-workers in a run, the 102
per-run configs (generated = committed, each parses), and --reconstruction."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest
import yaml
from binary_feedback.config import StudyBConfig
from binary_feedback.train import main, parse
from bnn_shared.cli import run_cli
from bnn_shared.export import load_binary
from bnn_shared.testing import assert_bad_input, metric_rows

REPO = Path(__file__).resolve().parents[3]
B = "--dataset digits --model FullyConnected --bs 64 --epochs 1 --seed 0 --device cpu --quiet"


def test_defaults_are_the_study_codes():
    config = StudyBConfig()
    expected = {
        "model": "MobileNetV2", "method": "bp", "opt": "Adam", "lr": 1e-3, "wd": 0.0, "bs": 10,
        "epochs": 80, "train_fraction": 0.9, "early_stopping_delta": 1e-3, "bw_init": "normal",
        "hsic_gamma": 2.0, "hsic_mode": "biased", "pepita_gain": 1.0, "mlp_mixer_layers": 12,
        "mlp_mixer_dim": 512, "num_workers": 4, "save": False, "autosave": False, "tags": [],
        "fc_batchnorm": False, "reconstruction": False, "monitor": False,
    }  # fmt: skip
    assert {key: getattr(config, key) for key in expected} == expected


def test_flags_reach_the_config():
    config, _ = parse(
        shlex.split(
            "--model MLPMixer --mlp-mixer-layers 18 --mlp-mixer-dim 768 --num-workers 0 "
            "--autosave --tags sweepDogs t2 --fc-batchnorm"
        )
    )
    assert (config.mlp_mixer_layers, config.mlp_mixer_dim) == (18, 768)
    assert config.num_workers == 0  # allowed (quirk 25)
    assert config.autosave and config.save  # autosave implies save
    assert config.tags == ["sweepDogs", "t2"] and config.fc_batchnorm
    config, _ = parse(shlex.split("--reconstruction --model vgg13 --method dfa"))
    assert config.reconstruction and config.reconstruction_target == "image"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("--mlp-mixer-dim 0", "mlp_mixer_dim"),
        ("--mlp-mixer-dim 511", "even"),
        ("--mlp-mixer-layers 0", "mlp_mixer_layers"),
        ("--num-workers -1", "num_workers"),
        ("--model vgg11", "--reconstruction"),
        ("--reconstruction", "vgg11, vgg13, vgg16 or vgg19"),
        ("--reconstruction --model vgg11 --method drtp", "bp or dfa"),
        ("--reconstruction --model vgg11 --image-size 48", "multiple of 32"),
        ("--reconstruction-target raw", "reconstruction-target"),
        ("--mlp-mixer-dim x", "mlp-mixer-dim"),
        ("--tags", "--tags"),
    ],
)
def test_bad_values(tmp_path, change, needle):
    argv = shlex.split(f"{B} {change} --out-dir {tmp_path / 'run'}")
    assert_bad_input(main, argv, tmp_path, needle)


def test_save_autosave_tags_num_workers_run(tmp_path):
    argv = shlex.split(f"{B} --autosave --tags a b --num-workers 0 --out-dir {tmp_path}")
    assert run_cli(main, argv) == 0
    stored = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert stored["tags"] == ["a", "b"] and stored["save"] and stored["num_workers"] == 0
    state = load_binary(tmp_path / "model.bnn")
    assert state["output.weight"].shape == (10, 200)


def _generator():
    path = REPO / "scripts" / "make_binary_feedback_configs.py"
    spec = importlib.util.spec_from_file_location("make_binary_feedback_configs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_102_configs_are_the_generated_ones():
    module = _generator()
    wanted = module.texts()
    assert len(wanted) == 102
    committed = sorted(module.OUT.rglob("*.yaml"))
    assert committed == sorted(wanted)
    assert all(path.read_text() == wanted[path] for path in committed)
    counts = {}
    for path in committed:
        counts[path.parent.name] = counts.get(path.parent.name, 0) + 1
    expected = {"bp_dfa_drtp": 36, "HSIC": 3, "HSIC_sigpropTL": 24, "sigpropTL": 3}
    assert counts == {**expected, "Dogs": 18, "Indoor": 18}


def test_every_config_parses_with_its_sweep_arguments():
    module = _generator()
    for path in sorted(module.OUT.rglob("*.yaml")):
        folder = path.parent.name
        extra = module.DOGS_INDOOR_ARGS if folder in ("Dogs", "Indoor") else module.IMAGENETTE_ARGS
        config, _ = parse(["--config", str(path), *shlex.split(extra)])
        keys = yaml.safe_load(path.read_text())
        assert config.lr == keys["lr"] and config.model == keys["model"], path
        assert (config.binary_act, config.binary_weights) == (
            keys["binary-act"],
            keys["binary-weights"],
        )
        want = {"Dogs": "stanford_dogs", "Indoor": "mit_indoor"}.get(folder, "imagenette")
        assert config.dataset == want, path
        if keys["method"] == "hsic":
            assert config.hsic_gamma == 20.0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bp", "dfa"])
def test_reconstruction_run_on_digits(tmp_path, method):
    argv = shlex.split(
        f"--dataset digits --model vgg11 --reconstruction --method {method} --image-size 32 "
        f"--bs 32 --epochs 1 --train-fraction 0.05 --binary-weights --seed 0 --device cpu "
        f"--quiet --out-dir {tmp_path}"
    )
    assert run_cli(main, argv) == 0
    row = metric_rows(tmp_path / "metrics.csv")[0]
    assert 0 < row["train/loss"] < 1 and 0 < row["val/loss"] < 1
    assert row["val/psnr"] > 0
    assert not any("accuracy" in key for key in row)
