"""Study A's layers: binary weights with latent STEs (core quantizers), batch norm, weight
clipping (the core's clip_weights_ with each study's selection)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from binary_feedback.commons.layers import (
    BinaryLinear,
    StudyABatchNorm1d,
    is_binarized,
    is_linear,
    latent_weight,
    weight_quantizer,
)
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError
from bnn_shared.layers import clip_weights_
from bnn_shared.summary import summary
from torch import nn

W = [-1.5, -1.0, -0.3, 0.0, 0.3, 1.0, 1.5]
STE_MASKS = {
    ("identity", True): [1.0] * 7,
    ("sat", True): [0, 0, 1, 1, 1, 0, 0],
    ("sat", False): [0, 1, 1, 1, 1, 1, 0],
}


def sign_ref(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, 1.0, -1.0).to(w.dtype)


class TestWeightQuantizer:
    @pytest.mark.parametrize(("ste", "strict"), sorted(STE_MASKS))
    def test_value_and_mask(self, ste, strict):
        w = torch.tensor(W, requires_grad=True)
        q = weight_quantizer(ste, strict)(w)
        q.backward(torch.full_like(q, 3.0))
        assert q.tolist() == [-1, -1, -1, -1, 1, 1, 1]
        assert w.grad.tolist() == [3.0 * m for m in STE_MASKS[ste, strict]]

    def test_tanh_ste(self):
        w = torch.tensor(W, dtype=torch.float64, requires_grad=True)
        weight_quantizer("tanh")(w).sum().backward()
        torch.testing.assert_close(w.grad, 1 - torch.tanh(w.detach()) ** 2)

    @pytest.mark.parametrize(
        ("ste", "strict", "cls", "config"),
        [
            ("identity", True, quantizers.Sign, {"zero": -1}),
            ("sat", True, quantizers.SteSign, {"clip_value": 1.0, "zero": -1, "strict": True}),
            ("sat", False, quantizers.SteSign, {"clip_value": 1.0, "zero": -1, "strict": False}),
            ("tanh", True, quantizers.TanhSign, {"zero": -1}),
        ],
    )
    def test_core_quantizer_classes(self, ste, strict, cls, config):
        quantizer = weight_quantizer(ste, strict)
        assert type(quantizer) is cls and quantizer.get_config() == config
        assert quantizer.precision == 1

    def test_unknown_ste(self):
        with pytest.raises(ConfigError, match="identity, sat, tanh"):
            weight_quantizer("hard")


class TestBinaryLinear:
    @pytest.mark.parametrize("ste", ["identity", "sat", "tanh"])
    def test_forward_uses_sign_and_gradient_reaches_latent(self, ste):
        torch.manual_seed(0)
        layer = BinaryLinear(5, 3, weight_ste=ste, init=1.5, dtype=torch.float64)
        with torch.no_grad():
            layer.weight[0, 0] = 0.0  # sign(0) = -1
        x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
        g = torch.randn(4, 3, dtype=torch.float64)
        y = layer(x)
        y.backward(g)
        wb = sign_ref(layer.weight.detach())
        assert set(layer.quantized_weight().unique().tolist()) == {-1.0, 1.0}
        assert layer.quantized_weight()[0, 0].item() == -1.0
        torch.testing.assert_close(y, x.detach() @ wb.T)
        torch.testing.assert_close(x.grad, g @ wb)  # the error flows down through sign(W)
        w = layer.weight.detach()
        mask = {
            "identity": torch.ones_like(w),
            "sat": (w.abs() < 1).to(w.dtype),
            "tanh": 1 - torch.tanh(w) ** 2,
        }[ste]
        torch.testing.assert_close(layer.weight.grad, (g.T @ x.detach()) * mask)

    def test_continuous(self):
        layer = BinaryLinear(5, 3, binarize=False)
        x = torch.randn(2, 5)
        assert layer.kernel_quantizer is None
        torch.testing.assert_close(layer(x), x @ layer.weight.T)

    @pytest.mark.parametrize("init", [0.1, 1e-3])
    def test_uniform_init_without_bias(self, init):
        layer = BinaryLinear(300, 200, init=init)
        assert layer.bias is None
        assert layer.weight.abs().max() <= init
        assert layer.weight.abs().max() > 0.9 * init  # fills the interval

    def test_summary_counts_one_bit_weights(self):
        model = nn.Sequential(BinaryLinear(8, 4), BinaryLinear(4, 2, binarize=False))
        stats = summary(model, input_size=(8,), print_fn=None)
        assert stats.params == {1: 32, 32: 8}


class TestStudyABatchNorm:
    def test_training_forward_and_backward_match_batch_norm(self):
        torch.manual_seed(0)
        bn = StudyABatchNorm1d(6, dtype=torch.float64)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
        x = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_(True)
        g = torch.randn(10, 6, dtype=torch.float64)
        bn(x).backward(g)
        gamma = bn.weight.detach().clone().requires_grad_(True)
        beta = bn.bias.detach().clone().requires_grad_(True)
        expected = F.batch_norm(x_ref, None, None, gamma, beta, training=True, eps=1e-3)
        expected.backward(g)
        mean, var = x.detach().mean(0), x.detach().var(0, unbiased=False)
        manual = gamma.detach() * (x.detach() - mean) / torch.sqrt(var + 1e-3) + beta.detach()
        torch.testing.assert_close(expected.detach(), manual)
        torch.testing.assert_close(x.grad, x_ref.grad)
        torch.testing.assert_close(bn.weight.grad, gamma.grad)
        torch.testing.assert_close(bn.bias.grad, beta.grad)

    def test_running_stats_start_from_first_batch_then_ema(self):
        bn = StudyABatchNorm1d(3, dtype=torch.float64)
        a, b = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64) + 2
        bn(a)
        torch.testing.assert_close(bn.running_mean, a.mean(0))
        torch.testing.assert_close(bn.running_var, a.var(0, unbiased=False))
        bn(b)
        torch.testing.assert_close(bn.running_mean, 0.9 * a.mean(0) + 0.1 * b.mean(0))
        expected_var = 0.9 * a.var(0, unbiased=False) + 0.1 * b.var(0, unbiased=False)
        torch.testing.assert_close(bn.running_var, expected_var)
        assert bn.num_batches_tracked.item() == 2

    def test_eval_uses_running_stats(self):
        bn = StudyABatchNorm1d(3)
        bn(torch.randn(8, 3) * 3 + 1)
        bn.eval()
        x = torch.randn(2, 3)
        before = bn.running_mean.clone()
        expected = (x - bn.running_mean) / torch.sqrt(bn.running_var + 1e-3)
        torch.testing.assert_close(bn(x), expected)
        assert torch.equal(bn.running_mean, before)

    def test_parameters(self):
        bn = StudyABatchNorm1d(5)
        assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
        assert "running_mean" in bn.state_dict()


class TestClipping:
    def model(self) -> nn.Sequential:
        model = nn.Sequential(
            BinaryLinear(4, 4, init=3.0),
            StudyABatchNorm1d(4),
            BinaryLinear(4, 2, binarize=False, init=3.0),
        )
        with torch.no_grad():
            model[1].weight.fill_(5.0)
        return model

    def test_study_a_clips_every_linear(self):
        model = clip_weights_(self.model(), 0.5, select=is_linear)
        assert model[0].weight.abs().max() == 0.5 and model[2].weight.abs().max() == 0.5
        assert model[1].weight.max() == 5.0  # norm parameters are not weights

    def test_only_binary(self):
        model = clip_weights_(self.model(), 1.0, select=is_binarized)
        assert model[0].weight.abs().max() == 1.0
        assert model[2].weight.abs().max() > 1.0

    def test_clipping_keeps_values_inside(self):
        model = self.model()
        inside = model[0].weight.clamp(-0.5, 0.5)
        clip_weights_(model, 0.5, select=is_linear)
        assert torch.equal(model[0].weight, inside)

    def test_positive_clip_value(self):
        with pytest.raises(ConfigError):
            clip_weights_(self.model(), 0.0, select=is_linear)

    def test_is_binarized_and_latent_weight(self):
        model = self.model()
        assert [is_binarized(m) for m in model] == [True, False, False]
        assert latent_weight(model[0]) is model[0].weight
        model[0].kernel_quantizer = quantizers.NoOp(precision=1)  # a reloaded export
        assert not is_binarized(model[0])
