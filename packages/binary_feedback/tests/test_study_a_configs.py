"""Study A's configs and sweeps (configs/binary_feedback/, study_a/): generated from the
tables of study_a/study_a_configs.py, each one parses with ``--config``, every grid point of
every sweep parses, and the paper's settings are stated in every run config."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest
import yaml
from binary_feedback.config import StudyAConfig
from binary_feedback.train import parse

ROOT = Path(__file__).resolve().parents[3]
STUDY_A = ROOT / "configs/binary_feedback/study_a"


def _generator():
    spec = importlib.util.spec_from_file_location("study_a_configs", STUDY_A / "study_a_configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
RUN_CONFIGS = GEN.run_configs()


def test_the_files_on_disk_are_the_generated_ones():
    assert len(RUN_CONFIGS) == 12 + 6 + 6  # repeats, their binary copies, the BN winners
    for path, (_, keys) in RUN_CONFIGS.items():
        assert yaml.safe_load(path.read_text()) == keys, path.name
    for name in GEN.SWEEPS:
        assert yaml.safe_load((STUDY_A / name).read_text()) == GEN.sweep_file(name), name


@pytest.mark.parametrize("path", sorted(RUN_CONFIGS), ids=lambda p: p.name)
def test_every_run_config_parses_with_the_paper_settings(path, tmp_path):
    config, _ = parse(["--config", str(path), "--out-dir", str(tmp_path)])
    assert isinstance(config, StudyAConfig)
    assert config.hidden == [700, 500, 300, 200] and config.batch_size == 128
    assert config.epochs == 100 and config.weight_clipping == 1.0 and config.seed in (1, 2)


def test_repeats_are_the_scripts_twelve_configs_times_ten_seeds():
    runs = GEN.repeat_commands("CIFAR10", bn=True)
    assert len(runs) == 120
    assert {argv[argv.index("--seed") + 1] for argv in runs} == {str(s) for s in range(2, 12)}
    config, _ = parse(runs[-1])
    assert (config.dataset, config.bn, config.seed) == ("cifar10", True, 11)
    assert (config.method, config.binarize, config.hidden_act, config.lr) == (
        "GD", True, "tanh", 1e-5,
    )  # fmt: skip


@pytest.mark.parametrize(
    "name, count", [("sweeps.yaml", 8), ("sweeps_no_bn.yaml", 72), ("sweeps_bn.yaml", 72),
                    ("sweeps_cifar.yaml", 72)],
)  # fmt: skip
def test_every_grid_point_of_every_sweep_parses(name, count):
    runs = GEN.expand_sweep(STUDY_A / name)
    assert len(runs) == count
    configs = [parse(argv)[0] for argv in runs]
    points = {(c.method, c.init, c.lr, c.binarize, c.hidden_act.lower()) for c in configs}
    assert len(points) == count
    if name != "sweeps.yaml":
        assert all(c.seed == 1 and c.weight_clipping == 1.0 and c.epochs == 100 for c in configs)
        assert all(c.bn == (name != "sweeps_no_bn.yaml") for c in configs)
        assert {c.dataset for c in configs} == {"cifar10" if "cifar" in name else "mnist"}
        assert all(c.run_name == "auto" and c.verbose == 1 for c in configs)


def test_the_printed_commands_parse(capsys):
    assert GEN.main(["sweep", str(STUDY_A / "sweeps_bn.yaml"), "--out-root", "x"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 72 and lines[0].startswith("python -m binary_feedback.train ")
    config, settings = parse(shlex.split(lines[5])[3:])
    assert config.bn and str(settings.out_dir) == "x/sweeps_bn/005"
