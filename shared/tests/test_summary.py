"""Tests of the bit-aware model summary: counts against hand-computed values, and snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from bnn_shared.errors import ShapeError
from bnn_shared.layers import QuantConv2d, QuantLinear
from bnn_shared.summary import summary
from torch import nn

SNAPSHOTS = Path(__file__).parent / "snapshots"


def binary_cnn() -> nn.Sequential:
    return nn.Sequential(
        QuantConv2d(1, 8, 3, padding=1, bias=False, kernel_quantizer="ste_sign"),
        nn.BatchNorm2d(8),
        nn.MaxPool2d(2),
        QuantConv2d(8, 16, 3, bias=False, input_quantizer="ste_sign", kernel_quantizer="ste_tern"),
        nn.Flatten(),
        QuantLinear(16 * 2 * 2, 10, input_quantizer="ste_sign", kernel_quantizer="ste_sign"),
    )


def assert_matches_snapshot(text: str, name: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text + "\n")
    assert path.exists(), f"missing snapshot {path}; create it with UPDATE_SNAPSHOTS=1"
    assert text + "\n" == path.read_text(), f"summary output changed; see {path}"


class TestCounts:
    def test_binary_cnn_totals(self):
        stats = summary(binary_cnn(), (1, 8, 8), print_fn=None)
        conv1, conv2, fc = 8 * 9, 16 * 8 * 9, 64 * 10
        # 32-bit: batch norm's gamma, beta and running mean and variance (16 + 16), fc bias
        assert stats.params == {1: conv1 + fc, 2: conv2, 32: 32 + 10}
        assert stats.memory_bytes == (conv1 + fc + 2 * conv2 + 32 * 42) / 8
        assert stats.float32_bytes == 4 * (conv1 + conv2 + fc + 42)
        # conv1: float input -> 32-bit MACs on 8x8 outputs; conv2 binary input x ternary
        # weights -> 2-bit MACs on 2x2 outputs; fc binary x binary -> 1-bit MACs.
        assert stats.macs == {32: conv1 * 64, 2: conv2 * 4, 1: fc}
        assert stats.mac_ratio(1) == pytest.approx(fc / (conv1 * 64 + conv2 * 4 + fc))
        assert stats.trainable_params == stats.total_params - 16  # the running statistics

    def test_plain_module_counts_as_32_bit(self):
        model = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))
        stats = summary(model, (5,), print_fn=None)
        assert stats.params == {32: 5 * 3 + 3 + 3 * 2 + 2}
        assert stats.macs == {32: 15 + 6}
        assert stats.compression_ratio == 1.0

    def test_tied_weights_count_once(self):
        shared = nn.Linear(4, 4)
        model = nn.Sequential(shared, nn.Tanh(), shared)
        assert summary(model, (4,), print_fn=None).total_params == 20

    def test_frozen_params_are_non_trainable(self):
        model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        model[0].requires_grad_(False)
        stats = summary(model, (4,), print_fn=None)
        assert stats.trainable_params == 10 and stats.total_params == 30

    def test_custom_layer_protocol(self):
        class Binary(nn.Module):
            def __init__(self):
                super().__init__()
                self.s = nn.Parameter(torch.ones(6))

            def param_precisions(self):
                return {"s": 1}

            def summary_macs(self, inputs, output):
                return [(1, 36)]

            def forward(self, x):
                return x * self.s

        stats = summary(Binary(), (6,), print_fn=None)
        assert stats.params == {1: 6} and stats.macs == {1: 36}

    def test_integer_inputs(self):
        model = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(12, 2))
        stats = summary(model, (3,), dtypes=[torch.long], print_fn=None)
        assert stats.total_params == 80 + 26

    def test_needs_an_input(self):
        with pytest.raises(ShapeError, match="input_size"):
            summary(nn.Linear(2, 2), print_fn=None)

    def test_bad_shape_is_a_clear_error(self):
        with pytest.raises(ShapeError, match="forward pass failed"):
            summary(nn.Linear(2, 2), (3,), print_fn=None)

    def test_restores_training_mode(self):
        model = binary_cnn().train()
        summary(model, (1, 8, 8), print_fn=None)
        assert model.training


class TestSnapshot:
    def test_binary_cnn_tables(self):
        lines: list[str] = []
        summary(binary_cnn(), (1, 8, 8), print_fn=lines.append)
        assert_matches_snapshot(lines[0], "summary_binary_cnn.txt")

    def test_float_mlp_tables(self):
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
        text = str(summary(model, (1, 8, 8), print_fn=None))
        assert_matches_snapshot(text, "summary_float_mlp.txt")


class TestOtherQuantizedLayers:
    def test_parametrized_weight_counts_at_the_quantizer_precision(self):
        from bnn_shared import quantizers
        from torch.nn.utils import parametrize

        model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))
        parametrize.register_parametrization(model[0], "weight", quantizers.SteSign(zero=-1))
        stats = summary(model, (8,), print_fn=None)
        assert stats.params == {1: 32, 32: 4 + 8 + 2}
        assert [layer.name for layer in stats.layers] == ["0", "1"]
        assert stats.layers[0].macs == {32: 32}  # float inputs: 32-bit MACs

    def test_weight_precision_attribute(self):
        layer = nn.Linear(8, 4, bias=False)
        layer.weight_precision = 2
        stats = summary(nn.Sequential(layer), (8,), print_fn=None)
        assert stats.params == {2: 32} and stats.memory_bytes == 8

    def test_layers_the_forward_pass_does_not_call_are_listed(self):
        class Reads(nn.Module):
            def __init__(self):
                super().__init__()
                self.W = nn.ModuleList([nn.Linear(6, 3), nn.Linear(3, 2)])

            def forward(self, x):
                return x @ self.W[0].weight.t() @ self.W[1].weight.t()

        stats = summary(Reads(), (6,), print_fn=None)
        assert [layer.name for layer in stats.layers] == ["W.0", "W.1"]
        assert stats.total_params == 18 + 3 + 6 + 2 and stats.total_macs == 0
        assert stats.layers[0].output_shape is None


class TestInputPrecisionFromTheProducer:
    def test_a_sign_activation_module_makes_the_next_layers_macs_binary(self):
        from bnn_shared import quantizers

        class SignAct(nn.Module):
            precision = 1

            def forward(self, x):
                return quantizers.sign(x)

        model = nn.Sequential(
            nn.Linear(8, 4),
            SignAct(),
            nn.Flatten(),
            QuantLinear(4, 2, kernel_quantizer="ste_sign"),
            nn.Linear(2, 2),
        )
        stats = summary(model, (8,), print_fn=None)
        by_name = {layer.name: layer for layer in stats.layers}
        assert by_name["3"].input_precision == 1 and by_name["3"].macs == {1: 8}
        assert by_name["0"].macs == {32: 32} and by_name["4"].macs == {32: 4}

    def test_parametrization_wins_over_a_quant_layers_float_kernel(self):
        from bnn_shared import quantizers
        from torch.nn.utils import parametrize

        layer = QuantLinear(4, 2, bias=False)
        parametrize.register_parametrization(layer, "weight", quantizers.SteSign())
        stats = summary(nn.Sequential(layer), (4,), print_fn=None)
        assert stats.params == {1: 8}


def test_param_precisions_can_give_a_shipped_count():
    class Chooser(nn.Module):
        """A latent (6, 4) choice matrix shipped as 4 indices of 3 bits."""

        def __init__(self):
            super().__init__()
            self.choice = nn.Parameter(torch.randn(6, 4))
            self.latent = nn.Parameter(torch.randn(5))

        def forward(self, x):
            return x[:, self.choice.argmax(0)]

        def param_precisions(self):
            return {"choice": (3, 4), "latent": (0, 0)}

    stats = summary(Chooser(), (6,), print_fn=None)
    assert stats.params == {3: 4} and stats.total_params == 4
    assert stats.memory_bytes == 1.5 and stats.float32_bytes == 16


def test_declared_buffers_are_counted():
    class Thresholds(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("thresholds", torch.randn(7))
            self.register_buffer("cache", torch.randn(100))  # not declared: not counted

        def forward(self, x):
            return (x > self.thresholds).float()

        def param_precisions(self):
            return {"thresholds": 32}

    stats = summary(Thresholds(), (7,), print_fn=None)
    assert stats.params == {32: 7} and stats.trainable_params == 0


def test_a_model_that_counts_its_own_macs_is_listed():
    class Engine(nn.Module):
        """Reads its layers' weights instead of calling them; counts its MACs itself."""

        def __init__(self):
            super().__init__()
            self.cell = nn.Linear(3, 3)

        def forward(self, x):
            return x @ self.cell.weight.t() @ self.cell.weight.t()

        def summary_macs(self, inputs, output):
            return [(32, 2 * 9)]

    stats = summary(Engine(), (3,), print_fn=None)
    assert [layer.name for layer in stats.layers] == ["model", "cell"]
    assert stats.macs == {32: 18} and stats.total_params == 12
