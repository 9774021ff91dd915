"""The four networks: shapes, dynamics, the EP theorem, the flip update, BPTT."""

from __future__ import annotations

import shlex

import pytest
import torch
from bnn_shared.errors import ConfigError
from eqprop_binary import network as network_module
from eqprop_binary.main import build_parser, settings_from_args
from eqprop_binary.network import (
    ACTIVATIONS,
    NETWORKS,
    NetworkConvBinWN,
    NetworkFcBinW,
    build_network,
)
from eqprop_binary.settings import CHOICES, Settings
from eqprop_binary.tools import METHODS
from eqprop_readme_commands import COMMANDS

INPUTS = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "digits": (1, 8, 8)}


def settings(command: str, **changes) -> Settings:
    """The validated settings of ``command`` with ``changes`` applied (validated together)."""
    args = build_parser().parse_args(shlex.split(command))
    vars(args).update(changes)
    return settings_from_args(args)


def network(cfg: Settings):
    shape = INPUTS[cfg.dataset]
    return build_network(cfg, shape if cfg.archi == "conv" else (shape[0] * shape[1] ** 2,))


EXPECTED_SHAPES = {
    "fc1_bin_W_ep": [(10,), (4096,)],
    "fc2_bin_W_ep": [(10,), (4096,), (4096,)],
    "conv_mnist_bin_W_ep": [(10,), (64, 7, 7), (32, 14, 14)],
    "conv_cifar_bin_W_ep": [(10,), (256, 2, 2), (256, 4, 4), (128, 8, 8), (64, 16, 16)],
    "fc1_bin_W_N_ep": [(100,), (8192,)],
    "fc2_bin_W_N_ep": [(8000,), (8192,), (8192,)],
    "conv_mnist_bin_W_N_ep": [(700,), (512, 2, 2), (256, 8, 8)],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SHAPES))
def test_state_shapes_of_every_readme_architecture(name):
    torch.manual_seed(0)
    cfg = settings(COMMANDS[name], device="cpu")
    net = network(cfg)
    x = torch.rand(2, *INPUTS[cfg.dataset])
    x = x.flatten(1) if cfg.archi == "fc" else x
    state = net.init_hidden(x)
    hidden = state.s[:-1] if cfg.archi == "fc" else state.s
    assert [tuple(t.shape[1:]) for t in hidden] == EXPECTED_SHAPES[name]
    ctx = net.prepare(x)
    stepped = net.stepper(state, ctx)
    assert [t.shape for t in stepped.s] == [t.shape for t in state.s]
    init = 1.0 if cfg.binary_activations else (0.5 if cfg.archi == "conv" else 0.0)
    assert all(torch.all(t == init) for t in hidden)


def test_conv_bin_W_N_classifier_maps_2048_to_700():
    net = network(settings(COMMANDS["conv_mnist_bin_W_N_ep"]))
    assert tuple(net.fc[0].weight.shape) == (700, 2048)
    assert net.conv_sizes == [6, 26] and net.pool_sizes == [2, 8]
    # bin_W_N starts with zero biases and binary weights scaled per output channel
    assert all(not layer.bias.detach().any() for layer in net.weight_layers())


def test_weights_are_alpha_times_sign_with_xnor_init():
    torch.manual_seed(0)
    net = network(settings(COMMANDS["conv_mnist_bin_W_ep"]))
    for i, layer in enumerate(net.weight_layers()):
        w = layer.weight.detach()
        alpha = net.alpha_of(i)
        scale = alpha.view(-1, *([1] * (w.dim() - 1))) if w.dim() == 4 else alpha
        assert torch.equal(w.abs(), scale.expand_as(w))
    # fan_in 784 -> about 1 / (2 sqrt(784)) = 0.0179 (spec table)
    fc = network(settings(COMMANDS["fc1_bin_W_ep"]))
    assert fc.alpha_values()[1] == pytest.approx(0.0179, abs=2e-4)
    assert fc.alpha_values()[0] == pytest.approx(0.0078, abs=2e-4)


def test_fc_bin_W_step_matches_the_formula():
    torch.manual_seed(0)
    cfg = settings(
        "--archi fc --layersList 6 5 4 --gamma 1e-3 1e-3 --gradThreshold 0 0 "
        "--lrBias 0.1 0.1 --expand_output 1 --learnAlpha 0",
        layersList=[6, 5, 10],
    )
    net = NetworkFcBinW(cfg)
    x = torch.rand(3, 6)
    s = [torch.rand(3, 10), torch.rand(3, 5), x]
    y = torch.eye(10)[:3]
    new = net.stepper(type(net.init_hidden(x))(list(s)), net.prepare(x), target=y, beta=0.5).s
    w0, w1 = net.W[0], net.W[1]
    out = (torch.clamp(w0(s[1]), 0, 1) + 0.5 * (y - s[0])).clamp(0, 1)
    hidden = torch.clamp(w1(x) + s[0] @ w0.weight, 0, 1)
    torch.testing.assert_close(new[0], out)
    torch.testing.assert_close(new[1], hidden)
    assert new[2] is x


def test_fc_bin_W_N_step_is_a_leaky_binary_update():
    torch.manual_seed(0)
    cfg = settings(COMMANDS["fc1_bin_W_N_ep"], layersList=[6, 8, 100], gamma_neur=0.3)
    net = build_network(cfg, (6,))
    x = torch.rand(2, 6)
    s = [torch.rand(2, 100), torch.rand(2, 8), x]
    y = torch.zeros(2, 100)
    y[:, :10] = 1
    state = type(net.init_hidden(x))(list(s))
    new = net.stepper(state, net.prepare(x), target=y, beta=2.0).s
    a0, a1 = (s[0] >= 0.5).float(), (s[1] >= 0.5).float()
    pre0 = net.W[0](a1) + 2.0 * (y - s[0])
    pre1 = net.W[1](x) + a0 @ net.W[0].weight
    torch.testing.assert_close(new[0], (0.7 * s[0] + 0.3 * pre0).clamp(0, 1))
    torch.testing.assert_close(new[1], (0.7 * s[1] + 0.3 * pre1).clamp(0, 1))
    # the reference's nudge towards the free-phase output
    net.cfg.nudge = "free"
    pred = torch.rand(2, 100)
    new = net.stepper(type(state)(list(s)), net.prepare(x), target=y, beta=2.0, pred=pred).s
    pre0 = net.W[0](a1) + 2.0 * (y - pred)
    torch.testing.assert_close(new[0], (0.7 * s[0] + 0.3 * pre0).clamp(0, 1))


def test_rhop_gate_is_applied_when_theta_is_not_one_half():
    torch.manual_seed(0)
    cfg = settings(COMMANDS["fc1_bin_W_N_ep"], layersList=[6, 8, 100], rho_threshold=0.1)
    net = build_network(cfg, (6,))
    assert not net.gate_is_one
    x = torch.rand(2, 6)
    s = [torch.rand(2, 100), torch.rand(2, 8), x]
    new = net.stepper(type(net.init_hidden(x))(list(s)), net.prepare(x)).s
    a0, a1 = (s[0] >= 0.1).float(), (s[1] >= 0.1).float()
    gate0 = ((s[0] - 0.1).abs() <= 0.5).float()
    pre0 = gate0 * net.W[0](a1)
    torch.testing.assert_close(new[0], (0.5 * s[0] + 0.5 * pre0).clamp(0, 1))
    assert a0.shape == s[0].shape


def _tiny_full_precision(archi_args: str, **changes):
    cfg = settings(archi_args, **changes)
    net = network(cfg) if cfg.archi == "conv" else build_network(cfg, (cfg.layersList[0],))
    net.double()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in net.weight_layers():
            # full-precision weights, small enough for the synchronous dynamics to converge
            # (not oscillate), and biases that keep the neurons in hardsigm's linear part:
            # the nudge is added after the activation, so an output unit saturated at 0
            # moves under nudging although its gradient is 0 (EP and the gradient differ
            # there; with weights 0.3 / sqrt(fan_in) the agreement drops to 91 %)
            fan_in = layer.weight[0].numel()
            w = torch.randn(layer.weight.shape, generator=generator, dtype=torch.float64)
            layer.weight.copy_(0.2 * w / fan_in**0.5)
            b = torch.randn(layer.bias.shape, generator=generator, dtype=torch.float64)
            layer.bias.copy_(0.5 + 0.1 * b)
    return net


def _ep_vs_autograd(net, x, y):
    beta = 1e-3
    with torch.no_grad():
        ctx = net.prepare(x)
        free = net.forward(net.init_hidden(x), ctx)
        nudged = net.forward(free.copy(), ctx, beta=beta, target=y)
        net.compute_gradient(nudged, free, ctx, beta)
    ep = [layer.weight.grad.clone() for layer in net.weight_layers()]
    for layer in net.weight_layers():
        layer.weight.grad = None
        layer.bias.grad = None
    # autograd of the loss at the free fixed point: unroll the converged dynamics
    free = net.forward(net.init_hidden(x), net.prepare(x), optim="bptt")
    loss = ((free.s[0] - y) ** 2).sum() / (2 * x.shape[0])
    loss.backward()
    agree = total = 0
    for estimate, layer in zip(ep, net.weight_layers(), strict=True):
        true = layer.weight.grad
        mask = true.abs() > 1e-6 * true.abs().max()
        agree += (torch.sign(estimate[mask]) == torch.sign(true[mask])).sum().item()
        total += mask.sum().item()
    return agree / total, total


def test_ep_theorem_fc():
    """For small beta the EP estimate is the gradient of the loss at the free fixed point."""
    torch.manual_seed(0)
    net = _tiny_full_precision(
        "--archi fc --layersList 8 12 10 --gamma 1e-3 1e-3 --gradThreshold 0 0 "
        "--lrBias 0 0 --learnAlpha 0 --T 300 --Kmax 200",
        T=300,
        Kmax=200,
    )
    x = torch.rand(16, 8, dtype=torch.float64)
    y = torch.eye(10, dtype=torch.float64)[torch.randint(0, 10, (16,))]
    agreement, entries = _ep_vs_autograd(net, x, y)
    assert entries > 50
    assert agreement >= 0.9


def test_ep_theorem_conv():
    torch.manual_seed(0)
    net = _tiny_full_precision(
        "--archi conv --dataset digits --layersList 10 --convList 4 3 1 --padding 1 "
        "--kernelSize 3 --Fpool 2 --classi_gamma 1e-3 --conv_gamma 1e-3 1e-3 "
        "--classi_threshold 0 --conv_threshold 0 0 --lrBias 0 0 0 --learnAlpha 0",
        T=300,
        Kmax=200,
        clamp_output=1,
    )
    x = torch.rand(8, 1, 8, 8, dtype=torch.float64)
    y = torch.eye(10, dtype=torch.float64)[torch.randint(0, 10, (8,))]
    agreement, entries = _ep_vs_autograd(net, x, y)
    assert entries > 50
    assert agreement >= 0.9


def test_update_flips_weights_and_counts_them():
    torch.manual_seed(0)
    cfg = settings(
        "--archi fc --layersList 6 5 10 --gamma 1 1 --gradThreshold 1e-3 1e-3 "
        "--lrBias 0.1 0.1 --learnAlpha 0 --T 5 --Kmax 3"
    )
    net = build_network(cfg, (6,))
    before = [layer.weight.detach().clone() for layer in net.weight_layers()]
    x = torch.rand(4, 6)
    y = torch.eye(10)[:4]
    with torch.no_grad():
        ctx = net.prepare(x)
        free = net.forward(net.init_hidden(x), ctx)
        nudged = net.forward(free.copy(), ctx, beta=0.5, target=y)
        net.compute_gradient(nudged, free, ctx, 0.5)
        expected = [
            (torch.sign(w) * layer.weight.grad > 1e-3)  # gamma 1: m = grad
            for w, layer in zip(before, net.weight_layers(), strict=True)
        ]
        net.update_weights(nudged, free, ctx, 0.5)
    for w, layer, flip in zip(before, net.weight_layers(), expected, strict=True):
        assert torch.equal(layer.weight, torch.where(flip, -w, w))
        assert net.bop.flips(layer.weight) == int(flip.sum())
        assert layer.weight.grad is None
    assert sum(int(f.sum()) for f in expected) > 0


def test_learnt_alpha_changes_the_scale_not_the_signs():
    torch.manual_seed(0)
    cfg = settings(
        "--archi fc --layersList 6 5 10 --gamma 1e-9 1e-9 --gradThreshold 1 1 "
        "--lrBias 0 0 --learnAlpha 1 --lrAlpha 1 1 --T 5 --Kmax 3"
    )
    net = build_network(cfg, (6,))
    signs = [torch.sign(layer.weight.detach()) for layer in net.weight_layers()]
    alphas = net.alpha_values()
    x, y = torch.rand(4, 6), torch.eye(10)[:4]
    with torch.no_grad():
        ctx = net.prepare(x)
        free = net.forward(net.init_hidden(x), ctx)
        nudged = net.forward(free.copy(), ctx, beta=0.5, target=y)
        net.update_weights(nudged, free, ctx, 0.5)
    assert net.alpha_values() != alphas
    for sign, layer, alpha in zip(signs, net.weight_layers(), net.alpha_values(), strict=True):
        assert torch.equal(torch.sign(layer.weight), sign)
        torch.testing.assert_close(layer.weight.abs(), torch.full_like(layer.weight, alpha))


def test_conv_bin_W_N_seeds_momentum_with_noise():
    torch.manual_seed(0)
    cfg = settings(COMMANDS["conv_mnist_bin_W_N_ep"], convList=[8, 4, 1], layersList=[700])
    net = network(cfg)
    assert isinstance(net, NetworkConvBinWN)
    x, y = torch.rand(2, 1, 28, 28), torch.zeros(2, 700)
    with torch.no_grad():
        ctx = net.prepare(x)
        free = net.forward(net.init_hidden(x), ctx)
        nudged = net.forward(free.copy(), ctx, beta=1.0, target=y)
        net.compute_gradient(nudged, free, ctx, 1.0)
        grads = [layer.weight.grad.clone() for layer in net.weight_layers()]
        net.update_weights(nudged, free, ctx, 1.0)
    for layer, grad in zip(net.weight_layers(), grads, strict=True):
        gamma = 5e-8
        noise = (net.bop.momentum(layer.weight) - gamma * grad) / ((1 - gamma) * 2 * gamma)
        assert 0.5 < float(noise.std()) < 1.5  # N(0, 1) seed


@pytest.mark.parametrize("name", ["fc1_bin_W_bptt", "conv_mnist_bin_W_bptt"])
def test_bptt_fills_gradients_of_every_layer(name):
    torch.manual_seed(0)
    changes = {"T": 6, "Kmax": 3}
    if "conv" in name:
        changes["convList"] = [4, 3, 1]
    else:
        changes["layersList"] = [784, 32, 10]
    cfg = settings(COMMANDS[name], **changes)
    net = network(cfg)
    x = torch.rand(3, 1, 28, 28)
    x = x.flatten(1) if cfg.archi == "fc" else x
    free = net.forward(net.init_hidden(x), net.prepare(x), optim="bptt")
    ((free.s[0] - torch.eye(10)[:3]) ** 2).sum().backward()
    for layer in net.weight_layers():
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


# -- registries -----------------------------------------------------------------------------


@pytest.mark.parametrize("archi", CHOICES["archi"])
@pytest.mark.parametrize("binary", CHOICES["binary_settings"])
def test_every_archi_and_binary_setting_has_a_registered_network(archi, binary):
    command = (
        "--archi fc --layersList 6 5 10 --gamma 1e-3 1e-3 --gradThreshold 0 0 --lrBias 0 0"
        if archi == "fc"
        else "--archi conv --layersList 10 --convList 3 1 --padding 1 --kernelSize 3 "
        "--classi_gamma 1e-3 --conv_gamma 1e-3 --classi_threshold 0 --conv_threshold 0 --lrBias 0 0"
    )
    cfg = settings(f"{command} --binary_settings {binary} --learnAlpha 0 --T 2 --Kmax 1")
    net = build_network(cfg, (6,) if archi == "fc" else (1, 8, 8))
    reference_name = f"Network_{archi}_{binary}"
    assert type(net) is NETWORKS.get(reference_name) is getattr(network_module, reference_name)
    x = torch.rand(2, 6) if archi == "fc" else torch.rand(2, 1, 8, 8)
    out = net.forward(net.init_hidden(x), net.prepare(x)).s[0]
    assert out.shape == (2, 10)
    assert sorted(NETWORKS.names()) == sorted(
        f"{a}_{b}".lower() for a in CHOICES["archi"] for b in CHOICES["binary_settings"]
    )


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activations_map_to_unit_range_and_their_window_is_where_rhop_is_one(name):
    rho, rhop, (low, high) = ACTIVATIONS.get(name)
    x = torch.linspace(-2, 2, 401)
    assert float(rho(x).min()) >= 0 and float(rho(x).max()) <= 1
    inside = (x >= low) & (x <= high)
    assert torch.equal(rhop(x), inside.float())


def test_registries_match_the_choices_of_the_settings():
    assert set(ACTIVATIONS.names()) == set(CHOICES["activationFun"])
    assert set(METHODS.names()) == set(CHOICES["optim"])
    with pytest.raises(ConfigError, match="unknown activation 'relu' \\(--activationFun\\)"):
        ACTIVATIONS.get("relu")
