"""Wiring: layer_mapping's balanced permutations and LearnableMapping's forward and gradients."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.errors import ConfigError, ShapeError
from dwn.mapping import (
    LearnableMapping,
    LearnableMappingFunction,
    _column_argmax,
    index_bits,
    layer_mapping,
)


class TestLayerMapping:
    @pytest.mark.parametrize(
        "input_size, n, output_size", [(10, 2, 5), (10, 3, 7), (7, 6, 20), (100, 6, 3)]
    )
    def test_shape_dtype_range(self, input_size, n, output_size):
        m = layer_mapping(input_size, n, output_size)
        assert m.shape == (output_size, n)
        assert m.dtype == torch.int32
        assert m.min() >= 0 and m.max() < input_size

    @pytest.mark.parametrize("input_size, n, output_size", [(10, 2, 5), (10, 3, 7), (7, 6, 20)])
    def test_balanced_fan_out(self, input_size, n, output_size):
        counts = torch.bincount(layer_mapping(input_size, n, output_size).flatten().long())
        slots = n * output_size
        assert counts.numel() == input_size
        assert counts.min() >= slots // input_size
        assert counts.max() <= slots // input_size + 1
        assert counts.sum() == slots

    def test_arange_values(self):
        m = layer_mapping(4, 3, 3, random=False)
        assert m.tolist() == [[0, 1, 2], [3, 0, 1], [2, 3, 0]]

    def test_fewer_slots_than_inputs(self):
        torch.manual_seed(0)
        m = layer_mapping(100, 6, 3)
        assert m.shape == (3, 6)
        assert m.flatten().unique().numel() == 18  # the first 18 entries of one permutation
        assert layer_mapping(100, 2, 3, random=False).tolist() == [[0, 1], [2, 3], [4, 5]]

    def test_global_rng_draw_order(self):
        # Reference order: num_complete permutations, then one more (even when offset is 0).
        torch.manual_seed(7)
        m = layer_mapping(5, 2, 5)
        torch.manual_seed(7)
        expected = torch.cat([torch.randperm(5), torch.randperm(5), torch.randperm(5)[:0]])
        after = torch.randperm(5)
        assert m.flatten().tolist() == expected.tolist()
        torch.manual_seed(7)
        layer_mapping(5, 2, 5)
        assert torch.equal(torch.randperm(5), after)

    def test_tuple_lenght_alias(self):
        assert torch.equal(
            layer_mapping(6, output_size=4, tuple_lenght=3, random=False),
            layer_mapping(6, 3, 4, random=False),
        )

    @pytest.mark.parametrize("args", [(0, 2, 3), (4, 0, 3), (4, 2, -1), (4.5, 2, 3)])
    def test_bad_sizes(self, args):
        with pytest.raises(ConfigError):
            layer_mapping(*args)

    def test_missing_n(self):
        with pytest.raises(ConfigError, match="'n'"):
            layer_mapping(4, output_size=3)


def binary(*shape: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) > 0.5).float()


class TestLearnableMapping:
    def test_init_and_names(self):
        torch.manual_seed(1)
        lm = LearnableMapping(6, 10)
        torch.manual_seed(1)
        assert torch.equal(lm.weights, torch.rand(6, 10))
        assert lm.weight is lm.weights
        assert list(dict(lm.named_parameters())) == ["weights"]
        assert lm.tau == 0.001

    @pytest.mark.parametrize("training", [True, False])
    def test_forward_is_hard_selection(self, training):
        lm = LearnableMapping(8, 12).train(training)
        x = torch.randn(5, 8)
        assert torch.equal(lm(x), x[:, lm.weights.argmax(0)])
        assert torch.equal(lm.hard_mapping(), lm.weights.argmax(0))

    def test_backward_matches_formulas(self):
        torch.manual_seed(2)
        lm = LearnableMapping(7, 9, tau=0.3)
        x = binary(4, 7).requires_grad_()
        g = torch.randn(4, 9)
        lm(x).backward(g)
        w = lm.weights.detach()
        grad_w = torch.einsum("bi,bs->is", 2 * x.detach() - 1, g)
        probs = torch.exp(w / 0.3) / torch.exp(w / 0.3).sum(0, keepdim=True)
        grad_x = torch.einsum("bs,is->bi", g, probs)
        torch.testing.assert_close(lm.weights.grad, grad_w)
        torch.testing.assert_close(x.grad, grad_x)

    def test_backward_brute_force_loop(self):
        torch.manual_seed(3)
        lm = LearnableMapping(3, 4, tau=0.5)
        x = binary(2, 3, seed=3)
        g = torch.randn(2, 4)
        lm(x).backward(g)
        for i in range(3):
            for s in range(4):
                expected = sum((2 * x[b, i] - 1) * g[b, s] for b in range(2))
                assert torch.isclose(lm.weights.grad[i, s], expected)

    def test_default_tau_is_almost_one_hot(self):
        lm = LearnableMapping(50, 20)
        x = binary(3, 50).requires_grad_()
        g = torch.randn(3, 20)
        lm(x).backward(g)
        probs = torch.softmax(lm.weights.detach() / 0.001, dim=0)
        torch.testing.assert_close(x.grad, g @ probs.t())

    def test_grad_x_skipped_when_not_needed(self, monkeypatch):
        calls = []
        real_softmax = torch.softmax
        monkeypatch.setattr(
            torch, "softmax", lambda *a, **k: calls.append(1) or real_softmax(*a, **k)
        )
        lm = LearnableMapping(5, 6)
        lm(binary(2, 5)).sum().backward()
        assert lm.weights.grad is not None and calls == []
        x = binary(2, 5).requires_grad_()
        lm(x).sum().backward()
        assert x.grad is not None and calls == [1]

    def test_tau_gets_no_gradient(self):
        tau = torch.tensor(0.1, requires_grad=True)
        w = torch.rand(4, 3, requires_grad=True)
        x = binary(2, 4).requires_grad_()
        LearnableMappingFunction.apply(x, w, tau).sum().backward()
        assert tau.grad is None and w.grad is not None and x.grad is not None

    def test_batch_dims_are_flattened(self):
        lm = LearnableMapping(6, 4)
        x = torch.randn(2, 3, 6)
        out = lm(x)
        assert out.shape == (2, 3, 4)
        assert torch.equal(out, x[..., lm.weights.argmax(0)])

    def test_wrong_input_size(self):
        with pytest.raises(ShapeError, match="6"):
            LearnableMapping(6, 4)(torch.zeros(2, 5))

    @pytest.mark.parametrize("tau", [0, -1.0, True])
    def test_bad_tau(self, tau):
        with pytest.raises(ConfigError, match="tau"):
            LearnableMapping(3, 2, tau=tau)


class TestQuantizedMapping:
    """The learnable mapping as inference sees it: its argmax, one index per slot."""

    def test_quantized_weight_is_the_one_hot_argmax(self):
        mapping = LearnableMapping(9, 5)
        q = mapping.quantized_weight()
        assert q.shape == (9, 5) and torch.equal(q.sum(0), torch.ones(5))
        assert torch.equal(q.argmax(0), mapping.hard_mapping())
        x = torch.rand(4, 9)
        assert torch.equal(x @ q, mapping(x))

    def test_one_hot_weights_give_the_same_forward(self):
        mapping = LearnableMapping(600, 7)  # over 512 rows: the blocked argmax
        x = torch.rand(3, 600)
        before = mapping(x)
        mapping.weights.data.copy_(mapping.quantized_weight())
        assert torch.equal(mapping(x), before)

    @pytest.mark.parametrize(("size", "bits"), [(1, 1), (2, 1), (3, 2), (2048, 11), (2352, 12)])
    def test_index_bits(self, size, bits):
        assert index_bits(size) == bits
        assert LearnableMapping(size, 2).index_bits == bits

    def test_precision_and_packed_state(self):
        mapping = LearnableMapping(9, 5)
        assert mapping.param_precisions() == {"weights": (0, 0)}  # counted by the LUT layer
        entry = mapping.packed_state()["weights"]
        assert entry.one_hot and entry.size == 9 and entry.shape == (9, 5)
        assert torch.equal(entry.value, mapping.hard_mapping())


class TestColumnArgmax:
    def test_blocked_matches_argmax(self):
        w = torch.rand(1300, 50, generator=torch.Generator().manual_seed(4))
        w[700, 3] = 5.0  # a maximum in a later block
        assert torch.equal(_column_argmax(w), w.argmax(0))

    def test_ties_keep_first(self):
        w = torch.zeros(1300, 4)
        w[[10, 900], 0] = 1.0  # tie across blocks
        w[[600, 601], 1] = 1.0  # tie inside a block
        assert torch.equal(_column_argmax(w), w.argmax(0))
        assert _column_argmax(w)[:2].tolist() == [10, 600]

    def test_nan_is_maximal(self):
        w = torch.rand(1300, 3)
        w[1000, 0] = float("nan")
        w[5, 1] = float("nan")
        w[1200, 1] = float("nan")
        assert torch.equal(_column_argmax(w), w.argmax(0))
