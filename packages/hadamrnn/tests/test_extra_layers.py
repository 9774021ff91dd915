"""Activations and activation quantizers (``hadamrnn.extra_layers``): modrelu's equations,
init and gradient, its registration as the model's ``activation`` (every LinearRNN model), and
the stats quantizer's calibration and fixed modes."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.errors import ConfigError
from hadamrnn.config import load
from hadamrnn.extra_layers import ACTIVATIONS, ModReLU, StatsQuantizer, modrelu
from hadamrnn.getters import get_model
from torch import nn


def test_modrelu_equations():
    layer = ModReLU(3)
    with torch.no_grad():
        layer.b.copy_(torch.tensor([-0.5, 0.0, 0.25]))
    x = torch.tensor([[1.0, -2.0, 0.0], [-0.3, 0.0, -1.0], [0.4, 1e-7, 0.1]])
    expected = torch.sign(x) * torch.clamp(x.abs() + 1e-6 + layer.b, min=0)
    assert torch.equal(layer(x), expected)
    assert layer(x)[0, 2] == 0 and layer(x)[1, 1] == 0  # sgn(0) = 0
    assert layer(torch.tensor([[-0.3, 0.0, 0.0]]))[0, 0] == 0  # |x| + b <= 0: dead
    assert torch.allclose(layer(x)[0], torch.tensor([0.5 + 1e-6, -2 - 1e-6, 0.0]))


def test_modrelu_init_and_gradient():
    torch.manual_seed(0)
    layer = modrelu(1000)
    assert isinstance(layer, ModReLU) and layer.b.shape == (1000,)
    assert layer.b.abs().max() <= 0.01 and layer.b.std() > 0.004  # U(-0.01, 0.01)
    x = torch.tensor([2.0, -3.0, 0.0], requires_grad=True)
    small = ModReLU(3)
    small(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 1.0, 0.0]))
    assert torch.equal(small.b.grad, torch.tensor([1.0, -1.0, 0.0]))


def test_activation_registry():
    assert isinstance(ACTIVATIONS.get("relu")(4), nn.ReLU)
    assert ACTIVATIONS.get("ModReLU")(4).b.shape == (4,)
    with pytest.raises(ConfigError, match="unknown activation"):
        ACTIVATIONS.get("gelu")


@pytest.mark.parametrize("name", ["hadamrnn", "ornn", "qornn", "qrnn", "qssm", "spectralqssm"])
def test_modrelu_is_the_models_activation_submodule(name):
    cfg = load(None, [f"MODEL.NAME={name}", "MODEL.HIDDEN_SIZE=8", "MODEL.ACTIVATION=modrelu"])
    model = get_model(cfg)
    assert isinstance(model.activation, ModReLU) and "activation.b" in model.state_dict()
    assert any(p is model.activation.b for p in model.parameters())
    model(torch.randn(2, 5, 1)).sum().backward()
    assert model.activation.b.grad.abs().sum() > 0  # it trains


def test_relu_default_keeps_the_paper_model():
    model = get_model(load(None, ["MODEL.HIDDEN_SIZE=8"]))
    assert model.activation is None and "activation.b" not in model.state_dict()
    x = torch.randn(2, 5, 1)
    h = model.hidden_states(x, all_states=False)
    assert torch.equal(model(x), model.output_layer(torch.relu(h)))
    with pytest.raises(ConfigError, match="lstm"):
        get_model(load(None, ["MODEL.NAME=lstm", "MODEL.ACTIVATION=modrelu"]))


def test_modrelu_readout_of_the_paper_model():
    torch.manual_seed(1)
    model = get_model(load(None, ["MODEL.HIDDEN_SIZE=8", "MODEL.ACTIVATION=$layers.modrelu"]))
    x = torch.randn(2, 5, 1)
    h = model.hidden_states(x, all_states=False)
    assert torch.equal(model(x), model.output_layer(model.activation(h)))
    assert not torch.equal(model(x), model.output_layer(torch.relu(h)))


def test_stats_quantizer_calibration_mode():
    q = StatsQuantizer(4)
    assert q.calibrating and float(q.stat_max_absolute) == pytest.approx(1e-10)
    v = torch.tensor([-1.0, 0.3, 0.51, 2.0])
    alpha, c = 2.0, 8
    expected = torch.clamp(torch.round(v * c / alpha), -c, c - 1) * alpha / c
    assert torch.equal(q(v), expected)
    assert q(v)[-1] == 7 * alpha / 8  # the largest value is clipped to (c - 1) / c alpha
    q(torch.tensor([0.5, -1.0]))
    assert float(q.stat_max_absolute) == 2.0  # the running maximum
    assert torch.equal(q(torch.zeros(3)), torch.zeros(3))


def test_stats_quantizer_pre_scaling_is_not_divided_back_and_ste():
    q = StatsQuantizer(8, pre_scaling=0.5)
    v = torch.tensor([4.0, -2.0, 1.0], requires_grad=True)
    out = q(v)
    assert out.abs().max() <= 2.0 and float(q.stat_max_absolute) == 2.0
    out.sum().backward()
    assert torch.equal(v.grad, torch.full((3,), 0.5))  # identity STE through pre-scaling


def test_stats_quantizer_fixed_mode():
    q = StatsQuantizer(3)
    q(torch.tensor([0.25, -4.0]))
    q.fix()  # the calibrated maximum
    assert not q.calibrating and float(q.max_absolute) == 4.0
    fixed = StatsQuantizer(3, max_absolute=1.0)
    assert torch.equal(fixed(torch.tensor([5.0, -5.0, 0.5])), torch.tensor([0.75, -1.0, 0.5]))
    assert float(fixed.stat_max_absolute) == pytest.approx(1e-10)  # no calibration any more
    state = fixed.state_dict()
    assert set(state) == {"max_absolute", "stat_max_absolute"}
    with pytest.raises(ConfigError, match="> 0"):
        StatsQuantizer(3).fix(0.0)
    with pytest.raises(ConfigError, match="activation bits"):
        StatsQuantizer(1)
