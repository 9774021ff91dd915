"""The two engines agree on outputs and gradients (relative difference <= 1e-4, float32)."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from bnn_shared.errors import ConfigError
from bnn_shared.testing import CPU_AND_CUDA, relative_difference
from hadamrnn.engines import ENGINES, chunk_length, parallel
from hadamrnn.models import LinearRNN
from hadamrnn.quantized_layers import (
    HadamardRecurrent,
    OrthogonalRecurrent,
    QuantizedOrthogonalRecurrent,
)


def _random_config(seed: int) -> dict:
    rng = random.Random(seed)
    n = rng.choice([16, 32, 64, 128])
    blocks = ["full", *range(1, n.bit_length() - 1)]
    return {
        "n": n,
        "block": rng.choice(blocks),
        "d": rng.choice([1, 3, 10, n + 5]),  # both kernel forms: on the inputs and the states
        "steps": rng.choice([1, 2, 7, 33, 64, 150]),
        "batch": rng.choice([1, 4, 9]),
        "bias": rng.random() < 0.8,
        "many_to_many": rng.random() < 0.5,
        "transform": rng.choice(["auto", "fwht", "dense"]),
        "bits": rng.choice([None, 2, 4]),
    }


def _outputs_and_gradients(model, x, engine):
    model.zero_grad()
    model.engine = engine
    y = model(x)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    (y * weights).sum().backward()
    grads = {
        n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for n, p in model.named_parameters()
    }
    return y.detach(), grads


def _assert_engines_agree(model, x):
    y_seq, g_seq = _outputs_and_gradients(model, x, "sequential")
    y_par, g_par = _outputs_and_gradients(model, x, "parallel")
    assert relative_difference(y_par, y_seq) <= 1e-4
    for name in g_seq:
        assert relative_difference(g_par[name], g_seq[name]) <= 1e-4, name


@pytest.mark.parametrize("seed", range(24))
def test_engines_agree_on_random_hadamard_configs(seed):
    cfg = _random_config(seed)
    torch.manual_seed(seed)
    recurrent = HadamardRecurrent(
        cfg["n"], cfg["block"], bias=cfg["bias"], transform=cfg["transform"]
    )
    model = LinearRNN(
        recurrent,
        input_size=cfg["d"],
        output_size=3,
        num_bits=cfg["bits"],
        many_to_many=cfg["many_to_many"],
    )
    x = torch.randn(cfg["batch"], cfg["steps"], cfg["d"])
    _assert_engines_agree(model, x)


@pytest.mark.parametrize("many_to_many", [False, True])
@pytest.mark.parametrize("block", ["full", 3])
def test_engines_agree_on_long_sequences(many_to_many, block):
    """784 steps: outputs agree; gradients are checked against a float64 run, because the
    float32 time loop's own rounding of the sign-vector gradient (a sum of 784 large terms)
    reaches ~3e-4 there, while the parallel engine stays within 1e-5."""
    torch.manual_seed(1)
    model = LinearRNN(
        HadamardRecurrent(64, block), input_size=1, output_size=10, many_to_many=many_to_many
    )
    _assert_engines_agree_against_float64(model, torch.rand(3, 784, 1))


def _assert_engines_agree_against_float64(model, x):
    y_seq, g_seq = _outputs_and_gradients(model, x, "sequential")
    y_par, g_par = _outputs_and_gradients(model, x, "parallel")
    y_ref, g_ref = _outputs_and_gradients(copy.deepcopy(model).double(), x.double(), "sequential")
    assert relative_difference(y_par, y_seq) <= 1e-4
    for name, reference in g_ref.items():
        assert relative_difference(g_par[name].double(), reference) <= 1e-4, name
        assert relative_difference(g_seq[name].double(), reference) <= 1e-3, name


@pytest.mark.parametrize(
    "layer", [lambda: OrthogonalRecurrent(32), lambda: QuantizedOrthogonalRecurrent(32, 4)]
)
@pytest.mark.parametrize("many_to_many", [False, True])
def test_engines_agree_on_the_baselines(layer, many_to_many):
    torch.manual_seed(2)
    model = LinearRNN(layer(), input_size=2, output_size=4, many_to_many=many_to_many)
    model.eval()  # QORNN's power iteration would advance between the two passes
    _assert_engines_agree(model, torch.randn(4, 40, 2))


def test_engines_agree_with_embeddings():
    torch.manual_seed(3)
    model = LinearRNN(HadamardRecurrent(32), input_size=16, output_size=1, vocab_size=50)
    tokens = torch.randint(0, 50, (5, 30))
    _assert_engines_agree(model, tokens)


def test_registry_and_errors():
    assert set(ENGINES) == {"sequential", "parallel"}
    assert ENGINES.get("parallel") is parallel
    with pytest.raises(ConfigError, match="unknown engine 'fast'"):
        ENGINES.get("fast")
    rec = HadamardRecurrent(8).recurrence(torch.zeros(8, 1))
    with pytest.raises(ConfigError, match="linear recurrence"):
        parallel(rec, torch.zeros(1, 3, 1), all_states=False, nonlinearity=torch.relu)


def test_chunk_length():
    assert chunk_length(1) == 1
    assert chunk_length(1000) == 22
    assert chunk_length(784) == 20


@pytest.mark.parametrize("device", CPU_AND_CUDA)
@pytest.mark.parametrize("many_to_many", [False, True])
def test_engines_agree_on_each_device(device, many_to_many):
    torch.manual_seed(4)
    model = LinearRNN(
        HadamardRecurrent(512, "full"), input_size=1, output_size=10, many_to_many=many_to_many
    ).to(device)
    _assert_engines_agree_against_float64(model, torch.rand(4, 100, 1, device=device))


@pytest.mark.parametrize("many_to_many", [False, True])
def test_sign_training_follows_the_same_path_with_both_engines(many_to_many):
    """Adam steps on every parameter, ``s`` included (the paper's sign training), flip the same
    signs and reach the same losses with either engine (float64, so that no latent sits within
    rounding of zero)."""
    torch.manual_seed(5)
    start = LinearRNN(
        HadamardRecurrent(32), input_size=2, output_size=3, many_to_many=many_to_many
    ).double()
    x = torch.randn(8, 60, 2, dtype=torch.float64)
    y = torch.randint(0, 3, (8, 60) if many_to_many else (8,))
    paths = {}
    for engine in ("sequential", "parallel"):
        model = copy.deepcopy(start)
        model.engine = engine
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses, signs = [], []
        for _ in range(15):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 3), y.reshape(-1))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            signs.append(model.recurrent.signs().detach().clone())
        paths[engine] = (torch.tensor(losses), torch.stack(signs))
    (loss_seq, signs_seq), (loss_par, signs_par) = paths["sequential"], paths["parallel"]
    initial = start.recurrent.signs().detach()
    assert (signs_seq != initial).any(), "the test needs sign flips to compare"
    assert torch.equal(signs_par, signs_seq)
    assert relative_difference(loss_par, loss_seq) <= 1e-8
