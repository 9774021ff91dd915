"""GroupSum (contiguous per-class popcounts), STE (the core's step) and pad_if_needed."""

from __future__ import annotations

import pytest
import torch
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError, ShapeError
from dwn.utils import STE, GroupSum, pad_if_needed


class TestPadIfNeeded:
    def test_pads_last_dim_with_zeros(self):
        x = torch.ones(2, 3, 7)
        out = pad_if_needed(x, 4)
        assert out.shape == (2, 3, 8)
        assert out[..., 7].eq(0).all() and out[..., :7].eq(1).all()

    def test_multiple_is_unchanged(self):
        x = torch.ones(2, 8)
        assert pad_if_needed(x, 4) is x


class TestGroupSum:
    def test_contiguous_blocks(self):
        x = torch.arange(12.0).unsqueeze(0)
        out = GroupSum(3)(x)  # blocks [0..3], [4..7], [8..11]
        assert out.tolist() == [[6.0, 22.0, 38.0]]

    def test_brute_force_loop(self):
        x = (torch.rand(5, 20, generator=torch.Generator().manual_seed(0)) > 0.5).float()
        out = GroupSum(4, tau=2.0)(x)
        for b in range(5):
            for c in range(4):
                assert out[b, c] == x[b, c * 5 : (c + 1) * 5].sum() / 2.0

    def test_zero_padding(self):
        x = torch.ones(2, 10)
        out = GroupSum(4)(x)  # padded to 12: blocks of 3, the last holds one zero
        assert out.tolist() == [[3.0, 3.0, 3.0, 1.0]] * 2

    def test_tau_scales_and_gradient(self):
        x = torch.ones(1, 6, requires_grad=True)
        out = GroupSum(2, tau=1 / 0.3)(x)
        torch.testing.assert_close(out, torch.tensor([[0.9, 0.9]]))
        out[0, 1].backward()
        torch.testing.assert_close(x.grad, torch.tensor([[0, 0, 0, 0.3, 0.3, 0.3]]))

    def test_leading_dims(self):
        x = torch.ones(2, 3, 8)
        assert GroupSum(4)(x).shape == (2, 3, 4)

    def test_num_groups_alias(self):
        gs = GroupSum(num_groups=5, tau=2)
        assert (gs.k, gs.num_groups, gs.tau, gs.randperm) == (5, 5, 2, None)
        assert GroupSum(5, num_groups=5).k == 5
        with pytest.raises(ConfigError, match="disagree"):
            GroupSum(5, num_groups=4)
        with pytest.raises(ConfigError, match="'k'"):
            GroupSum()

    def test_randperm_true_permutes_all_once(self):
        torch.manual_seed(0)
        gs = GroupSum(2, randperm=True)
        assert gs.randperm is None  # drawn at the first forward, from its width
        x = torch.arange(10.0).unsqueeze(0)
        out = gs(x)
        perm = gs.randperm
        assert sorted(perm.tolist()) == list(range(10))
        torch.testing.assert_close(out, GroupSum(2)(x[:, perm]))
        assert torch.equal(gs(x), out)  # fixed afterwards
        assert torch.equal(gs.randperm, perm)

    def test_randperm_int_as_reference(self):
        torch.manual_seed(3)
        gs = GroupSum(2, randperm=6)
        torch.manual_seed(3)
        assert torch.equal(gs.randperm, torch.randperm(6))
        x = torch.randn(3, 6)
        torch.testing.assert_close(gs(x), GroupSum(2)(x[:, gs.randperm]))

    def test_randperm_int_one_is_not_true(self):
        assert GroupSum(2, randperm=1).randperm.tolist() == [0]

    def test_randperm_saved_and_loaded(self):
        src = GroupSum(3, randperm=True)
        src(torch.zeros(1, 9))
        dst = GroupSum(3, randperm=True)
        dst.load_state_dict(src.state_dict())
        assert torch.equal(dst.randperm, src.randperm)
        x = torch.randn(2, 9)
        assert torch.equal(dst(x), src(x))

    def test_no_randperm_state_dict_is_empty(self):
        assert dict(GroupSum(3).state_dict()) == {}

    def test_randperm_too_long(self):
        with pytest.raises(ShapeError, match="8 entries"):
            GroupSum(2, randperm=8)(torch.zeros(1, 4))

    @pytest.mark.parametrize(
        "kwargs", [{"k": 0}, {"k": 2.5}, {"k": 2, "tau": 0}, {"k": 2, "randperm": "yes"}]
    )
    def test_bad_arguments(self, kwargs):
        with pytest.raises(ConfigError):
            GroupSum(**kwargs)


class TestSTE:
    """``dwn.STE()`` is the core's SteHeaviside without clipping: torch-dwn's STE."""

    def test_is_the_core_quantizer_without_clipping(self):
        step = STE()
        assert isinstance(step, quantizers.SteHeaviside)
        assert (step.clip_value, step.zero, step.precision) == (None, 0, 1)

    def test_values(self):
        x = torch.tensor([-1.0, 0.0, 1e-6, 2.0])
        assert STE()(x).tolist() == [0.0, 0.0, 1.0, 1.0]
        assert STE()(x.double()).dtype == torch.float64
        assert quantizers.ste_heaviside(torch.tensor([-1, 3]), None).tolist() == [0.0, 1.0]

    def test_identity_gradient(self):
        x = torch.tensor([-3.0, 0.0, 0.5, 4.0], requires_grad=True)
        g = torch.tensor([1.0, -2.0, 3.0, -4.0])
        STE()(x).backward(g)
        assert torch.equal(x.grad, g)  # no clipping: |x| > 1 still passes the gradient
