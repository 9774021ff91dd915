"""The package's HadamRNN equals a model written the way the reference computes it.

The check model below is written independently of the package, in the reference's idiom
(spec ``hadamrnn.md`` §2, §3.1): a dense ``W = D H`` with ``D = diag(sign(s))`` through an
identity STE, a Python loop ``h = F.linear(h, W, b) + F.linear(x_t, q(U))`` over time, the
read-out ``F.linear(relu(h_t), q(V), c)`` at every step, ``q`` the round-and-clamp quantizer
on ``2^(bits-1)`` levels per side with a float (gradient-free) scale, and the cross-entropy
over all positions. The sign (``+1`` at 0, identity gradient) and ``q`` are the core's
``bnn_shared.quantizers.sign`` and ``uniform``, whose formulas are the reference's (no
quantizer is defined in this package, tests included). Everything runs in float64 (the
Hadamard matrix is built in float32, as both codes build it), so agreement is to round-off
(1e-8). Parameters are copied from the package's model; the loss, every gradient and 30 Adam
steps of the copy-task paper config (signs trained, ``lr = 1e-4``) must agree, with both
engines. This pins what "the paper config" trains, independently of the engine tests, which
only compare the package with itself.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from bnn_shared.quantizers import sign, uniform
from bnn_shared.testing import relative_difference
from hadamrnn.config import load
from hadamrnn.dataset_tools import load_splits
from hadamrnn.getters import get_loss, get_model, get_optimizer

COPY = Path(__file__).resolve().parents[3] / "configs" / "hadamrnn" / "copy.yaml"


def _hadamard(n: int) -> torch.Tensor:
    """Normalised Sylvester matrix, built level by level in float32 as the reference does."""
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.kron(h, torch.tensor([[1.0, 1.0], [1.0, -1.0]])) * (1 / math.sqrt(2))
    return h


class _ReferenceShaped(torch.nn.Module):
    """Copy-task model computed as the reference does (loop, dense ``D H``, F.linear)."""

    def __init__(self, model, bits: int):
        super().__init__()
        self.bits = bits
        self.s = torch.nn.Parameter(model.recurrent.s.detach().clone())
        self.b = torch.nn.Parameter(model.recurrent.bias.detach().clone())
        self.u = torch.nn.Parameter(model.input_layer.weight.detach().clone())
        self.v = torch.nn.Parameter(model.output_layer.weight.detach().clone())
        self.c = torch.nn.Parameter(model.output_layer.bias.detach().clone())
        self.register_buffer("h_matrix", _hadamard(self.s.shape[1]).to(self.s.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.matmul(torch.diag(sign(self.s).view(-1)), self.h_matrix)
        u = uniform(self.u, self.bits)
        v = uniform(self.v, self.bits)
        h = x.new_zeros(x.shape[0], w.shape[0])
        outputs = []
        for x_t in torch.unbind(x, dim=1):
            h = F.linear(h, w, self.b) + F.linear(x_t, u)
            outputs.append(F.linear(torch.relu(h), v, self.c))
        return torch.stack(outputs, dim=1)

    def pairs(self, model):
        """(check parameter, package parameter) in a fixed order."""
        return [
            (self.s, model.recurrent.s),
            (self.b, model.recurrent.bias),
            (self.u, model.input_layer.weight),
            (self.v, model.output_layer.weight),
            (self.c, model.output_layer.bias),
        ]


def _copy_setup(engine: str, seq_length: int = 40):
    cfg = load(COPY, [f"DATASET.SEQ_LENGTH={seq_length}", f"MODEL.ENGINE={engine}"])
    torch.manual_seed(cfg.model.seed)
    model = get_model(cfg).double()
    sizes = ["DATASET.TRAIN=64", "DATASET.VAL=2", "DATASET.TEST=2"]
    splits = load_splits(load(COPY, [f"DATASET.SEQ_LENGTH={seq_length}", *sizes]).dataset)
    x, y = splits.train.batch(torch.arange(64))
    return cfg, model, x.double(), y


@pytest.mark.parametrize("engine", ["sequential", "parallel"])
def test_loss_and_every_gradient_match_the_reference_computation(engine):
    cfg, model, x, y = _copy_setup(engine)
    check = _ReferenceShaped(model, cfg.model.num_bits)
    loss_fn = get_loss(cfg)
    ours = loss_fn(model(x), y)
    theirs = F.cross_entropy(check(x).view(-1, 9), y.view(-1))
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-10)
    for mine, package in check.pairs(model):
        assert relative_difference(package.grad, mine.grad) <= 1e-8


@pytest.mark.parametrize("engine", ["sequential", "parallel"])
def test_adam_steps_of_the_paper_config_follow_the_reference_computation(engine):
    cfg, model, x, y = _copy_setup(engine)
    check = _ReferenceShaped(model, cfg.model.num_bits)
    assert cfg.train.lr == 1e-4 and cfg.train.sign_lr is None  # the paper config itself
    ours, theirs = get_optimizer(cfg, model), torch.optim.Adam(check.parameters(), lr=1e-4)
    loss_fn = get_loss(cfg)
    for step in range(30):
        rows = torch.arange(step % 4 * 16, step % 4 * 16 + 16)
        ours.zero_grad()
        loss_fn(model(x[rows]), y[rows]).backward()
        ours.step()
        theirs.zero_grad()
        F.cross_entropy(check(x[rows]).view(-1, 9), y[rows].view(-1)).backward()
        theirs.step()
    for mine, package in check.pairs(model):
        assert relative_difference(package.detach(), mine.detach()) <= 1e-8
    assert torch.equal(torch.sign(model.recurrent.s), torch.sign(check.s))
