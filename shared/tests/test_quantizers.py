"""Quantizers: forward values and pseudo-gradients against numpy references, registry lookup."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bnn_shared import quantizers
from bnn_shared.errors import BnnError, ConfigError

# Exact 0, the clip value ±1, the ste_tern threshold ±0.05, values beyond the clip, one
# unique largest magnitude (so that max-based scales have a single argmax).
GRID = np.array(
    [-3.0, -1.5, -1.0, -0.7, -0.5, -0.05, -0.01, 0.0, 0.01, 0.05, 0.3, 0.5, 0.999, 1.0, 1.2, 2.5]
)


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def np_mask(x, clip=1.0):
    return (np.abs(x) <= clip).astype(float)


def np_uniform(x, bits=4):
    alpha = np.abs(x).max() or 1.0
    c = 2 ** (bits - 1)
    high = 1 if bits == 1 else c - 1
    return np.clip(np.round(x * c / alpha), -c, high) * alpha / c


def np_dorefa_weights(x, g, bits=2):
    """Forward value and gradient of the weights mode, including the term through max|tanh|."""
    n = 2**bits - 1
    t = np.tanh(x)
    k = np.argmax(np.abs(t))
    m = np.abs(t[k])
    q = 2 * np.round((t / (2 * m) + 0.5) * n) / n - 1
    grad_t = g / m
    grad_t[k] -= np.sum(g * t) / m**2 * np.sign(t[k])
    return q, grad_t * (1 - t**2)


def np_swish_grad(x, g, beta=5.0):
    bx = beta * x
    return g * beta * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx))


# alias -> (forward reference, gradient reference(x, g), precision) with default arguments.
REFERENCES = {
    "sign": (np_sign, lambda x, g: g, 1),
    "ste_sign": (np_sign, lambda x, g: g * np_mask(x), 1),
    "tanh_sign": (np_sign, lambda x, g: g * (1 - np.tanh(x) ** 2), 1),
    "approx_sign": (np_sign, lambda x, g: g * np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x), 0), 1),
    "swish_sign": (np_sign, np_swish_grad, 1),
    "magnitude_aware_sign": (
        lambda x: np_sign(x) * np.abs(x).mean(),
        lambda x, g: g * np.abs(x).mean() * np_mask(x),
        1,
    ),
    "ste_heaviside": (lambda x: (x > 0).astype(float), lambda x, g: g * np_mask(x), 1),
    "ste_tern": (lambda x: np.sign(x) * (np.abs(x) > 0.05), lambda x, g: g * np_mask(x), 2),
    "uniform": (np_uniform, lambda x, g: g, 4),
    "dorefa": (
        lambda x: np.round(np.clip(x, 0, 1) * 3) / 3,
        lambda x, g: g * ((x >= 0) & (x <= 1)),
        2,
    ),
    "noop": (lambda x: x, lambda x, g: g, 32),
}
REFERENCES["dorefa_quantizer"] = REFERENCES["dorefa"]

FUNCTIONS = {
    "sign": quantizers.sign,
    "ste_sign": quantizers.ste_sign,
    "tanh_sign": quantizers.tanh_sign,
    "approx_sign": quantizers.approx_sign,
    "swish_sign": quantizers.swish_sign,
    "magnitude_aware_sign": quantizers.magnitude_aware_sign,
    "ste_heaviside": quantizers.ste_heaviside,
    "ste_tern": quantizers.ste_tern,
    "uniform": quantizers.uniform,
    "dorefa": quantizers.dorefa,
    "dorefa_quantizer": quantizers.dorefa,
    "noop": lambda x: x,
}


def forward_backward(fn, x_np, g_np):
    """Value and input gradient of ``fn`` in float64 for upstream gradient ``g``."""
    x = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    y = fn(x)
    y.backward(torch.tensor(g_np, dtype=torch.float64))
    return y.detach().numpy(), x.grad.numpy()


@pytest.fixture
def upstream():
    return np.random.default_rng(0).normal(size=GRID.shape)


class TestCommonFunctionality:
    def test_every_alias_has_a_reference(self):
        assert set(quantizers.available()) == set(REFERENCES) == set(FUNCTIONS)

    @pytest.mark.parametrize("alias", quantizers.available())
    def test_get_builds_a_quantizer_with_its_canonical_alias(self, alias):
        quantizer = quantizers.get(alias)
        assert isinstance(quantizer, quantizers.Quantizer)
        assert quantizers.get(quantizer.alias).__class__ is type(quantizer)
        assert quantizer.alias == ("dorefa" if alias == "dorefa_quantizer" else alias)
        assert list(quantizer.parameters()) == [] and not quantizer.state_dict()
        assert type(quantizer).__name__ in repr(quantizer) and "precision=" in repr(quantizer)

    @pytest.mark.parametrize("alias", quantizers.available())
    def test_precision(self, alias):
        precision = quantizers.get(alias).precision
        assert isinstance(precision, int) and precision == REFERENCES[alias][2]

    @pytest.mark.parametrize("alias", quantizers.available())
    def test_shape_dtype_and_config_round_trip(self, alias):
        quantizer = quantizers.get(alias)
        x = torch.randn(3, 4, 5)
        y = quantizer(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        rebuilt = quantizers.get(quantizer.alias, **quantizer.get_config())
        assert torch.equal(rebuilt(x), y) and repr(rebuilt) == repr(quantizer)

    @pytest.mark.parametrize("alias", quantizers.available())
    def test_function_equals_module(self, alias):
        x = torch.randn(4, 6)
        assert torch.equal(FUNCTIONS[alias](x), quantizers.get(alias)(x))


class TestQuantization:
    @pytest.mark.parametrize("alias", quantizers.available())
    def test_forward_matches_numpy(self, alias, upstream):
        value, _ = forward_backward(quantizers.get(alias), GRID, upstream)
        np.testing.assert_allclose(value, REFERENCES[alias][0](GRID), rtol=1e-12, atol=1e-12)

    @pytest.mark.parametrize("fn", [quantizers.sign, quantizers.ste_sign, quantizers.approx_sign])
    def test_sign_of_zero_is_plus_one(self, fn):
        assert fn(torch.zeros(3)).tolist() == [1.0, 1.0, 1.0]

    def test_heaviside_and_tern_map_zero_to_zero(self):
        assert quantizers.ste_heaviside(torch.zeros(2)).tolist() == [0.0, 0.0]
        assert quantizers.ste_tern(torch.zeros(2)).tolist() == [0.0, 0.0]

    def test_tern_twn_threshold(self):
        x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 0.71, 1.0])  # 0.7 * mean|x| = 0.7 * 0.7517
        expected = [-1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
        assert quantizers.ste_tern(x, ternary_weight_networks=True).tolist() == expected
        threshold = quantizers.SteTern(threshold_value=0.4)(x)
        assert threshold.tolist() == [-1.0, -1.0, 0.0, 0.0, 1.0, 1.0]

    @pytest.mark.parametrize("shape", [(3, 5), (4, 2, 3, 3)])
    def test_magnitude_aware_sign_scale_per_output_channel(self, shape):
        x = torch.randn(shape, dtype=torch.float64) * torch.arange(1, shape[0] + 1).view(
            -1, *[1] * (len(shape) - 1)
        )
        scale = x.abs().flatten(1).mean(1).view(-1, *[1] * (len(shape) - 1))
        q = quantizers.magnitude_aware_sign(x)
        torch.testing.assert_close(q, torch.where(x >= 0, 1.0, -1.0).double() * scale)
        for channel in range(shape[0]):
            assert q[channel].abs().unique().numel() == 1

    def test_magnitude_aware_sign_scale_gets_no_gradient(self):
        x = (torch.randn(3, 4, dtype=torch.float64) * 0.5).requires_grad_()
        quantizers.magnitude_aware_sign(x).sum().backward()
        scale = x.detach().abs().mean(1, keepdim=True)
        torch.testing.assert_close(x.grad, scale * (x.detach().abs() <= 1).double().expand_as(x))


class TestGradients:
    @pytest.mark.parametrize("alias", quantizers.available())
    def test_gradient_matches_numpy(self, alias, upstream):
        _, grad = forward_backward(quantizers.get(alias), GRID, upstream)
        np.testing.assert_allclose(
            grad, REFERENCES[alias][1](GRID, upstream), rtol=1e-10, atol=1e-12
        )

    @pytest.mark.parametrize("clip", [0.5, 2.0])
    @pytest.mark.parametrize(
        "alias", ["ste_sign", "ste_heaviside", "ste_tern", "magnitude_aware_sign"]
    )
    def test_clip_value(self, alias, clip, upstream):
        _, grad = forward_backward(quantizers.get(alias, clip_value=clip), GRID, upstream)
        scale = np.abs(GRID).mean() if alias == "magnitude_aware_sign" else 1.0
        np.testing.assert_allclose(grad, upstream * scale * np_mask(GRID, clip), rtol=1e-12)

    def test_ste_sign_without_clip_is_identity(self, upstream):
        _, grad = forward_backward(quantizers.SteSign(clip_value=None), GRID, upstream)
        np.testing.assert_array_equal(grad, upstream)

    def test_swish_sign_beta(self, upstream):
        _, grad = forward_backward(quantizers.SwishSign(beta=2.0), GRID, upstream)
        np.testing.assert_allclose(grad, np_swish_grad(GRID, upstream, beta=2.0), rtol=1e-10)


class TestUniform:
    def test_four_bit_levels(self):
        x = torch.randn(200, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        alpha = x.abs().max()
        levels = quantizers.uniform(x, bits=4) * 8 / alpha
        torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-12)
        assert levels.min() >= -8 and levels.max() <= 7

    def test_largest_positive_clipped_and_half_to_even(self):
        x = torch.tensor([4.0, 0.25, 0.75, -4.0])  # x*8/4 = 8, 0.5, 1.5, -8
        assert quantizers.uniform(x, bits=4).tolist() == [3.5, 0.0, 1.0, -4.0]

    def test_one_bit_is_ternary_with_precision_two(self):
        x = torch.tensor([-3.0, -1.0, 0.2, 1.6, 3.0])
        assert quantizers.uniform(x, bits=1).tolist() == [-3.0, 0.0, 0.0, 3.0, 3.0]
        assert quantizers.Uniform(bits=1).precision == 2

    def test_zero_tensor(self):
        x = torch.zeros(4, requires_grad=True)
        y = quantizers.uniform(x)
        y.backward(torch.arange(4.0))
        assert y.tolist() == [0.0] * 4 and x.grad.tolist() == [0.0, 1.0, 2.0, 3.0]

    @pytest.mark.parametrize("bits", [2, 3, 8, 16])
    def test_precision_is_bits(self, bits):
        assert quantizers.Uniform(bits=bits).precision == bits

    @pytest.mark.parametrize("bits", [0, 17, 2.5, True, "4"])
    def test_bad_bits(self, bits):
        with pytest.raises(ConfigError, match="bits"):
            quantizers.Uniform(bits=bits)
        with pytest.raises(ConfigError):
            quantizers.uniform(torch.ones(2), bits=bits)


class TestDoReFa:
    @pytest.mark.parametrize("bits", [1, 2, 4])
    def test_activation_levels(self, bits, upstream):
        n = 2**bits - 1
        value, grad = forward_backward(quantizers.DoReFa(bits=bits), GRID, upstream)
        np.testing.assert_allclose(value, np.round(np.clip(GRID, 0, 1) * n) / n, rtol=1e-12)
        np.testing.assert_array_equal(grad, upstream * ((GRID >= 0) & (GRID <= 1)))

    @pytest.mark.parametrize("bits", [1, 2, 3])
    def test_weights_mode(self, bits, upstream):
        quantizer = quantizers.get("dorefa_quantizer", bits=bits, mode="weights")
        value, grad = forward_backward(quantizer, GRID, upstream)
        expected_value, expected_grad = np_dorefa_weights(GRID, upstream, bits)
        np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)
        n = 2**bits - 1
        np.testing.assert_allclose((value + 1) / 2 * n, np.round((value + 1) / 2 * n), atol=1e-12)
        assert quantizer.precision == bits

    def test_bad_mode(self):
        with pytest.raises(ConfigError, match="mode"):
            quantizers.DoReFa(mode="kernel")
        with pytest.raises(ConfigError, match="mode"):
            quantizers.dorefa(torch.ones(2), mode="kernel")


class TestRegistry:
    def test_available_is_sorted_with_every_alias(self):
        names = quantizers.available()
        assert names == sorted(names)
        assert {"dorefa", "dorefa_quantizer", "ste_sign", "noop", "uniform"} <= set(names)

    def test_get_none_instance_class_and_kwargs(self):
        assert quantizers.get(None) is None
        instance = quantizers.SteSign()
        assert quantizers.get(instance) is instance
        assert isinstance(quantizers.get(quantizers.SteTern), quantizers.SteTern)
        assert quantizers.get("ste_sign", clip_value=0.5).clip_value == 0.5
        assert quantizers.get(quantizers.Uniform, bits=3).precision == 3

    def test_get_callable_wraps_in_lambda(self):
        quantizer = quantizers.get(torch.tanh)
        x = torch.randn(5)
        assert isinstance(quantizer, quantizers.Lambda) and quantizer.precision == 32
        assert torch.equal(quantizer(x), torch.tanh(x))
        assert quantizers.get(torch.sign, precision=1).precision == 1

    def test_unknown_alias_lists_available(self):
        with pytest.raises(BnnError, match="ste_sing") as info:
            quantizers.get("ste_sing")
        assert "ste_sign" in str(info.value) and "approx_sign" in str(info.value)

    def test_bad_arguments(self):
        with pytest.raises(ConfigError, match="ste_sign"):
            quantizers.get("ste_sign", beta=2.0)
        with pytest.raises(ConfigError):
            quantizers.get(quantizers.SteSign(), clip_value=0.5)
        with pytest.raises(ConfigError):
            quantizers.get(3)
        with pytest.raises(ConfigError, match="clip_value"):
            quantizers.SteSign(clip_value=-1.0)
        with pytest.raises(ConfigError, match="precision"):
            quantizers.NoOp(precision=0)

    def test_register(self, monkeypatch):
        monkeypatch.setattr(quantizers, "QUANTIZERS", quantizers.QUANTIZERS.copy())

        @quantizers.register("half", "halve")
        class Half(quantizers.Quantizer):
            precision = 8

            def forward(self, x):
                return x / 2

        assert {"half", "halve"} <= set(quantizers.available())
        assert quantizers.get("halve").alias == "half"
        assert quantizers.get("half")(torch.ones(1)).item() == 0.5
        with pytest.raises(BnnError, match="already taken"):
            quantizers.register("ste_sign")(Half)


class TestPaperConventions:
    """The parameters that replace the packages' own copies: sign(0), windows, H(0), scales."""

    @pytest.mark.parametrize("zero", [1, -1, 0])
    @pytest.mark.parametrize("name", ["sign", "ste_sign", "tanh_sign"])
    def test_value_at_zero(self, name, zero):
        fn = getattr(quantizers, name)
        y = fn(torch.tensor(GRID), zero=zero).numpy()
        expected = np.where(GRID > 0, 1.0, np.where(GRID < 0, -1.0, float(zero)))
        np.testing.assert_array_equal(y, expected)
        module = quantizers.get(name, zero=zero)
        np.testing.assert_array_equal(module(torch.tensor(GRID)).numpy(), expected)

    @pytest.mark.parametrize("strict", [False, True])
    def test_ste_sign_window(self, strict, upstream):
        fn = lambda x: quantizers.ste_sign(x, 1.0, zero=-1, strict=strict)  # noqa: E731
        _, grad = forward_backward(fn, GRID, upstream)
        inside = np.abs(GRID) < 1 if strict else np.abs(GRID) <= 1
        np.testing.assert_array_equal(grad, upstream * inside)

    def test_heaviside_at_zero_and_identity_gradient(self, upstream):
        x = torch.tensor(GRID)
        assert quantizers.heaviside(x, zero=1).tolist() == (GRID >= 0).astype(float).tolist()
        assert quantizers.heaviside(x).tolist() == (GRID > 0).astype(float).tolist()
        value, grad = forward_backward(
            lambda v: quantizers.ste_heaviside(v, None, zero=1), GRID, upstream
        )
        np.testing.assert_array_equal(value, (GRID >= 0).astype(float))
        np.testing.assert_array_equal(grad, upstream)
        ints = quantizers.ste_heaviside(torch.tensor([-2, 0, 3]), None)
        assert ints.dtype == torch.float32 and ints.tolist() == [0.0, 0.0, 1.0]

    def test_window(self):
        x = torch.tensor(GRID)
        np.testing.assert_array_equal(
            quantizers.window(x, -0.5, 0.5).numpy(), ((GRID >= -0.5) & (GRID <= 0.5))
        )
        np.testing.assert_array_equal(
            quantizers.window(x, -0.5, 0.5, strict=True).numpy(), np.abs(GRID) < 0.5
        )

    @pytest.mark.parametrize("zero", [2, 0.5, True])
    def test_bad_zero(self, zero):
        with pytest.raises(ConfigError, match="zero"):
            quantizers.SteSign(zero=zero)

    def test_uniform_with_fixed_scale(self):
        x = torch.tensor([-3.0, -0.26, 0.0, 0.24, 0.9])
        q = quantizers.uniform(x, bits=3, scale=1.0)  # levels k/4, k in -4..3, saturating
        assert q.tolist() == [-1.0, -0.25, 0.0, 0.25, 0.75]
        assert quantizers.uniform(x, bits=20, scale=0.0).tolist() == [0.0] * 5
        with pytest.raises(ConfigError, match="1..32"):
            quantizers.uniform(x, bits=33, scale=1.0)

    def test_scaled_sign_and_mean_abs_scale(self):
        w = torch.tensor([[0.5, -0.25], [0.0, 1.0]], dtype=torch.float64)
        alpha = quantizers.mean_abs_scale(w)
        assert alpha.tolist() == [0.4375]
        per_row = quantizers.mean_abs_scale(w, per_channel=True, decimals=1)
        assert per_row.tolist() == [0.4, 0.5]
        assert quantizers.scaled_sign(w, per_row).tolist() == [[0.4, -0.4], [0.0, 0.5]]
        assert quantizers.scaled_sign(w, 2.0, zero=1).tolist() == [[2.0, -2.0], [2.0, 2.0]]
