"""Model shapes and read-outs: many-to-one, many-to-many, embeddings, baselines."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.errors import ConfigError
from hadamrnn.extra_layers import ModReLU
from hadamrnn.models import LinearRNN, LSTMModel
from hadamrnn.quantized_layers import HadamardRecurrent


def _model(**kwargs) -> LinearRNN:
    return LinearRNN(
        HadamardRecurrent(16), input_size=kwargs.pop("input_size", 3), output_size=5, **kwargs
    )


def test_many_to_one_and_many_to_many_shapes():
    x = torch.randn(4, 9, 3)
    assert _model()(x).shape == (4, 5)
    assert _model(many_to_many=True)(x).shape == (4, 9, 5)


def test_many_to_one_reads_the_last_step_of_many_to_many():
    torch.manual_seed(0)
    model = _model()
    x = torch.randn(2, 7, 3)
    last = model(x)
    model.many_to_many = True
    assert torch.allclose(model(x)[:, -1], last, atol=1e-5)


def test_recurrence_is_linear_and_relu_only_on_the_readout():
    torch.manual_seed(0)
    model = _model(num_bits=None)
    x = torch.randn(2, 6, 3)
    h = model.hidden_states(x, all_states=True)
    w, u, b = model.recurrent.weight(), model.input_layer.weight, model.recurrent.bias
    expected = torch.zeros(2, 16)
    for t in range(6):
        expected = expected @ w.t() + x[:, t] @ u.t() + b
        assert torch.allclose(h[:, t], expected, atol=1e-5)
    assert (h < 0).any()  # no ReLU inside the recurrence
    v, c = model.output_layer.weight, model.output_layer.bias
    assert torch.allclose(model(x), torch.relu(h[:, -1]) @ v.t() + c, atol=1e-5)


def test_embedding_front_end_and_readouts():
    tokens = torch.tensor([[0, 0, 5, 6], [0, 7, 8, 9]])
    for readout in ("last_position", "last_token", "mean"):
        model = _model(input_size=8, vocab_size=10, readout=readout)
        assert model(tokens).shape == (2, 5)
    model = _model(input_size=8, vocab_size=10)
    assert model.embedding.padding_idx == 0
    with pytest.raises(ConfigError, match="readout"):
        _model(readout="first")


def test_last_token_readout_skips_trailing_padding():
    torch.manual_seed(0)
    model = _model(input_size=4, vocab_size=10, readout="last_token")
    padded = torch.tensor([[3, 4, 0, 0]])
    h = model.hidden_states(padded, all_states=True)
    expected = model.output_layer(torch.relu(h[:, 1]))
    assert torch.allclose(model(padded), expected, atol=1e-6)


def test_nonlinear_recurrence_runs_sequentially():
    model = _model(linear_recurrent=False)
    h = model.hidden_states(torch.randn(2, 5, 3), all_states=True)
    assert (h >= 0).all()


def test_lstm_shapes():
    assert LSTMModel(input_size=3, hidden_size=8, output_size=4)(torch.randn(2, 6, 3)).shape == (
        2,
        4,
    )
    model = LSTMModel(input_size=3, hidden_size=8, output_size=4, many_to_many=True)
    assert model(torch.randn(2, 6, 3)).shape == (2, 6, 4)


def test_chosen_activation_is_fed_back_and_read_out():
    """``linear_recurrent=False`` feeds the model's activation back (ReLU by default, bit for
    bit the former ``torch.relu``); ``output_layer`` replaces ``V``."""
    torch.manual_seed(1)
    act = ModReLU(16)
    with torch.no_grad():
        act.b.fill_(-0.05)
    output = torch.nn.Linear(16, 5)
    model = _model(linear_recurrent=False, activation=act, output_layer=output, num_bits=None)
    assert model.output_layer is output and model.activation is act
    x = torch.randn(2, 6, 3)
    w, u, b = model.recurrent.weight(), model.input_layer.weight, model.recurrent.bias
    h = torch.zeros(2, 16)
    for t in range(6):
        h = act(h @ w.t() + x[:, t] @ u.t() + b)
    assert torch.allclose(model.hidden_states(x, all_states=False), h, atol=1e-6)
    assert torch.allclose(model(x), output(act(h)), atol=1e-6)
    assert (h < 0).any()  # modrelu keeps signs, unlike the default ReLU
