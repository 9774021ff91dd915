"""Bit-aware summary (``bnn_shared.summary``) of both studies' models as their experiments
build them: binarised weights at 1 bit (study A's ``BinaryLinear``, study B's parametrized
Linear/Conv), the full-precision first and last layers, biases and norms at 32 bits, and a
snapshot of study A's paper MLP (``BNN_UPDATE_SNAPSHOTS=1`` rewrites it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from binary_feedback.commons.layers import BinaryLinear, is_binarized
from binary_feedback.config import StudyAConfig, StudyBConfig
from binary_feedback.exporting import build, model_config
from binary_feedback.models import MODELS
from binary_feedback.utils.binary import quantized_weight, weight_precision
from bnn_shared.layers import latent_weight
from bnn_shared.summary import summary
from bnn_shared.testing import single_thread
from torch import nn

SNAPSHOTS = Path(__file__).parent / "snapshots"
#: Study B's models on digits-sized inputs (the large ones resized as in the golden runs).
STUDY_B = {
    "MLP": None,
    "SmallCNN": None,
    "MobileNetV2": 16,
    "vgg16": 32,
    "MLPMixer": 16,
}
PAPER_MLP = {"bn": True, "binarize": True, "hidden_act": "signsat", "init": 1e-3}
PAPER_MLP["hidden"] = [700, 500, 300, 200]  # the paper's; study A's default is 700,500


@pytest.fixture(autouse=True)
def one_thread():
    """Small models run fastest on one thread, and steadily on a busy machine."""
    with single_thread():
        yield


def study_a(dataset: str = "mnist", **options):
    config = model_config(StudyAConfig(dataset=dataset, **options))
    return build("study_a", config), tuple(config["in_shape"])


def study_b(name: str, image_size: int | None, **options):
    config = StudyBConfig(
        model=name, dataset="digits", binary_weights=True, binary_act=True, image_size=image_size
    )
    values = model_config(config)
    if name == "vgg16":  # 134M parameters: shapes only
        with torch.device("meta"):
            return build("study_b", values), tuple(values["in_shape"])
    return build("study_b", values), tuple(values["in_shape"])


def test_snapshot_study_a_paper_mlp():
    """784-700-500-300-200-10, study A's batch norm, binary weights but the output, signsat."""
    model, in_shape = study_a(**PAPER_MLP)
    text = str(summary(model, in_shape, print_fn=None)) + "\n"
    path = SNAPSHOTS / "study_a_mnist_bn_binary_signsat.txt"
    if os.environ.get("BNN_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_study_a_paper_mlp_bits():
    model, in_shape = study_a(**PAPER_MLP)
    result = summary(model, in_shape, print_fn=None)
    binary = 784 * 700 + 700 * 500 + 500 * 300 + 300 * 200
    # output layer; gamma, beta and the running mean and variance of batch norm
    float_params = 200 * 10 + 4 * (700 + 500 + 300 + 200)
    assert result.params == {1: binary, 32: float_params}
    assert result.memory_bytes == binary / 8 + 4 * float_params
    assert result.float32_bytes == 4 * (binary + float_params)


def test_study_a_continuous_mlp_is_float():
    model, in_shape = study_a(dataset="digits", hidden=[16, 8])
    assert summary(model, in_shape, print_fn=None).params == {32: 64 * 16 + 16 * 8 + 8 * 10}


def test_every_study_b_model_is_checked():
    assert {MODELS.canonical(name) for name in STUDY_B} | {"vgg19"} == set(MODELS.names())


@pytest.mark.parametrize("name", sorted(STUDY_B))
def test_study_b_binarised_layers_are_one_bit(name):
    model, in_shape = study_b(name, STUDY_B[name])
    result = summary(model, in_shape, print_fn=None)
    rows = {layer.name: layer for layer in result.layers}
    binarised = {n: m for n, m in model.named_modules() if is_binarized(m)}
    assert binarised, "the study binarises every weight layer but the first and last"
    for layer_name, module in binarised.items():
        bias = 0 if module.bias is None else module.bias.numel()
        expected = {1: latent_weight(module).numel(), **({32: bias} if bias else {})}
        assert rows[layer_name].params == expected, layer_name
    assert result.params[1] == sum(latent_weight(m).numel() for m in binarised.values())
    weights = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    float_weights = [m for m in weights if not is_binarized(m)]
    assert len(float_weights) == 2  # the first and the last weight layer


@pytest.mark.parametrize("name", ["MLP", "SmallCNN", "MLPMixer"])
def test_study_b_quantized_weight_and_precision(name):
    model, _ = study_b(name, STUDY_B[name])
    for module in model.modules():
        if not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            continue
        with torch.no_grad():
            q = quantized_weight(module)
        if is_binarized(module):
            assert weight_precision(module) == 1
            assert torch.equal(q, torch.where(latent_weight(module) > 0, 1.0, -1.0))
        else:
            assert weight_precision(module) == 32 and q is module.weight


def test_study_b_mlp_layers_report_their_parametrization():
    # study B's MLP is made of BinaryLinear layers without a kernel quantizer, binarised by
    # a parametrization: their weight_precision must say 1 bit, not the kernel's 32
    model, _ = study_b("MLP", None)
    layers = [m for m in model.modules() if isinstance(m, BinaryLinear)]
    assert [m.weight_precision for m in layers] == [32, 1, 1, 1, 32]
    assert all(m.kernel_quantizer is None for m in layers)
