"""Quantized layers: parity with their nn parents, quantized weights, pad_values, weight clip."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError
from bnn_shared.layers import QuantConv1d, QuantConv2d, QuantLayerMixin, QuantLinear, clip_weights_
from torch import nn

# (quant layer, nn parent, constructor args, input shape)
LAYERS = [
    (QuantLinear, nn.Linear, dict(in_features=6, out_features=4), (3, 6)),
    (QuantConv1d, nn.Conv1d, dict(in_channels=2, out_channels=3, kernel_size=3), (2, 2, 9)),
    (QuantConv2d, nn.Conv2d, dict(in_channels=2, out_channels=3, kernel_size=3), (2, 2, 7, 6)),
]
CONV2D_OPTIONS = [
    dict(stride=2, padding=1),
    dict(padding=(2, 1), dilation=2, bias=False),
    dict(groups=2, padding="same"),
    dict(kernel_size=4, padding="same"),
    dict(padding="valid"),
    dict(padding=1, padding_mode="reflect"),
]


def sign(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class TestParity:
    @pytest.mark.parametrize(("quant_cls", "parent_cls", "args", "shape"), LAYERS)
    def test_signature_contains_parent(self, quant_cls, parent_cls, args, shape):
        ours = inspect.signature(quant_cls).parameters
        for name, param in inspect.signature(parent_cls).parameters.items():
            assert name in ours, name
            assert (ours[name].kind, ours[name].default) == (param.kind, param.default), name
        for name in ("input_quantizer", "kernel_quantizer"):
            assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY

    @pytest.mark.parametrize(("quant_cls", "parent_cls", "args", "shape"), LAYERS)
    def test_without_quantizers_equals_parent(self, quant_cls, parent_cls, args, shape):
        torch.manual_seed(0)
        parent, layer = parent_cls(**args), quant_cls(**args)
        layer.load_state_dict(parent.state_dict())
        parent.load_state_dict(layer.state_dict())
        x = torch.randn(shape)
        torch.testing.assert_close(layer(x), parent(x), rtol=0, atol=0)
        assert layer.quantized_weight() is layer.weight
        assert (layer.input_precision, layer.kernel_precision) == (32, 32)

    @pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
    @pytest.mark.parametrize("options", CONV2D_OPTIONS)
    def test_conv2d_options_equal_parent(self, options):
        args = dict(in_channels=2, out_channels=4, kernel_size=3) | options
        parent, layer = nn.Conv2d(**args), QuantConv2d(**args)
        layer.load_state_dict(parent.state_dict())
        x = torch.randn(2, 2, 8, 7)
        torch.testing.assert_close(layer(x), parent(x), rtol=0, atol=0)

    def test_float64(self):
        layer = QuantLinear(3, 2, dtype=torch.float64, kernel_quantizer="ste_sign")
        assert layer(torch.randn(4, 3, dtype=torch.float64)).dtype == torch.float64


class TestQuantizedWeights:
    @pytest.mark.parametrize(("quant_cls", "parent_cls", "args", "shape"), LAYERS)
    def test_ste_sign_weight_is_binary_and_gradient_reaches_latent(
        self, quant_cls, parent_cls, args, shape
    ):
        torch.manual_seed(1)
        layer = quant_cls(**args, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
        with torch.no_grad():
            layer.weight.mul_(10)  # push some latent weights beyond the clip value
        q = layer.quantized_weight()
        assert set(q.unique().tolist()) == {-1.0, 1.0}
        assert torch.equal(q, sign(layer.weight.detach()))
        assert (layer.input_precision, layer.kernel_precision) == (1, 1)

        x = torch.randn(shape)
        y = layer(x)
        reference = parent_cls(**args)
        reference.load_state_dict(layer.state_dict())
        with torch.no_grad():
            reference.weight.copy_(q)
        torch.testing.assert_close(y, reference(sign(x)))

        upstream = torch.randn_like(y)
        y.backward(upstream)
        leaf = q.detach().requires_grad_()
        out = torch.func.functional_call(reference, {"weight": leaf}, (sign(x),), strict=False)
        (grad_q,) = torch.autograd.grad(out, leaf, upstream)
        mask = (layer.weight.detach().abs() <= 1).float()
        torch.testing.assert_close(layer.weight.grad, grad_q * mask)
        assert (layer.weight.grad == 0).any() and (layer.weight.grad != 0).any()

    def test_quantizer_objects_and_precision(self):
        layer = QuantLinear(
            4, 2, input_quantizer=quantizers.DoReFa(bits=3), kernel_quantizer="uniform"
        )
        assert (layer.input_precision, layer.kernel_precision) == (3, 4)
        assert isinstance(layer.kernel_quantizer, quantizers.Uniform)
        assert isinstance(layer, QuantLayerMixin)
        assert "Uniform(bits=4" in repr(layer)

    def test_state_dict_has_parent_keys(self):
        layer = QuantConv2d(2, 3, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
        assert list(layer.state_dict()) == ["weight", "bias"]

    def test_docstrings_explain_latent_weights(self):
        for cls in (QuantLinear, QuantConv1d, QuantConv2d):
            doc = inspect.getdoc(cls)
            assert "latent float weight" in doc and "quantized_weight()" in doc
            assert "save_binary" in doc


class TestPadValues:
    @pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
    @pytest.mark.parametrize(
        ("options", "widths"),
        [
            (dict(padding=1), (1, 1, 1, 1)),
            (dict(padding=(2, 1), stride=2), (1, 1, 2, 2)),
            (dict(padding="same"), (1, 1, 1, 1)),
            (dict(kernel_size=(3, 4), padding="same", dilation=(1, 2)), (3, 3, 1, 1)),
            (dict(kernel_size=4, padding="same"), (1, 2, 1, 2)),
        ],
    )
    def test_equals_manual_pad(self, options, widths):
        args = dict(in_channels=2, out_channels=3, kernel_size=3) | options
        layer = QuantConv2d(**args, input_quantizer="ste_sign", pad_values=1.0)
        x = torch.randn(2, 2, 7, 8)
        padded = F.pad(sign(x), widths, value=1.0)
        expected = F.conv2d(padded, layer.weight, layer.bias, layer.stride, 0, layer.dilation)
        torch.testing.assert_close(layer(x), expected)
        assert "pad_values=1.0" in repr(layer)

    def test_conv1d(self):
        layer = QuantConv1d(2, 3, 3, padding=2, pad_values=-1.0, kernel_quantizer="ste_sign")
        x = torch.randn(1, 2, 6)
        expected = F.conv1d(F.pad(x, (2, 2), value=-1.0), sign(layer.weight), layer.bias)
        torch.testing.assert_close(layer(x), expected)

    def test_binary_input_stays_binary(self):
        layer = QuantConv2d(1, 1, 3, padding=1, bias=False, input_quantizer="ste_sign",
                            kernel_quantizer="ste_sign", pad_values=1.0)  # fmt: skip
        y = layer(torch.randn(1, 1, 5, 5))
        assert torch.all((y + 9) % 2 == 0)  # a sum of 9 products ±1 is odd

    def test_valid_padding_ignores_pad_values(self):
        layer = QuantConv2d(2, 3, 3, padding="valid", pad_values=1.0)
        x = torch.randn(1, 2, 5, 5)
        torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight, layer.bias))

    def test_needs_zeros_mode(self):
        with pytest.raises(ConfigError, match="padding_mode"):
            QuantConv2d(2, 3, 3, padding=1, padding_mode="reflect", pad_values=1.0)


class TestClipWeights:
    def test_clips_only_quantized_kernels(self):
        model = nn.Sequential(
            QuantLinear(4, 4, kernel_quantizer="ste_sign"),
            QuantLinear(4, 4, input_quantizer="ste_sign"),
            nn.Sequential(QuantConv2d(1, 2, 3, kernel_quantizer="ste_tern")),
            QuantLinear(4, 4, kernel_quantizer=quantizers.NoOp(precision=1)),
            nn.Linear(4, 4),
        )
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(10)
        before = [p.detach().clone() for p in model.parameters()]
        assert clip_weights_(model, clip_value=0.5) is model
        clipped = {id(model[0].weight), id(model[2][0].weight)}
        for p, old in zip(model.parameters(), before, strict=True):
            if id(p) in clipped:
                torch.testing.assert_close(p.detach(), old.clamp(-0.5, 0.5))
                assert p.abs().max() == 0.5
            else:
                assert torch.equal(p.detach(), old)
            assert p.is_leaf and p.requires_grad and p.grad_fn is None

    def test_bad_clip_value(self):
        with pytest.raises(ConfigError):
            clip_weights_(QuantLinear(2, 2, kernel_quantizer="ste_sign"), clip_value=0)


class TestClipWeightsSelect:
    def test_parametrized_quantized_weight_is_clipped(self):
        from torch.nn.utils import parametrize

        layer = nn.Linear(3, 2)
        with torch.no_grad():
            layer.weight.fill_(3.0)
        parametrize.register_parametrization(layer, "weight", quantizers.SteSign())
        plain = nn.Linear(3, 2)
        with torch.no_grad():
            plain.weight.fill_(3.0)
        model = nn.Sequential(layer, plain)
        clip_weights_(model, 1.5)
        assert layer.parametrizations.weight.original.max().item() == 1.5
        assert plain.weight.max().item() == 3.0  # a float layer is not clipped by default

    def test_select_picks_the_layers(self):
        model = nn.Sequential(nn.Linear(3, 2), QuantLinear(2, 2, kernel_quantizer="ste_sign"))
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(-4.0)
        clip_weights_(model, 2.0, select=lambda m: isinstance(m, nn.Linear))
        assert model[0].weight.min().item() == -2.0 and model[1].weight.min().item() == -2.0
        assert model[0].bias.min().item() == -4.0  # biases are never clipped

    @pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
    def test_bad_clip_value(self, bad):
        with pytest.raises(ConfigError, match="clip_value"):
            clip_weights_(nn.Linear(2, 2), bad)


def test_clip_weights_catches_a_parametrized_quant_layer_without_kernel_quantizer():
    from torch.nn.utils import parametrize

    layer = QuantLinear(3, 2)
    with torch.no_grad():
        layer.weight.fill_(2.0)
    parametrize.register_parametrization(layer, "weight", quantizers.SteSign())
    clip_weights_(layer)
    assert layer.parametrizations.weight.original.max().item() == 1.0
