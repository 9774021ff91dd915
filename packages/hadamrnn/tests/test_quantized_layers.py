"""Hadamard matrices and transforms, the sign-vector recurrent matrix, quantized layers."""

from __future__ import annotations

import math

import pytest
import torch
from bnn_shared.errors import ConfigError
from hadamrnn.quantized_layers import (
    HadamardRecurrent,
    OrthogonalRecurrent,
    QLinear,
    QuantizedOrthogonalRecurrent,
    block_size,
    fwht,
    hadamard_matrix,
)

VARIANTS = [(8, "full"), (64, "full"), (512, "full"), (64, 2), (128, 4), (512, 7)]


def _orthogonality_error(w: torch.Tensor) -> float:
    eye = torch.eye(len(w), dtype=w.dtype)
    return (w.t() @ w - eye).abs().max().item()


class TestHadamard:
    @pytest.mark.parametrize("n, block", VARIANTS)
    def test_symmetric_orthogonal_with_the_specified_entries(self, n, block):
        h = hadamard_matrix(n, block, dtype=torch.float64)
        size = block_size(n, block)
        assert torch.equal(h, h.t())
        assert _orthogonality_error(h) < 1e-12
        nonzero = h[h != 0].abs()
        assert torch.allclose(nonzero, torch.full_like(nonzero, size**-0.5))
        assert (h != 0).sum().item() == n * size  # density 2^k / n

    def test_sylvester_recursion(self):
        h2 = hadamard_matrix(2, "full", dtype=torch.float64) * math.sqrt(2)
        h4 = hadamard_matrix(4, "full", dtype=torch.float64) * 2
        assert torch.allclose(h4, torch.kron(h2, torch.tensor([[1.0, 1.0], [1.0, -1.0]]).double()))

    @pytest.mark.parametrize("n, block", [*VARIANTS, (2048, "full"), (16, 0)])
    def test_fwht_equals_the_dense_product(self, n, block):
        x = torch.randn(3, 5, n, dtype=torch.float64)
        dense = x @ hadamard_matrix(n, block, dtype=torch.float64)
        assert torch.allclose(fwht(x, block_size(n, block)), dense, atol=1e-12)

    @pytest.mark.parametrize("n, block", [(48, "full"), (64, 7), (64, 3.0), (64, "half")])
    def test_bad_sizes_are_config_errors(self, n, block):
        with pytest.raises(ConfigError, match="basic_block|power of two"):
            block_size(n, block)


class TestHadamardRecurrent:
    @pytest.mark.parametrize("n, block", VARIANTS)
    def test_w_is_orthogonal_for_every_sign_vector(self, n, block):
        layer = HadamardRecurrent(n, block).double()
        for trial in range(5):
            with torch.no_grad():
                layer.s.copy_(torch.randn(1, n, generator=torch.Generator().manual_seed(trial)))
            w = layer.weight()
            assert _orthogonality_error(w) < 1e-6  # H is stored in float32
            values = torch.linalg.svdvals(w)
            assert torch.allclose(values, torch.ones_like(values), atol=1e-6)

    def test_only_n_sign_bits_are_learnable_in_w(self):
        n = 32
        layer = HadamardRecurrent(n, bias=True)
        shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
        assert shapes == {"s": (1, n), "bias": (n,)}
        assert "hadamard" not in dict(layer.named_parameters())
        first = layer.weight().detach().clone()
        with torch.no_grad():  # new magnitudes, same signs: the same W
            layer.s.copy_(layer.s.sign() * torch.rand(1, n).add(0.01))
        assert torch.equal(layer.weight(), first)
        # W = diag(sign(s)) H: row i is sign(s_i) times row i of H
        assert torch.equal(first, layer.s.sign().reshape(-1, 1) * layer.hadamard)

    def test_sign_ste_passes_the_gradient_unchanged(self):
        layer = HadamardRecurrent(16)
        with torch.no_grad():
            layer.s.mul_(10)  # |s| > 1: the identity STE does not clip
        g = torch.randn(16, 16)
        (layer.weight() * g).sum().backward()
        expected = (g * layer.hadamard).sum(1)  # d/du_i of sum_j u_i H_ij g_ij
        assert torch.allclose(layer.s.grad.reshape(-1), expected, atol=1e-6)

    def test_sign_of_zero_is_plus_one(self):
        layer = HadamardRecurrent(8)
        with torch.no_grad():
            layer.s.zero_()
        assert torch.equal(layer.signs(), torch.ones(8))
        assert _orthogonality_error(layer.weight().double()) < 1e-6

    def test_xavier_init_and_bias_range(self):
        n = 512
        layer = HadamardRecurrent(n)
        bound = math.sqrt(6 / (n + 1))
        assert layer.s.abs().max() <= bound and layer.s.abs().max() > 0.9 * bound
        assert layer.bias.abs().max() <= 1 / math.sqrt(n)

    def test_clip_sign_option(self):
        layer = HadamardRecurrent(8, clip_sign=True)
        with torch.no_grad():
            layer.s.fill_(3.0)
        layer.apply_constraints_()
        assert layer.s.max() == 1.0

    @pytest.mark.parametrize("transform", ["fwht", "dense"])
    def test_step_is_the_product_with_w_transposed(self, transform):
        layer = HadamardRecurrent(64, 3, transform=transform).double()
        rec = layer.recurrence(torch.zeros(64, 1, dtype=torch.float64))
        h = torch.randn(7, 64, dtype=torch.float64)
        assert torch.allclose(rec.step(h), h @ layer.weight().t(), atol=1e-12)


class TestBaselines:
    @pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley", "householder"])
    def test_ornn_weight_is_orthogonal(self, orthogonal_map):
        w = OrthogonalRecurrent(32, orthogonal_map=orthogonal_map).weight().detach().double()
        assert _orthogonality_error(w) < 1e-5

    def test_ornn_rejects_an_unknown_map(self):
        with pytest.raises(ConfigError, match="orthogonal_map"):
            OrthogonalRecurrent(8, orthogonal_map="qr")

    def test_qornn_weight_is_quantized_and_nearly_orthogonal(self):
        layer = QuantizedOrthogonalRecurrent(64, bits=6)
        w = layer.weight().detach()
        assert len(torch.unique(w)) <= 2**6
        values = torch.linalg.svdvals(w.double())
        assert values.min() > 0.8 and values.max() < 1.2


class TestQLinear:
    def test_four_bit_levels(self):
        layer = QLinear(64, 16, bits=4)
        q = layer.quantized_weight().detach()
        alpha = layer.weight.abs().max().item()
        levels = torch.round(q / (alpha / 8))
        assert levels.min() >= -8 and levels.max() <= 7
        assert torch.allclose(q, levels * alpha / 8)
        assert len(torch.unique(q)) <= 16
        # every weight is rounded to its nearest level (the top one clipped at 7 alpha / 8)
        expected = torch.clamp(torch.round(layer.weight * 8 / alpha), -8, 7) * alpha / 8
        assert torch.allclose(q, expected.detach())

    def test_one_bit_is_ternary(self):
        q = QLinear(32, 8, bits=1).quantized_weight().detach()
        alpha = q.abs().max()
        assert set(torch.unique(q / alpha).tolist()) <= {-1.0, 0.0, 1.0}

    def test_float_when_bits_is_none_and_identity_gradient(self):
        layer = QLinear(4, 3, bits=None)
        assert layer.quantized_weight() is layer.weight
        quantized = QLinear(4, 3, bits=4)
        quantized.quantized_weight().sum().backward()
        assert torch.equal(quantized.weight.grad, torch.ones(3, 4))

    def test_init_square_orthogonal_else_xavier(self):
        square = QLinear(16, 16).weight.detach().double()
        assert _orthogonality_error(square) < 1e-6
        wide = QLinear(1, 512).weight
        assert wide.abs().max() <= math.sqrt(6 / 513)
