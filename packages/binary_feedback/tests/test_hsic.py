"""HSIC kernels, estimators (against the direct formulas in float64) and the HSIC rule."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from binary_feedback.training import STUDY_A, STUDY_B, cosine_kernel, get_rule, hsic
from binary_feedback.training.hsic import (
    HSIC_ESTIMATORS,
    hsic_biased,
    hsic_plausible,
    normalized_hsic,
)
from bnn_shared.errors import ConfigError
from torch import nn

C = 3


def kernels(m: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return cosine_kernel(torch.randn(m, 5, dtype=torch.float64)), cosine_kernel(
        torch.randn(m, 4, dtype=torch.float64)
    )


class TestCosineKernel:
    def test_equals_pairwise_cosine_similarity(self):
        x = torch.randn(5, 2, 3, dtype=torch.float64)
        expected = torch.tensor(
            [[F.cosine_similarity(a.flatten(), b.flatten(), dim=0) for b in x] for a in x],
            dtype=torch.float64,
        )
        torch.testing.assert_close(cosine_kernel(x), expected)

    def test_zero_row_gives_zero_similarity(self):
        x = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
        k = cosine_kernel(x)
        assert torch.isfinite(k).all() and k[0].abs().sum() == 0 and k[1, 1] == pytest.approx(1)


class TestEstimators:
    def test_biased_equals_trace_formula(self):
        a, b = kernels()
        m = a.shape[0]
        h = torch.eye(m, dtype=torch.float64) - 1.0 / m
        expected = torch.trace(a @ h @ b @ h) / m**2
        torch.testing.assert_close(hsic_biased(a, b), expected)
        torch.testing.assert_close(hsic(a, b, "biased"), expected)

    def test_plausible_equals_double_loop(self):
        a, b = kernels()
        m = a.shape[0]
        mean_a = sum(a[i, j] for i in range(m) for j in range(m)) / m**2
        expected = sum((a[i, j] - mean_a) * b[i, j] for i in range(m) for j in range(m)) / m**2
        torch.testing.assert_close(hsic_plausible(a, b), expected)
        torch.testing.assert_close(hsic(a, b, "plausible"), expected)

    def test_unknown_mode(self):
        a, b = kernels()
        with pytest.raises(ConfigError, match="hsic mode"):
            hsic(a, b, "unbiased")
        assert set(HSIC_ESTIMATORS) == {"biased", "plausible"}

    def test_normalized_hsic(self):
        a, b = kernels()
        assert normalized_hsic(a, a).item() == pytest.approx(1.0)
        value = normalized_hsic(a, b).item()
        assert 0 <= value < 1
        expected = hsic_biased(a, b) / (hsic_biased(a, a) * hsic_biased(b, b)).sqrt()
        assert value == pytest.approx(expected.item())
        assert normalized_hsic(a, torch.zeros_like(b)).item() == 0  # no NaN for a null kernel


class RecordGrads:
    """Stub optimizer: ``zero_grad`` clears the grads, ``step`` records them (no update)."""

    def __init__(self, model: nn.Module) -> None:
        self.params = dict(model.named_parameters())
        self.grads: dict[str, torch.Tensor] = {}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def step(self) -> None:
        self.grads = {n: p.grad.clone() for n, p in self.params.items()}


@pytest.mark.parametrize("mode", ["biased", "plausible"])
@pytest.mark.parametrize("regime", [STUDY_A, STUDY_B], ids=["study_a", "study_b"])
def test_rule_backpropagates_the_local_loss(regime, mode):
    """First layer: grad of HSIC(Z, Z) - gamma HSIC(Z, Y) at Z = act(x W1^T); head: true."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, C), nn.Tanh()).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    rule = get_rule("hsic", regime=regime, num_classes=C, gamma=20.0, mode=mode)
    opt = RecordGrads(model)
    rule.step(model, x, y, opt)

    clone = copy.deepcopy(model)
    z = clone[1](clone[0](x))
    ky = cosine_kernel(F.one_hot(y, C).double() - 1 / C)
    kz = cosine_kernel(z)
    local = hsic(kz, kz, mode) - 20.0 * hsic(kz, ky, mode)
    expected = torch.autograd.grad(local, [clone[0].weight, clone[0].bias])
    torch.testing.assert_close(opt.grads["0.weight"], expected[0])
    torch.testing.assert_close(opt.grads["0.bias"], expected[1])
    regime.training_loss(clone[3](clone[2](z.detach())), y).backward()
    torch.testing.assert_close(opt.grads["2.weight"], clone[2].weight.grad)


def test_rule_options():
    rule = get_rule("HSIC", regime=STUDY_B, num_classes=C)
    assert (rule.gamma, rule.mode) == (2.0, "biased")
    assert repr(rule).endswith("gamma=2.0, mode=biased)")
    assert rule.state_dict() == {"rule": "hsic", "matrices": {}}
    with pytest.raises(ConfigError, match="mode"):
        get_rule("hsic", regime=STUDY_B, num_classes=C, mode="rbf")
