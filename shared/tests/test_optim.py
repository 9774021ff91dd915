"""Bop, the flip optimizer: the rule, the momentum, groups, counting and state."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.optim import Bop


def _weights(*shape, alpha=0.5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, shape, generator=generator).float() * 2 - 1
    return torch.nn.Parameter(alpha * signs)


def test_flips_exactly_where_the_rule_says_and_keeps_the_magnitude():
    w = _weights(20, 30)
    start = w.detach().clone()
    opt = Bop([w], gamma=0.3, threshold=0.05)
    grads = [torch.randn(20, 30) for _ in range(4)]
    m = torch.zeros(20, 30)
    flips = 0
    for grad in grads:
        m = (1 - 0.3) * m + 0.3 * grad
        rule = torch.sign(w.detach()) * m > 0.05
        flips += int(rule.sum())
        expected = torch.where(rule, -w.detach(), w.detach())
        w.grad = grad
        opt.step()
        assert torch.equal(w.detach(), expected)
        # the momentum is not reset after a flip
        torch.testing.assert_close(opt.momentum(w), m)
    assert torch.equal(w.detach().abs(), start.abs())
    assert opt.flips(w) == flips > 0


def test_flip_count_and_reset():
    w = _weights(4, 4)
    opt = Bop([w], gamma=1.0, threshold=0.0)
    w.grad = torch.sign(w.detach()) * 2  # m = grad: every weight flips
    opt.step()
    assert opt.flips(w) == 16
    w.grad = torch.zeros(4, 4)  # m = 0: nothing flips
    opt.step()
    assert opt.flips(w) == 16
    opt.reset_flips()
    assert opt.flips(w) == 0


def test_strict_and_inclusive_comparison():
    w = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    grad = torch.tensor([0.5, -0.5])  # sign(w) * m = 0.5 * gamma = threshold exactly
    strict = Bop([w], gamma=1.0, threshold=0.5)
    w.grad = grad
    strict.step()
    assert torch.equal(w.detach(), torch.tensor([1.0, -1.0]))
    inclusive = Bop([w], gamma=1.0, threshold=0.5, inclusive=True)
    inclusive.step()
    assert torch.equal(w.detach(), torch.tensor([-1.0, 1.0]))


def test_groups_have_their_own_gamma_and_threshold():
    a, b = _weights(8), _weights(8, seed=1)
    opt = Bop(
        [{"params": [a], "gamma": 1.0, "threshold": 0.0}, {"params": [b], "gamma": 1e-3}],
        threshold=0.0,
    )
    a.grad = torch.sign(a.detach())
    b.grad = torch.sign(b.detach())
    opt.step()
    assert opt.flips(a) == 8
    assert opt.flips(b) == 8  # threshold 0: any agreeing momentum flips
    torch.testing.assert_close(opt.momentum(b).abs(), torch.full((8,), 1e-3))


def test_seeded_momentum_and_state_dict_round_trip():
    w = _weights(5, 5)
    opt = Bop([w], gamma=0.1, threshold=1.0)
    seed = torch.randn(5, 5)
    opt.set_momentum(w, seed)
    w.grad = torch.randn(5, 5)
    opt.step()
    torch.testing.assert_close(opt.momentum(w), 0.9 * seed + 0.1 * w.grad)
    clone = torch.nn.Parameter(w.detach().clone())
    other = Bop([clone], gamma=0.1, threshold=1.0)
    other.load_state_dict(opt.state_dict())
    torch.testing.assert_close(other.momentum(clone), opt.momentum(w))


def test_parameters_without_gradient_are_left_alone():
    w = _weights(3)
    opt = Bop([w])
    opt.step()
    assert len(opt.state) == 0


@pytest.mark.parametrize("gamma, threshold", [(0.0, 1e-3), (1.5, 1e-3), (0.1, -1.0)])
def test_bad_hyperparameters_are_rejected(gamma, threshold):
    with pytest.raises(ValueError, match="Bop"):
        Bop([_weights(2)], gamma=gamma, threshold=threshold)
