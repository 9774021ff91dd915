"""Bit-aware summary (``bnn_shared.summary``) of the package's models: parameters per bit-width
(HadamRNN's signs at 1 bit, U and V at k bits, biases at 32), the recurrence's MACs per
sequence, and a snapshot of a small HadamRNN's tables (``BNN_UPDATE_SNAPSHOTS=1`` rewrites
it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from bnn_shared.config import to_dict
from bnn_shared.summary import summary
from hadamrnn import exporting
from hadamrnn.config import ModelConfig, load
from hadamrnn.models import LinearRNN
from hadamrnn.quantized_layers import HadamardRecurrent

SNAPSHOTS = Path(__file__).parent / "snapshots"
ROOT = Path(__file__).resolve().parents[3]


def _model(name: str = "hadamrnn", **overrides):
    return exporting.build(name, to_dict(ModelConfig(name=name, **overrides)))


def test_snapshot_small_hadamrnn():
    """HadamRNN, n = 16, 4-bit U and V, one pMNIST-like sequence of 784 pixels."""
    torch.manual_seed(0)
    model = LinearRNN(HadamardRecurrent(16), input_size=1, output_size=10, num_bits=4)
    text = str(summary(model, (784, 1), print_fn=None)) + "\n"
    path = SNAPSHOTS / "hadamrnn_n16_pmnist.txt"
    if os.environ.get("BNN_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def _rows(result) -> dict[str, object]:
    return {layer.name: layer for layer in result.layers}


def test_pmnist_hadamrnn_bit_widths_and_macs():
    """The paper's pMNIST model: 512 sign bits, 4-bit U (512) and V (5120), float biases
    (512 + 10): 4968 bytes, the spec's 4.98 kB less the two float scales of U and V."""
    model = _model(**to_dict(load(ROOT / "configs" / "hadamrnn" / "pmnist.yaml").model))
    result = summary(model, (784, 1), print_fn=None)
    rows = _rows(result)
    assert rows["recurrent"].params == {1: 512, 32: 512}
    assert rows["input_layer"].params == {4: 512}
    assert rows["output_layer"].params == {4: 5120, 32: 10}
    assert result.memory_bytes == (2048 + 512 + 16384 + 20480 + 320) / 8 == 4968
    # per sequence: 784 steps of U x_t (512 x 1) and W h (512 x 512), then V once (10 x 512)
    assert rows["model"].macs == {32: 784 * 512 * (1 + 512)}
    assert rows["output_layer"].macs == {32: 5120}


def test_block_hadamrnn_counts_the_nonzeros_of_w():
    result = summary(_model(hidden_size=64, basic_block=3), (50, 1), print_fn=None)
    assert _rows(result)["model"].macs == {32: 50 * 64 * (1 + 8)}
    assert _rows(result)["recurrent"].params == {1: 64, 32: 64}


def test_many_to_many_reads_out_every_step():
    model = _model(hidden_size=32, input_size=10, output_size=9, manytomany=True)
    rows = _rows(summary(model, (40, 10), print_fn=None))
    assert rows["output_layer"].macs == {32: 40 * 9 * 32}
    assert rows["input_layer"].params == {4: 320}


@pytest.mark.parametrize(
    ("name", "overrides", "recurrent"),
    [
        ("ornn", {"num_bits": None}, {32: 64 * 64 + 64}),
        ("qornn", {"recurrent_bits": 2}, {2: 64 * 64, 32: 64}),
        ("qornn", {"recurrent_bits": 1}, {2: 64 * 64, 32: 64}),
    ],
)
def test_baselines(name, overrides, recurrent):
    result = summary(_model(name, hidden_size=64, **overrides), (30, 1), print_fn=None)
    rows = _rows(result)
    found = {}
    for layer in result.layers:
        if layer.name.startswith("recurrent"):
            for bits, count in layer.params.items():
                found[bits] = found.get(bits, 0) + count
    assert found == recurrent
    u_bits = 32 if overrides.get("num_bits", 4) is None else 4
    assert rows["input_layer"].params == {u_bits: 64}
    assert rows["model"].macs == {32: 30 * 64 * (1 + 64)}


def test_lstm_and_token_inputs():
    lstm = summary(_model("lstm", hidden_size=32, num_bits=None), (20, 1), print_fn=None)
    assert _rows(lstm)["model"].macs == {32: 20 * 4 * 32 * (1 + 32)}
    assert lstm.memory_bytes == lstm.float32_bytes
    model = _model(hidden_size=32, input_size=8, output_size=1, vocab_size=50)
    result = summary(model, (12,), dtypes=[torch.long], print_fn=None)
    assert _rows(result)["embedding"].params == {32: 50 * 8}
    assert _rows(result)["model"].macs == {32: 12 * 32 * (8 + 32)}
