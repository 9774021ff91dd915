"""Study B's binarisation: parametrized binary weights, activation swaps, clipping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from binary_feedback.commons.activations import SignSat, SignUnsat, Tanh
from binary_feedback.models import build_model
from binary_feedback.utils.binary import (
    BINARIZED_ACTIVATIONS,
    binarize_activations,
    binarize_weights,
    binary_layers,
    clip_binary_weights_,
)
from bnn_shared.errors import ConfigError
from bnn_shared.summary import summary
from torch import nn


def toy() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # 0: kept fp
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),  # 2
        nn.GELU(),
        nn.Flatten(),
        nn.Linear(64, 8),  # 5
        nn.Tanh(),
        nn.Linear(8, 3),  # 7: kept fp
    )


def is_pm_one(t: torch.Tensor) -> bool:
    return set(t.unique().tolist()) <= {-1.0, 1.0}


class TestBinarizeWeights:
    def test_fp_layers_stay_float_and_others_are_pm_one(self):
        model = toy()
        fp_before = model[0].weight.detach().clone()
        assert binarize_weights(model, ["0", "7"]) == ["2", "5"]
        assert torch.equal(model[0].weight, fp_before)
        assert model[0].weight.dtype == torch.float32 and not is_pm_one(model[7].weight)
        assert is_pm_one(model[2].weight) and is_pm_one(model[5].weight)
        assert list(binary_layers(model)) == ["2", "5"]

    def test_forward_uses_sign_of_latent_and_float_bias(self):
        model = toy()
        binarize_weights(model, ["0", "7"])
        layer = model[5]
        latent = layer.parametrizations.weight.original
        with torch.no_grad():
            latent[0, 0] = 0.0
        x = torch.randn(2, 64)
        expected = F.linear(x, torch.where(latent > 0, 1.0, -1.0), layer.bias)
        torch.testing.assert_close(layer(x), expected)
        assert layer.weight[0, 0].item() == -1.0

    def test_latent_gradient_window_is_inclusive(self):
        layer = nn.Linear(4, 1, bias=False)
        binarize_weights(layer)
        latent = layer.parametrizations.weight.original
        with torch.no_grad():
            latent.copy_(torch.tensor([[-1.5, -1.0, 0.2, 1.0]]))
        x = torch.ones(1, 4)
        layer(x).sum().backward()
        assert latent.grad.tolist() == [[0.0, 1.0, 1.0, 1.0]]

    def test_optimizer_parameter_is_kept(self):
        layer = nn.Linear(4, 2)
        weight = layer.weight
        binarize_weights(layer)
        assert layer.parametrizations.weight.original is weight

    def test_conv1d_and_twice(self):
        model = nn.Sequential(nn.Conv1d(3, 3, 1), nn.Linear(2, 2))
        assert binarize_weights(model) == ["0", "1"]
        assert binarize_weights(model) == []  # already binarised
        assert is_pm_one(model[0].weight)

    def test_unknown_fp_layer(self):
        with pytest.raises(ConfigError, match="features.0"):
            binarize_weights(toy(), ["features.0"])

    def test_summary_counts_latent_weights_as_bits(self):
        model = toy()
        binarize_weights(model, ["0", "7"])
        stats = summary(model, input_size=(1, 4, 4), print_fn=None)
        assert stats.params[1] == 4 * 4 * 9 + 64 * 8


class TestBinarizeActivations:
    def test_replaces_every_listed_module(self):
        model = toy()
        assert binarize_activations(model) == 3
        assert [type(m) for m in model if isinstance(m, SignSat | SignUnsat)] == [SignSat] * 3
        assert not any(isinstance(m, BINARIZED_ACTIVATIONS) for m in model.modules())
        assert model[1].strict is False  # study B's window |x| <= 1

    def test_unsat_and_strict(self):
        model = toy()
        binarize_activations(model, unsat=True)
        assert isinstance(model[3], SignUnsat)
        model = toy()
        binarize_activations(model, strict=True)
        assert model[3].strict is True

    def test_nested_and_own_tanh(self):
        model = nn.Sequential(nn.Sequential(nn.ReLU6(), nn.Sequential(nn.SiLU())), Tanh())
        assert binarize_activations(model) == 3
        assert isinstance(model[0][1][0], SignSat) and isinstance(model[1], SignSat)

    def test_leaves_other_modules(self):
        model = nn.Sequential(nn.Sigmoid(), nn.Softmax(dim=1), nn.Dropout())
        assert binarize_activations(model) == 0

    def test_outputs_are_binary(self):
        model = toy()
        binarize_activations(model)
        out = model[:5](torch.randn(2, 1, 4, 4))
        assert is_pm_one(out)

    @pytest.mark.parametrize(
        ("name", "count"),
        [("MobileNetV2", 35), ("SmallCNN", 3), ("MLP", 4), ("MLPMixer", 4)],
    )
    def test_counts_per_model(self, name, count):
        # MobileNetV2: stem + first block's depthwise + 2 per later block (16) + last conv
        options = {"dim": 16, "depth": 2, "patch_size": 8} if name == "MLPMixer" else {}
        model = build_model(name, 10, (3, 32, 32), **options).model
        assert binarize_activations(model) == count


class TestClipping:
    def test_only_binarised_latent_weights(self):
        model = toy()
        binarize_weights(model, ["0", "7"])
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(100)
        clip_binary_weights_(model)
        assert model[2].parametrizations.weight.original.abs().max() == 1.0
        assert model[5].parametrizations.weight.original.abs().max() == 1.0
        assert model[0].weight.abs().max() > 1 and model[7].weight.abs().max() > 1
        assert model[5].bias.abs().max() > 1  # biases are never clipped


def test_fully_binary_model_step():
    """Study B's flow on a model of the registry: binarise, one Adam step, clip."""
    built = build_model("SmallCNN", 10, (1, 8, 8), width=4, hidden=8)
    model = built.model
    binarize_weights(model, built.fp_layers)
    binarize_activations(model)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    F.cross_entropy(model(x), y).backward()
    opt.step()
    clip_binary_weights_(model)
    assert list(binary_layers(model)) == ["features.4", "classifier.1"]
    for layer in binary_layers(model).values():
        assert is_pm_one(layer.weight)
        assert layer.parametrizations.weight.original.abs().max() <= 1.0
