"""Sign activations: forward values (sign(0) = -1), STE gradients, registry, saturation."""

from __future__ import annotations

import pytest
import torch
from binary_feedback.commons.activations import (
    ACTIVATIONS,
    Identity,
    SignSat,
    SignTanh,
    SignUnsat,
    Tanh,
    get_activation,
)
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError
from torch import nn

X = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]
SIGN_OF_X = [-1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
SIGN_NAMES = ["signsat", "sign", "signtanh"]


def grad_of(module: nn.Module, values=X, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward output and input gradient of ``module`` for an upstream gradient of ones."""
    x = torch.tensor(values, dtype=dtype, requires_grad=True)
    y = module(x)
    y.backward(torch.ones_like(y))
    return y.detach(), x.grad


class TestForward:
    @pytest.mark.parametrize("name", SIGN_NAMES)
    def test_sign_values_map_zero_to_minus_one(self, name):
        y, _ = grad_of(get_activation(name))
        assert y.tolist() == SIGN_OF_X
        assert y.dtype == torch.float64

    def test_sign_keeps_float32(self):
        y, _ = grad_of(SignSat(), dtype=torch.float32)
        assert y.dtype == torch.float32 and y.tolist() == SIGN_OF_X

    def test_core_hard_sign_with_zero_minus_one(self):
        assert quantizers.hard_sign(torch.tensor(X), zero=-1).tolist() == SIGN_OF_X

    def test_tanh_and_identity(self):
        x = torch.tensor(X, dtype=torch.float64)
        assert torch.equal(grad_of(Tanh())[0], torch.tanh(x))
        assert torch.equal(grad_of(Identity())[0], x)


class TestPseudoGradients:
    def test_signsat_strict_window_is_open(self):
        # study A: zero at |x| >= 1, so at x = +-1 too
        assert grad_of(SignSat(strict=True))[1].tolist() == [0, 0, 1, 1, 1, 0, 0]

    def test_signsat_inclusive_window_is_closed(self):
        # study B: 1(|x| <= 1)
        assert grad_of(SignSat(strict=False))[1].tolist() == [0, 1, 1, 1, 1, 1, 0]

    def test_module_default_is_strict(self):
        x = torch.tensor([1.0, -1.0, 0.999], requires_grad=True)
        SignSat()(x).sum().backward()
        assert x.grad.tolist() == [0.0, 0.0, 1.0]

    @pytest.mark.parametrize(
        ("module", "core"),
        [
            (SignSat(strict=True), lambda x: quantizers.ste_sign(x, 1.0, zero=-1, strict=True)),
            (SignSat(strict=False), lambda x: quantizers.ste_sign(x, 1.0, zero=-1)),
            (SignUnsat(), lambda x: quantizers.sign(x, zero=-1)),
            (SignTanh(), lambda x: quantizers.tanh_sign(x, zero=-1)),
        ],
        ids=["signsat_strict", "signsat_inclusive", "sign", "signtanh"],
    )
    def test_modules_are_the_core_quantizers(self, module, core):
        # bit for bit, values and gradients, on random inputs with ties at 0 and +-1
        x = torch.cat([torch.randn(50, dtype=torch.float64), torch.tensor([0.0, 1.0, -1.0])])
        g = torch.randn_like(x)
        grads = []
        for fn in (module, core):
            leaf = x.clone().requires_grad_(True)
            out = fn(leaf)
            out.backward(g)
            grads.append((out.detach(), leaf.grad))
        (y, dx), (y_core, dx_core) = grads
        assert torch.equal(y, y_core) and torch.equal(dx, dx_core)
        assert set(y.tolist()) == {-1.0, 1.0}

    def test_sign_identity_ste(self):
        assert grad_of(SignUnsat())[1].tolist() == [1.0] * len(X)

    def test_signtanh(self):
        x = torch.tensor(X, dtype=torch.float64)
        torch.testing.assert_close(grad_of(SignTanh())[1], 1 - torch.tanh(x) ** 2)

    def test_tanh_exact_derivative(self):
        x = torch.tensor(X, dtype=torch.float64)
        torch.testing.assert_close(grad_of(Tanh())[1], 1 - torch.tanh(x) ** 2)

    def test_upstream_gradient_is_multiplied(self):
        x = torch.tensor([0.5, 0.5, 3.0], requires_grad=True)
        SignSat()(x).backward(torch.tensor([2.0, -3.0, 5.0]))
        assert x.grad.tolist() == [2.0, -3.0, 0.0]


class TestRegistry:
    @pytest.mark.parametrize("name", sorted(ACTIVATIONS))
    def test_every_name_builds_a_new_module(self, name):
        first, second = get_activation(name), get_activation(name.upper())
        assert type(first) is ACTIVATIONS.get(name) and first is not second

    def test_case_insensitive(self):
        assert isinstance(get_activation("signSat"), SignSat)
        assert isinstance(get_activation("SIGN"), SignUnsat)

    def test_options_are_passed(self):
        assert get_activation("signsat", strict=False).strict is False
        assert get_activation("signsat").strict is True

    def test_unknown_name(self):
        with pytest.raises(ConfigError, match="unknown activation 'relu'.*id, sign, signsat"):
            get_activation("relu")

    def test_unknown_option(self):
        with pytest.raises(ConfigError, match="tanh"):
            get_activation("tanh", strict=True)

    def test_tanh_is_an_nn_tanh(self):
        # so that study B's binarize_activations replaces it
        assert isinstance(Tanh(), nn.Tanh) and isinstance(Identity(), nn.Identity)

    def test_precision(self):
        assert [get_activation(n).precision for n in SIGN_NAMES] == [1, 1, 1]
        assert get_activation("tanh").precision == 32


class TestSaturation:
    @pytest.mark.parametrize("name", sorted(ACTIVATIONS))
    def test_share_of_inputs_at_or_beyond_one(self, name):
        module = get_activation(name)
        grad_of(module)
        assert module.saturation is None  # off by default
        module.track_saturation = True
        grad_of(module)
        assert module.saturation.item() == pytest.approx(4 / 7)  # -2, -1, 1, 2

    def test_threshold_is_settable(self):
        module = Tanh()
        module.track_saturation, module.saturation_threshold = True, 2.0
        grad_of(module)
        assert module.saturation.item() == pytest.approx(2 / 7)
        assert not module.saturation.requires_grad
