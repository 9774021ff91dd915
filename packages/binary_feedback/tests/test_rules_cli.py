"""The command line of study B's extra rules: the flags select study B and reach the rule
and the model, bad values are one-line errors, and a short digits run per new method."""

from __future__ import annotations

import math
import shlex

import pytest
from binary_feedback.commons.activations import BiRealAct
from binary_feedback.experiment import experiment_for
from binary_feedback.train import STUDY_B_FLAGS, main, resolve
from binary_feedback.utils import biprop_layers
from bnn_shared.testing import assert_bad_input, metric_rows

B = "--dataset digits --model MLP --bs 64 --epochs 1 --seed 0 --device cpu --quiet"
NEW_FLAGS = ["--mut-prob", "--ls-accuracy", "--spsa-c", "--spsa-g-pert", "--biprop",
             "--bireal-act", "--slow-drtp"]  # fmt: skip


def test_new_flags_are_study_b_flags():
    assert set(NEW_FLAGS) <= set(STUDY_B_FLAGS)
    for argv in (["--mut-prob", "0.2"], ["--biprop"], ["--bireal-act"], ["--spsa-c", "0.1"]):
        assert resolve(argv).study == "B"


def test_defaults_and_values_reach_the_config():
    config = resolve(["--model", "MLP"])
    assert (config.mut_prob, config.ls_accuracy, config.spsa_c, config.spsa_g_pert) == (
        0.1, False, 1e-3, "drtp",
    )  # fmt: skip
    assert (config.biprop, config.bireal_act, config.slow_drtp) == (None, False, False)
    assert resolve(["--biprop"]).biprop == 0.2
    assert resolve(["--biprop", "0.75"]).biprop == 0.75
    config = resolve(shlex.split("--method spsag --spsa-g-pert hebbian --spsa-c 0.01"))
    assert (config.spsa_g_pert, config.spsa_c) == ("hebbian", 0.01)


@pytest.mark.parametrize(
    ("argv", "rule", "attributes"),
    [
        ("--method ls --mut-prob 0.3 --ls-accuracy", "LocalSearch", {"mut_prob": 0.3,
                                                                      "accuracy": True}),
        ("--method spsa --spsa-c 0.01", "SPSA", {"c": 0.01}),
        ("--method spsah --spsa-c 0.02", "SPSAH", {"c": 0.02}),
        ("--method spsag --spsa-g-pert hebbian --bw-init kaiming_normal", "SPSAG",
         {"pert": "hebbian", "bw_init": "kaiming_normal"}),
        ("--method drtp --slow-drtp --bw-init kaiming_uniform", "DRTP",
         {"slow": True, "bw_init": "kaiming_uniform"}),
    ],
)  # fmt: skip
def test_flags_reach_the_rule(argv, rule, attributes):
    config = resolve(shlex.split(f"{B} {argv}"))
    _, built, _ = experiment_for(config).build((1, 8, 8), 10)
    assert type(built).__name__ == rule
    assert {key: getattr(built, key) for key in attributes} == attributes


def test_biprop_and_bireal_reach_the_model():
    config = resolve(shlex.split(f"{B} --biprop 0.5 --bireal-act"))
    model, _, _ = experiment_for(config).build((1, 8, 8), 10)
    assert len(biprop_layers(model)) == 5
    assert any(isinstance(m, BiRealAct) for m in model.modules())


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("--mut-prob 1.5", "mut_prob"),
        ("--mut-prob=-0.1", "mut_prob"),
        ("--mut-prob x", "--mut-prob"),
        ("--ls-accuracy=yes", "--ls-accuracy"),
        ("--spsa-c 0", "spsa_c"),
        ("--spsa-c abc", "--spsa-c"),
        ("--spsa-g-pert oja", "--spsa-g-pert"),
        ("--biprop 0", "biprop"),
        ("--biprop 1.5", "biprop"),
        ("--biprop half", "--biprop"),
        ("--bireal-act=1", "--bireal-act"),
        ("--slow-drtp", "slow"),
        ("--method dfa --slow-drtp", "slow"),
        ("--slow-drtp=1 --method drtp", "--slow-drtp"),
    ],
)
def test_bad_values(tmp_path, change, needle):
    argv = shlex.split(f"{B} {change} --out-dir {tmp_path / 'run'}")
    assert_bad_input(main, argv, tmp_path, needle)


@pytest.mark.slow
@pytest.mark.parametrize(
    "method",
    [
        "ls",
        "ls --ls-accuracy --mut-prob 0.05",
        "spsa",
        "spsah",
        "spsag",
        "spsag --spsa-g-pert hebbian",
        "drtp --slow-drtp",
        "bp --biprop 0.5 --bireal-act",
        "dfa --biprop --binary-weights",
    ],
)
def test_short_digits_run(tmp_path, method):
    out = tmp_path / "run"
    argv = shlex.split(f"{B} --train-fraction 0.1 --method {method} --out-dir {out}")
    assert main(argv) == 0
    (row,) = metric_rows(out / "metrics.csv")
    assert math.isfinite(float(row["train/loss"]))
    assert 0.0 <= float(row["val/accuracy"]) <= 1.0
