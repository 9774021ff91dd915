"""Every training rule on every model family of study B, fully binary, in a short digits run
through the command line; and the study's README example command, parsed."""

from __future__ import annotations

import math
import shlex

import pytest
from binary_feedback.train import main, resolve
from bnn_shared.testing import metric_rows

METHODS = ["bp", "dfa", "drtp", "hsic", "sigprop", "ls", "spsa", "spsah", "spsag"]
FAMILIES = {
    "mlp": "--model FullyConnected",
    "smallcnn": "--model SmallCNN",
    "mobilenetv2": "--model MobileNetV2 --image-size 16",
    "vgg": "--model vgg16 --image-size 32",
    "mixer": "--model MLPMixer --image-size 16 --mlp-mixer-layers 2 --mlp-mixer-dim 64",
}
SHORT = (
    "--dataset digits --binary-act --binary-weights --bs 64 --epochs 1 --train-fraction 0.05 "
    "--seed 0 --device cpu --quiet"
)


def test_the_study_readme_example_parses_as_written():
    config = resolve(
        shlex.split(
            "--binary-act --binary-weights --lr=0.001 --method=dfa --model=MobileNetV2 "
            "--wd 1e-5 --augment --epochs 80 --bs 64"
        )
    )
    assert config.study == "B" and config.dataset == "imagenette"
    assert (config.method, config.model, config.lr, config.wd) == ("dfa", "MobileNetV2", 1e-3, 1e-5)
    assert (config.binary_act, config.binary_weights, config.augment) == (True, True, True)
    assert (config.epochs, config.bs) == (80, 64)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_every_model_family(tmp_path, method, family):
    out = tmp_path / "run"
    argv = shlex.split(f"{SHORT} {FAMILIES[family]} --method {method} --out-dir {out}")
    assert main(argv) == 0
    (row,) = metric_rows(out / "metrics.csv")
    assert math.isfinite(float(row["train/loss"])) and math.isfinite(float(row["val/loss"]))
    assert 0.0 <= float(row["val/accuracy"]) <= 1.0
