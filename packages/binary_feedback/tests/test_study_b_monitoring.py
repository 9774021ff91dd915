"""Study B's per-layer monitoring (spec A.6): hand-checked gradient norms, mean |grad| and
saturation on a tiny model; names not swapped (quirk 10); binarised bias-free layers listed
(quirk 28); ReLU6 not hooked; read at the first batch of an epoch in a run."""

from __future__ import annotations

import shlex

import pytest
import torch
from binary_feedback.commons.activations import SignSat
from binary_feedback.monitoring import LayerMonitor, gradient_modules
from binary_feedback.train import main
from binary_feedback.utils.binary import binarize_weights
from bnn_shared.cli import run_cli
from bnn_shared.testing import metric_rows
from torch import nn


def tiny() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(2, 2, bias=False), SignSat(), nn.Linear(2, 1), nn.ReLU6())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model[2].weight.fill_(1.0)
        model[2].bias.fill_(0.0)
    return model


def test_values_by_hand():
    model = tiny()
    x = torch.tensor([[2.0, 0.5], [-1.0, 0.25]])  # SignSat's input = x: 2 of 4 with |x| >= 1
    monitor = LayerMonitor(model, x)
    assert list(monitor.layers) == ["0", "2"]  # call order; ReLU6 and SignSat own nothing
    assert list(monitor.activations) == ["1"]  # ReLU6 is not hooked
    monitor.start()
    model[2].weight.grad = torch.tensor([[3.0, 4.0]])
    model[2].bias.grad = torch.tensor([0.0])
    model(x)
    row = monitor.read()
    assert row["monitor/2_grad_norm"] == pytest.approx(5.0)  # ||(3, 4, 0)||
    assert row["monitor/2_mean_abs_grad"] == pytest.approx(7.0 / 3)
    assert row["monitor/0_grad_norm"] == 0.0  # no grad present
    assert row["monitor/1_saturation"] == pytest.approx(0.5)
    assert row["monitor/average_saturation"] == pytest.approx(0.5)
    model(x * 10)  # not recording after read()
    assert "monitor/1_saturation" not in monitor.read()


def test_binarised_bias_free_layer_is_listed_with_its_latent_grad():
    model = tiny()
    binarize_weights(model)  # both Linears: the first owns no direct parameter any more
    x = torch.tensor([[2.0, 0.5]])
    assert list(gradient_modules(model, x)) == ["0", "2"]
    monitor = LayerMonitor(model, x)
    monitor.start()
    model(x).sum().backward()
    row = monitor.read()
    latent = model[0].parametrizations.weight.original.grad
    assert latent is not None
    assert row["monitor/0_grad_norm"] == pytest.approx(float(latent.norm()))


def test_monitor_run_logs_the_first_batch_values(tmp_path):
    argv = shlex.split(
        "--dataset digits --model FullyConnected --method dfa --binary-act --bs 64 --epochs 1 "
        f"--seed 0 --device cpu --quiet --monitor --out-dir {tmp_path}"
    )
    assert run_cli(main, argv) == 0
    row = metric_rows(tmp_path / "metrics.csv")[0]
    assert float(row["monitor/layers.1_grad_norm"]) > 0
    assert float(row["monitor/output_mean_abs_grad"]) > 0
    saturations = [key for key in row if key.endswith("_saturation")]
    assert "monitor/average_saturation" in saturations and len(saturations) == 5
    assert 0 <= float(row["monitor/average_saturation"]) <= 1
