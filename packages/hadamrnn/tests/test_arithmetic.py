"""The scoped matmul hook: the sequential engine and QLinear compute with it inside the block
only, with the same results for torch's own matmul; the parallel engine refuses it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from bnn_shared.errors import ConfigError
from bnn_shared.testing import relative_difference
from hadamrnn.arithmetic import Arithmetic, current_arithmetic, use_arithmetic
from hadamrnn.models import LinearRNN
from hadamrnn.quantized_layers import HadamardRecurrent, QLinear


def _recurrence(z, weight, bias):
    h, states = torch.zeros_like(z[:, 0]), []
    for z_t in z.unbind(1):
        h = h @ weight.t() + bias + z_t
        states.append(h)
    return torch.stack(states, 1)


def _outputs_and_grads(model, x, **forward):
    model.zero_grad()
    y = model(x, **forward)
    y.square().sum().backward()
    return y.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("recurrence", [None, _recurrence])
@pytest.mark.parametrize("many_to_many", [False, True])
def test_torch_matmuls_through_the_hook_change_nothing(recurrence, many_to_many):
    torch.manual_seed(0)
    model = LinearRNN(HadamardRecurrent(16), input_size=3, output_size=5, many_to_many=many_to_many)
    x = torch.randn(4, 20, 3)
    plain, plain_grads = _outputs_and_grads(model, x, engine="sequential")
    calls = []

    def linear(*args):
        calls.append(1)
        return F.linear(*args)

    with use_arithmetic(Arithmetic(linear=linear, recurrence=recurrence)):
        hooked, hooked_grads = _outputs_and_grads(model, x, engine="sequential")
    assert calls  # the hook was used
    assert relative_difference(hooked, plain) < 1e-5
    for got, want in zip(hooked_grads, plain_grads, strict=True):
        assert relative_difference(got, want) < 1e-5


def test_the_hook_is_scoped():
    layer = QLinear(3, 2, bits=None)
    x = torch.randn(5, 3)
    doubled = Arithmetic(linear=lambda x, w, b=None: 2 * F.linear(x, w, b))
    assert current_arithmetic() is None
    with pytest.raises(RuntimeError), use_arithmetic(doubled):
        assert current_arithmetic() is doubled
        torch.testing.assert_close(layer(x), 2 * F.linear(x, layer.weight, layer.bias))
        raise RuntimeError
    assert current_arithmetic() is None
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))


def test_the_parallel_engine_refuses_another_arithmetic():
    model = LinearRNN(HadamardRecurrent(8), input_size=1, output_size=2, engine="parallel")
    with (
        use_arithmetic(Arithmetic(linear=F.linear)),
        pytest.raises(ConfigError, match="sequential"),
    ):
        model(torch.zeros(1, 4, 1))
