"""Study B's model options and VGG autoencoders (spec A.4, A.5): the mixer's parameter
formula, ``--fc-batchnorm`` sized per layer (quirk 2), the autoencoders' shapes, parameter
counts and full-precision layers, and DFA's feedback onto a 4-D target."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from binary_feedback.models import AUTOENCODERS, VGGAutoencoder, build_autoencoder, build_model
from binary_feedback.reconstruction import RECONSTRUCTION
from binary_feedback.training import get_rule
from binary_feedback.utils.binary import binarize_weights, is_binarized
from bnn_shared.errors import ShapeError
from torch import nn


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mixer_formula(depth: int, dim: int, classes: int) -> int:
    """Spec A.5: 769 D + L (D^2 + 5.5 D + 308,308) + 2 D + (D + 1) C (image 224, patch 16)."""
    return int(
        769 * dim + depth * (dim * dim + 5.5 * dim + 308_308) + 2 * dim + (dim + 1) * classes
    )


@pytest.mark.parametrize(("depth", "dim"), [(12, 512), (18, 768), (24, 1024), (1, 2)])
def test_mixer_parameters_follow_the_formula(depth, dim):
    with torch.device("meta"):
        model, _, _ = build_model("MLPMixer", 10, (3, 224, 224), depth=depth, dim=dim)
    assert n_params(model) == mixer_formula(depth, dim, 10)


def test_mixer_default_count():
    assert mixer_formula(12, 512, 10) == 7_279_098


def test_fc_batchnorm_is_sized_per_layer():
    model, _, _ = build_model("FullyConnected", 10, (1, 28, 28), bn=True)
    widths = [m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert widths == [700, 500, 300, 200]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize(
    ("name", "size"), [("vgg11", 32), ("vgg11", 64), ("vgg13", 32), ("vgg16", 32), ("vgg19", 32)]
)
def test_autoencoder_shapes(name, size):
    model = VGGAutoencoder(AUTOENCODERS.get(name), channels=3)
    x = torch.randn(2, 3, size, size)
    bottleneck = model.encoder(x)
    assert bottleneck.shape == (2, 512, size // 32, size // 32)
    out = model(x)
    assert out.shape == x.shape
    assert out.min().item() > 0 and out.max().item() < 1  # the sigmoid gate


@pytest.mark.parametrize(
    ("name", "millions"),
    [("vgg11", 20.89), ("vgg13", 21.26), ("vgg16", 31.89), ("vgg19", 42.51)],
)
def test_autoencoder_parameter_counts(name, millions):
    with torch.device("meta"):
        model = VGGAutoencoder(AUTOENCODERS.get(name))
    assert round(n_params(model) / 1e6, 2) == millions


def test_autoencoder_input_side_must_divide_by_32():
    model = VGGAutoencoder(AUTOENCODERS.get("vgg11"), channels=1)
    with pytest.raises(ShapeError, match="multiples of 32"):
        model(torch.randn(1, 1, 48, 48))


def test_autoencoder_binarisation_keeps_first_and_last_conv_and_transposed_convs():
    model, fp_layers, output = build_autoencoder("vgg11", 3)
    modules = dict(model.named_modules())
    assert fp_layers == ["encoder.0.0", output] and output.startswith("decoder.")
    assert modules[output].out_channels == 3
    binarize_weights(model, keep_fp=fp_layers)
    assert not any(is_binarized(modules[name]) for name in fp_layers)
    transposed = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(transposed) == 5 and not any(is_binarized(m) for m in transposed)
    convs = [m for m in model.modules() if type(m) is nn.Conv2d]
    assert sum(is_binarized(m) for m in convs) == len(convs) - 2


def test_dfa_image_target_injects_a_strided_conv_of_b():
    """Conv1 (not hooked) -> identity -> conv2 (hooked, input 4x4) -> upsample to 8x8: the
    gradient at conv1's output is conv2d(e, B, stride = 8 // 4) and trains conv1."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 2, stride=2), nn.Conv2d(2, 1, 1), nn.Upsample(scale_factor=2)
    )
    rule = get_rule("dfa", regime=RECONSTRUCTION, num_classes=2)
    rule.batch_metrics = lambda output, y: {"loss": 0.0, "correct": 0.0}
    x, target = torch.randn(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
    rule.step(model, x, target, torch.optim.SGD(model.parameters(), lr=0.0))
    error = 2 * (model(x) - target).detach() / target.numel()  # d mean-MSE / d output
    matrix = rule.matrices["1"]
    assert matrix.shape == (2, 1, 2, 2)  # (C_in, C_target, 8 // 4, 8 // 4)
    signal = F.conv2d(error, matrix, stride=2)
    conv1 = model[0]
    (expected,) = torch.autograd.grad(conv1(x), conv1.weight, grad_outputs=signal)
    torch.testing.assert_close(conv1.weight.grad, expected)
