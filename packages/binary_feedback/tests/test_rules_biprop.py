"""Study B's Biprop (``--biprop``) and Bi-Real activation (``--bireal-act``): the forward
weight, the score gradient, the fixed tensors' seeds, the model setup, and a loss that falls."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from binary_feedback.commons.activations import BiRealAct, SignSat
from binary_feedback.training import STUDY_B, get_rule
from binary_feedback.utils import apply_biprop, binarize_weights, biprop_layers, bireal_activations
from binary_feedback.utils.biprop import BipropWeight, _draw_fixed, top_share_mask
from bnn_shared.errors import ConfigError
from torch import nn

C = 3


def batch(n: int = 6, features: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, features, generator=g, dtype=torch.float64)
    return x, torch.arange(n) % C


def loss_of(model: nn.Module, x, y) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def _family(name: str):
    from binary_feedback.models import build_model

    shapes = {"MLP": (1, 8, 8), "SmallCNN": (1, 16, 16), "MobileNetV2": (3, 32, 32),
              "MLPMixer": (3, 16, 16)}  # fmt: skip
    options = {"dim": 16, "depth": 1, "patch_size": 4} if name == "MLPMixer" else {}
    torch.manual_seed(0)
    model, _, _ = build_model(name, C, shapes[name], **options)
    return model, shapes[name]


# ---------------------------------------------------------------------------- Biprop


def biprop_linear(keep: float = 0.5) -> nn.Linear:
    torch.manual_seed(4)
    layer = nn.Linear(10, 4).double()
    apply_biprop(layer, keep)
    return layer


def test_biprop_weight_mask_and_scale():
    layer = biprop_linear(0.25)
    scores = layer.parametrizations.weight.original.detach()
    r = layer.parametrizations.weight[0].random_weight
    mask = top_share_mask(scores, 0.25)
    assert int(mask.sum()) == 40 - int(0.75 * 40)
    assert bool(scores.abs()[mask == 1].min() >= scores.abs()[mask == 0].max())
    alpha = (r.abs() * mask).sum() / int(0.25 * 40)
    torch.testing.assert_close(layer.weight, alpha * mask * torch.where(r > 0, 1.0, -1.0).double())
    assert not isinstance(layer.bias, nn.Parameter) and "bias" in dict(layer.named_buffers())
    assert [n for n, _ in layer.named_parameters()] == ["parametrizations.weight.original"]
    bound = 1 / math.sqrt(10)
    assert scores.abs().max() <= bound and layer.bias.abs().max() <= bound
    assert r.abs().max() <= math.sqrt(15 / 10)


def test_biprop_zero_random_weight_gives_zero():
    param = BipropWeight(torch.tensor([[0.0, 2.0, -3.0]]), keep=1.0)
    torch.testing.assert_close(
        param(torch.tensor([[0.1, 0.2, 0.3]])), torch.tensor([[0.0, 5 / 3, -5 / 3]])
    )


def test_biprop_score_gradient():
    layer = biprop_linear(0.5)
    scores = layer.parametrizations.weight.original
    r = layer.parametrizations.weight[0].random_weight
    upstream = torch.randn(4, 10, dtype=torch.float64)
    (layer.weight * upstream).sum().backward()
    torch.testing.assert_close(scores.grad, upstream * r * torch.sign(scores.detach()))


def test_biprop_fixed_tensors_come_from_the_layer_seed_without_touching_the_rng():
    layer = biprop_linear()
    fresh = nn.Linear(10, 4).double()
    r, bias = _draw_fixed(fresh, layer.biprop_seed)
    torch.testing.assert_close(layer.parametrizations.weight[0].random_weight, r)
    torch.testing.assert_close(layer.bias, bias)
    state = torch.get_rng_state()
    layer(torch.randn(2, 10, dtype=torch.float64))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    layer(torch.zeros(2, 10, dtype=torch.float64))
    assert torch.equal(state, torch.get_rng_state())


def test_biprop_every_layer_and_sign_on_top():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2, C))  # fmt: skip
    assert apply_biprop(model, 0.5) == ["0", "4"] and list(biprop_layers(model)) == ["0", "4"]
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert "1.weight" in trained and "1.bias" in trained
    binarize_weights(model, keep_fp=[])
    assert set(model[4].weight.unique().tolist()) <= {-1.0, 1.0}
    assert bireal_activations(model) == 1 and isinstance(model[2], BiRealAct)
    with pytest.raises(ConfigError, match="biprop"):
        apply_biprop(nn.Linear(2, 2), 0.0)


# ---------------------------------------------------------------------------- Bi-Real


def test_bireal_forward_and_pseudo_gradient():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.5], requires_grad=True)
    out = BiRealAct()(x)
    torch.testing.assert_close(out, torch.tensor([-1.0, -1, -1, 0, 1, 1, 1]))
    out.backward(torch.full_like(x, 3.0))
    expected = 3 * 2 * (1 - x.detach().clamp(-1, 1).abs())
    torch.testing.assert_close(x.grad, expected)
    assert BiRealAct.precision == 1


# ---------------------------------------------------------------------------- models and learning


def test_biprop_with_bp_lowers_the_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, C)).double()
    apply_biprop(model, 0.5)
    bireal_activations(model)
    x, y = batch(12)
    first = loss_of(model, x, y)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    bp = get_rule("bp", regime=STUDY_B, num_classes=C)
    for _ in range(30):
        bp.step(model, x, y, opt)
    assert loss_of(model, x, y) < first - 0.05


@pytest.mark.parametrize(
    "family", ["MLP", "SmallCNN", pytest.param("MobileNetV2", marks=pytest.mark.slow), "MLPMixer"]
)
def test_biprop_builds_every_small_family(family):
    model, shape = _family(family)
    layers = apply_biprop(model, 0.5)
    assert layers and len(layers) == len(biprop_layers(model))
    model(torch.randn(2, *shape)).sum().backward()
    scores = [m.parametrizations.weight.original for m in biprop_layers(model).values()]
    assert all(s.grad is not None for s in scores)


def test_bireal_is_ignored_under_binary_act():
    from binary_feedback.config import StudyBConfig
    from binary_feedback.experiment import StudyBExperiment

    config = StudyBConfig(model="MLP", dataset="digits", bireal_act=True, binary_act=True)
    model = StudyBExperiment(config).build_model((1, 8, 8), C)
    kinds = {type(m) for m in model.modules()}
    assert SignSat in kinds and BiRealAct not in kinds
    config = StudyBConfig(model="MLP", dataset="digits", bireal_act=True, biprop=0.5)
    model = StudyBExperiment(config).build_model((1, 8, 8), C)
    assert BiRealAct in {type(m) for m in model.modules()}
    assert len(biprop_layers(model)) == 5  # first and last included


def test_summary_counts_biprop_weights_at_two_bits():
    from bnn_shared.summary import summary

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, C, bias=False))
    apply_biprop(model, 0.5)
    assert summary(model, input_size=(1, 4)).params == {2: 4 * 8 + 8 * C}
    binarize_weights(model, keep_fp=["2"])
    assert summary(model, input_size=(1, 4)).params == {1: 4 * 8, 2: 8 * C}
