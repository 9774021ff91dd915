"""Training rules against hand-computed updates on toy networks (float64, a few units)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from binary_feedback.commons import BinaryLinear, SignSat, StudyABatchNorm1d
from binary_feedback.training import (
    BP,
    DFA,
    DRTP,
    HSIC,
    RULES,
    STUDY_A,
    STUDY_B,
    Regime,
    SigpropTL,
    available_rules,
    get_regime,
    get_rule,
    local_blocks,
    output_layer,
    weight_layers,
)
from binary_feedback.training.base import broadcast_signal, feature_size, feedback_matrix
from binary_feedback.training.regimes import DRTP_TARGETS, FEEDBACK_INITS, LOSSES
from binary_feedback.training.sigprop import pair_layers
from bnn_shared.errors import CheckpointError, ConfigError, ShapeError
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual

C = 3  # classes of every toy problem
REGIMES = {"study_a": STUDY_A, "study_b": STUDY_B}


class RecordGrads:
    """Stub optimizer: ``zero_grad`` clears the grads, ``step`` records them (no update)."""

    def __init__(self, model: nn.Module) -> None:
        self.params = dict(model.named_parameters())
        self.grads: dict[str, torch.Tensor | None] = {}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def step(self) -> None:
        self.grads = {n: None if p.grad is None else p.grad.clone() for n, p in self.params.items()}


def toy(regime: Regime) -> nn.Sequential:
    """Study A: Linear(4,5) -> Tanh -> Linear(5,3) -> Tanh, no bias; study B: Linear -> ReLU
    -> Linear (logits), with biases."""
    torch.manual_seed(1)
    if regime is STUDY_A:
        layers = [nn.Linear(4, 5, bias=False), nn.Tanh(), nn.Linear(5, C, bias=False), nn.Tanh()]
    else:
        layers = [nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, C)]
    return nn.Sequential(*layers).double()


def batch(shape: tuple[int, ...] = (6, 4)) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(2)
    return torch.randn(*shape, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])


def hidden(model: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First layer's pre-activation z1 and the derivative act'(z1) of the toy's activation."""
    z1 = model[0](x)
    if isinstance(model[1], nn.Tanh):
        return z1, 1 - torch.tanh(z1) ** 2
    return z1, (z1 > 0).double()


def true_grads(model: nn.Module, regime: Regime, x, y) -> dict[str, torch.Tensor]:
    """Backprop gradients of the regime's loss, by plain autograd on a copy."""
    clone = copy.deepcopy(model)
    regime.training_loss(clone(x), y).backward()
    return {n: p.grad for n, p in clone.named_parameters()}


def run_step(rule, model, x, y) -> tuple[RecordGrads, dict[str, float]]:
    opt = RecordGrads(model)
    metrics = rule.step(model, x, y, opt)
    return opt, metrics


# ---------------------------------------------------------------------------- regimes


class TestRegimes:
    def test_study_a_targets_and_losses(self):
        out = torch.tensor([[0.5, -0.2, 0.1], [0.0, 0.3, -0.9]], dtype=torch.float64)
        y = torch.tensor([0, 2])
        t = torch.tensor([[1.0, -1, -1], [-1, -1, 1]], dtype=torch.float64)
        assert STUDY_A.training_loss(out, y).item() == pytest.approx(((out - t) ** 2).sum())
        assert STUDY_A.logged_loss(out, y).item() == pytest.approx(((out - t) ** 2).mean())
        out.requires_grad_(True)
        (e,) = torch.autograd.grad(STUDY_A.training_loss(out, y), out)
        torch.testing.assert_close(e, 2 * (out.detach() - t))  # per sample, not averaged
        onehot = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
        torch.testing.assert_close(STUDY_A.target_signal(y, 3, torch.float32), onehot)

    def test_study_b_targets_and_losses(self):
        out = torch.randn(4, 3)
        y = torch.tensor([0, 1, 2, 1])
        assert STUDY_B.training_loss(out, y).item() == pytest.approx(F.cross_entropy(out, y))
        assert STUDY_B.logged_loss(out, y).item() == pytest.approx(F.cross_entropy(out, y))
        centred = F.one_hot(y, 3).float() - 1 / 3
        torch.testing.assert_close(STUDY_B.target_signal(y, 3, torch.float32), centred)

    def test_presets_name_the_studies_choices(self):
        assert (STUDY_A.feedback_init, STUDY_A.optimizer) == ("uniform", "SGD")
        assert (STUDY_B.feedback_init, STUDY_B.optimizer) == ("normal", "Adam")
        assert get_regime("Study_A") is STUDY_A and get_regime(STUDY_B) is STUDY_B

    def test_invalid_regime_names_the_key(self):
        with pytest.raises(ConfigError, match="drtp_target"):
            Regime("x", "cross_entropy", "normal", "plusminus", "Adam")
        with pytest.raises(ConfigError, match="regime"):
            get_regime("study_c")


class TestRegimeRegistries:
    @pytest.mark.parametrize("name", FEEDBACK_INITS.names())
    def test_every_feedback_init_fills_a_matrix(self, name):
        matrix = feedback_matrix(C, 5, name.upper(), torch.zeros(1, dtype=torch.float64))
        assert matrix.shape == (C, 5) and matrix.dtype == torch.float64
        assert torch.isfinite(matrix).all() and matrix.abs().sum() > 0

    @pytest.mark.parametrize("name", LOSSES.names())
    def test_every_loss_gives_a_finite_objective_and_logged_loss(self, name):
        out, y = torch.randn(4, C), torch.tensor([0, 1, 2, 1])
        assert all(torch.isfinite(fn(out, y)) for fn in LOSSES.get(name))

    @pytest.mark.parametrize("name", DRTP_TARGETS.names())
    def test_every_drtp_target_has_one_row_per_sample(self, name):
        target = DRTP_TARGETS.get(name)(torch.tensor([0, 2]), C, torch.float32)
        assert target.shape == (2, C) and target.argmax(-1).tolist() == [0, 2]

    @pytest.mark.parametrize("name", REGIMES)
    def test_every_regime_by_name_in_any_case(self, name):
        assert get_regime(name.upper()) is REGIMES[name]


# ---------------------------------------------------------------------------- registry


class TestRegistry:
    @pytest.mark.parametrize(
        "name, cls",
        [
            ("GD", BP),
            ("bp", BP),
            ("Dfa", DFA),
            ("DRTP", DRTP),
            ("hsic", HSIC),
            ("PEPITA", SigpropTL),
        ],
    )
    def test_names_are_case_insensitive_with_aliases(self, name, cls):
        assert type(get_rule(name, regime="study_b", num_classes=C)) is cls

    def test_available_rules(self):
        assert available_rules() == sorted([*RULES, *RULES.aliases()])
        assert RULES.aliases() == {"gd": "bp", "pepita": "sigprop"}
        assert {"gd", "pepita", "sigprop", "bp"} <= set(available_rules())

    def test_unknown_name_and_option(self):
        with pytest.raises(ConfigError, match="unknown training method"):
            get_rule("spsa2", regime=STUDY_B, num_classes=C)
        with pytest.raises(ConfigError, match="'gamma'"):
            get_rule("dfa", regime=STUDY_B, num_classes=C, gamma=2.0)
        with pytest.raises(ConfigError, match="bw_init"):
            get_rule("drtp", regime=STUDY_B, num_classes=C, bw_init="xavier")
        with pytest.raises(ConfigError, match="num_classes"):
            get_rule("bp", regime=STUDY_B, num_classes=1)
        with pytest.raises(ConfigError, match="needs the option 'num_classes'"):
            get_rule("bp", regime=STUDY_B)

    def test_repr_shows_options(self):
        rule = get_rule("dfa", regime="study_a", num_classes=C, bw_init="kaiming_normal")
        assert repr(rule) == (
            "DFA(regime=study_a, num_classes=3, bw_init=kaiming_normal, detach=False)"
        )


# ---------------------------------------------------------------------------- model interface


class TestModelInterface:
    def test_weight_and_output_layers(self):
        model = toy(STUDY_A)
        assert list(weight_layers(model)) == ["0", "2"]
        assert output_layer(model) is model[2]
        model.output_layer_name = "0"
        assert output_layer(model) is model[0]
        model.output_layer_name = "9"
        with pytest.raises(ConfigError, match="output_layer_name"):
            output_layer(model)

    def test_local_blocks(self):
        block = Residual(4)
        model = nn.Sequential(block, InvertedResidual(4, 4, 1, 2))
        assert list(local_blocks(model)) == ["0", "1"]

    @pytest.mark.parametrize("shape, size", [((2, 7), 7), ((2, 5, 7), 7), ((2, 7, 3, 3), 7)])
    def test_feature_axis_and_broadcast(self, shape, size):
        h = torch.zeros(shape)
        assert feature_size(h) == size
        signal = torch.arange(2 * size, dtype=torch.float32).view(2, size)
        spread = broadcast_signal(signal, h)
        assert spread.shape == h.shape
        feature_first = spread if h.dim() != 3 else spread.transpose(1, 2)
        torch.testing.assert_close(feature_first.reshape(2, size, -1)[..., -1], signal)

    def test_feature_axis_rejects_5d(self):
        with pytest.raises(ShapeError):
            feature_size(torch.zeros(1, 1, 1, 1, 1))


# ---------------------------------------------------------------------------- rules vs hand math


@pytest.mark.parametrize("regime", [STUDY_A, STUDY_B], ids=["study_a", "study_b"])
class TestTwoLayerUpdates:
    def test_bp_equals_autograd(self, regime):
        model, (x, y) = toy(regime), batch()
        expected = true_grads(model, regime, x, y)
        opt, metrics = run_step(get_rule("bp", regime=regime, num_classes=C), model, x, y)
        for name, grad in expected.items():
            torch.testing.assert_close(opt.grads[name], grad)
        out = model(x)
        assert metrics["loss"] == pytest.approx(regime.logged_loss(out, y).item())
        assert metrics["correct"] == (out.argmax(1) == y).sum().item()

    def test_dfa_equals_hand_rule(self, regime):
        model, (x, y) = toy(regime), batch()
        expected_head = true_grads(model, regime, x, y)["2.weight"]
        rule = get_rule("dfa", regime=regime, num_classes=C)
        opt, _ = run_step(rule, model, x, y)
        out = model(x).detach().requires_grad_(True)
        (e,) = torch.autograd.grad(regime.training_loss(out, y), out)
        B = rule.matrices["2"]
        assert list(rule.matrices) == ["2"] and B.shape == (C, 5)
        z1, act_grad = hidden(model, x)
        torch.testing.assert_close(opt.grads["0.weight"], ((e @ B) * act_grad).T @ x)
        torch.testing.assert_close(opt.grads["2.weight"], expected_head)

    def test_drtp_equals_hand_rule(self, regime):
        model, (x, y) = toy(regime), batch()
        expected_head = true_grads(model, regime, x, y)["2.weight"]
        rule = get_rule("drtp", regime=regime, num_classes=C)
        opt, _ = run_step(rule, model, x, y)
        s = F.one_hot(y, C).double() - (0 if regime is STUDY_A else 1 / C)
        P = rule.matrices["2"]
        z1, act_grad = hidden(model, x)
        torch.testing.assert_close(opt.grads["0.weight"], ((s @ P) * act_grad).T @ x)
        torch.testing.assert_close(opt.grads["2.weight"], expected_head)

    def test_feedback_matrix_distribution(self, regime):
        torch.manual_seed(0)
        rule = get_rule("dfa", regime=regime, num_classes=C)
        wide = nn.Sequential(nn.Linear(4, 4000), nn.Tanh(), nn.Linear(4000, C)).double()
        run_step(rule, wide, *batch())
        B = rule.matrices["2"]
        if regime is STUDY_A:  # U(-1, 1): bounded, variance 1/3
            assert B.abs().max() <= 1 and B.var().item() == pytest.approx(1 / 3, rel=0.05)
        else:  # N(0, 1)
            assert B.abs().max() > 1 and B.var().item() == pytest.approx(1.0, rel=0.05)


def test_dfa_sgd_step_moves_weights_by_minus_grad():
    model, (x, y) = toy(STUDY_A), batch()
    rule = get_rule("dfa", regime=STUDY_A, num_classes=C)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    rule.step(model, x, y, opt)
    for p, old in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), old - p.grad)


def test_dfa_detached_variant_equals_default_without_skips():
    x, y = batch()
    grads = []
    for detach in (False, True):
        torch.manual_seed(3)
        rule = get_rule("dfa", regime=STUDY_B, num_classes=C, detach=detach)
        grads.append(run_step(rule, toy(STUDY_B), x, y)[0].grads)
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name])


def test_dfa_on_a_declared_chain_skips_the_hooks_with_the_same_gradients():
    """A model with ``feedback_chain = True`` (study A's MLP) is trained the detached way:
    no full backward hook is registered, and the gradients equal the hooked rule's."""
    from binary_feedback.models import MLP

    x = torch.randn(16, 1, 6, 6)
    y = torch.arange(16) % C
    grads = []
    for chain in (False, True):
        torch.manual_seed(5)
        model = MLP(36, C, hidden=[12, 8], bn=True, hidden_act="signsat")
        model.feedback_chain = chain
        rule = get_rule("dfa", regime=STUDY_A, num_classes=C)
        result = run_step(rule, model, x, y)[0].grads
        hooks = sum(len(m._backward_hooks) for m in model.modules())
        assert rule._cut is chain and (hooks == 0) is chain
        grads.append(result)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name


def test_dfa_repeats_signal_over_tokens_conv1d_included():
    """3-D inputs (N, tokens, features): matrices map to the last dim, Conv1d included."""
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv1d(3, 5, 1), nn.GELU(), nn.Conv1d(5, 3, 1), nn.Linear(4, 4), nn.GELU(),
        nn.Flatten(), nn.Linear(12, C),
    ).double()  # fmt: skip
    x, y = batch((6, 3, 4))
    rule = get_rule("dfa", regime=STUDY_B, num_classes=C)
    opt, _ = run_step(rule, model, x, y)
    assert {k: tuple(v.shape) for k, v in rule.matrices.items()} == {
        "2": (C, 4),
        "3": (C, 4),
        "6": (C, 12),
    }
    out = model(x).detach().requires_grad_(True)
    (e,) = torch.autograd.grad(STUDY_B.training_loss(out, y), out)
    h1 = model[1](model[0](x))  # (6, 5, 4): the signal e @ B is repeated over the 5 tokens
    signal = (e @ rule.matrices["2"])[:, None, :].expand_as(h1)
    (expected,) = torch.autograd.grad(h1, model[0].weight, signal)
    torch.testing.assert_close(opt.grads["0.weight"], expected)


def test_dfa_switches_inplace_off():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(inplace=True), nn.Linear(5, C)).double()
    run_step(get_rule("dfa", regime=STUDY_B, num_classes=C), model, *batch())
    assert model[1].inplace is False


def test_hooks_act_only_inside_step():
    model, (x, y) = toy(STUDY_B), batch()
    rule = get_rule("drtp", regime=STUDY_B, num_classes=C)
    run_step(rule, model, x, y)
    expected = true_grads(model, STUDY_B, x, y)
    model.zero_grad()
    STUDY_B.training_loss(model(x), y).backward()  # a plain pass after the step is plain BP
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name])
    rule.remove_hooks()
    assert not model[2]._forward_pre_hooks


# ---------------------------------------------------------------------------- SigpropTL


def sigprop_expected(model, x, y, rule, modulated=False):
    """Hand-computed SigpropTL grads of the first layer of a Linear -> ReLU -> Linear toy."""
    out = model(x).detach().requires_grad_(True)
    (e,) = torch.autograd.grad(STUDY_B.training_loss(out, y), out)
    feedback = rule.matrices["F"] * (rule.gain if rule.gain_mode == "fixed" else 1.0)
    x_err = x + e @ feedback
    delta = torch.relu(model[0](x)) - torch.relu(model[0](x_err))
    pre = x_err if modulated else x
    return delta.T @ pre, delta.sum(0)


class TestSigprop:
    def test_step_equals_hand_rule_and_sign(self):
        model, (x, y) = toy(STUDY_B), batch()
        before = copy.deepcopy(model)
        head = true_grads(model, STUDY_B, x, y)
        rule = get_rule("pepita", regime=STUDY_B, num_classes=C)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        rule.step(model, x, y, opt)
        assert rule.matrices["F"].shape == (C, 4)
        grad_w, grad_b = sigprop_expected(before, x, y, rule)
        assert grad_w.abs().sum() > 0
        # PEPITA's sign: W -= lr (h - h_err) x^T
        torch.testing.assert_close(model[0].weight, before[0].weight - 0.5 * grad_w)
        torch.testing.assert_close(model[0].bias, before[0].bias - 0.5 * grad_b)
        torch.testing.assert_close(model[2].weight, before[2].weight - 0.5 * head["2.weight"])

    @pytest.mark.parametrize("presynaptic", ["clean", "modulated"])
    def test_gain_modes_and_presynaptic(self, presynaptic):
        model, (x, y) = toy(STUDY_B), batch()
        grads = {}
        for mode in ("reference", "fixed"):
            torch.manual_seed(5)
            options = {"gain": 30.0, "gain_mode": mode, "presynaptic": presynaptic}
            rule = get_rule("sigprop", regime=STUDY_B, num_classes=C, **options)
            opt, _ = run_step(rule, model, x, y)
            expected, _ = sigprop_expected(model, x, y, rule, presynaptic == "modulated")
            torch.testing.assert_close(opt.grads["0.weight"], expected)
            grads[mode] = opt.grads["0.weight"]
        assert not torch.allclose(grads["reference"], grads["fixed"])  # the gain now counts

    def test_f_is_normal_with_variance_one_over_d(self):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(2000, C)).double()
        rule = get_rule("sigprop", regime=STUDY_B, num_classes=C, gain=0.01)
        x = torch.randn(6, 2, 1000, dtype=torch.float64)
        run_step(rule, model, x, batch()[1])
        assert rule.matrices["F"].var().item() == pytest.approx(1 / 2000, rel=0.05)

    @pytest.mark.parametrize("kind", ["conv2d", "conv1d", "tokens"])
    def test_layer_scalings(self, kind):
        """Conv2d: / (H x W); Conv1d: / length; Linear on tokens: / out_features."""
        torch.manual_seed(6)
        first, shape, scale, width = {
            "conv2d": (nn.Conv2d(2, 3, 3, padding=1), (6, 2, 4, 4), 16, 48),
            "conv1d": (nn.Conv1d(2, 3, 3), (6, 2, 5), 3, 9),
            "tokens": (nn.Linear(4, 3), (6, 2, 4), 3, 6),
        }[kind]
        model = nn.Sequential(first, nn.ReLU(), nn.Flatten(), nn.Linear(width, C)).double()
        x, y = batch(shape)
        rule = get_rule("sigprop", regime=STUDY_B, num_classes=C, gain=100.0, gain_mode="fixed")
        opt, _ = run_step(rule, model, x, y)
        out = model(x).detach().requires_grad_(True)
        (e,) = torch.autograd.grad(STUDY_B.training_loss(out, y), out)
        x_err = x + (e @ (100 * rule.matrices["F"])).view_as(x)
        z = first(x)
        delta = (torch.relu(z) - torch.relu(first(x_err))).detach()
        expected_w, expected_b = torch.autograd.grad(z, [first.weight, first.bias], delta)
        assert delta.abs().sum() > 0
        torch.testing.assert_close(opt.grads["0.weight"], expected_w / scale)
        torch.testing.assert_close(opt.grads["0.bias"], expected_b)

    def test_pairs_with_activation_or_itself(self):
        model = nn.Sequential(
            nn.Linear(4, 5), nn.Linear(5, 5), StudyABatchNorm1d(5), SignSat(),
            nn.Linear(5, C), nn.Tanh(),
        ).double()  # fmt: skip
        pairs = pair_layers(model, batch()[0], model[4])
        assert pairs == {model[0]: model[0], model[1]: model[3]}

    @pytest.mark.parametrize("train_norm_affine", [False, True])
    def test_norm_affine_option(self, train_norm_affine):
        model = conv_toy()
        x, y = batch((6, 2, 5, 5))
        rule = get_rule(
            "sigprop", regime=STUDY_B, num_classes=C, gain=1e3, gain_mode="fixed",
            train_norm_affine=train_norm_affine, second_pass="eval",
        )  # fmt: skip
        opt, _ = run_step(rule, model, x, y)
        assert (opt.grads["1.weight"] is not None) is train_norm_affine
        assert all(opt.grads[n] is not None for n in ("0.weight", "3.weight", "7.weight"))

    def test_second_pass_mode(self):
        model, (x, y) = conv_toy(), batch((6, 2, 5, 5))
        stats = model[1].running_mean.clone()
        run_step(get_rule("sigprop", regime=STUDY_B, num_classes=C), model, x, y)
        assert not torch.equal(stats, model[1].running_mean)  # train mode: 2N-batch stats
        stats = model[1].running_mean.clone()
        rule = get_rule("sigprop", regime=STUDY_B, num_classes=C, second_pass="eval")
        run_step(rule, model, x, y)
        torch.testing.assert_close(stats, model[1].running_mean)
        assert model.training


# ---------------------------------------------------------------------------- every rule


class Residual(nn.Module):
    """A residual block marked as one local problem."""

    local_block = True

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def conv_toy() -> nn.Sequential:
    torch.manual_seed(7)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Flatten(), nn.Linear(100, C),
    ).double()  # fmt: skip


def residual_toy() -> nn.Sequential:
    torch.manual_seed(8)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), InvertedResidual(4, 4, 1, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), Residual(4),
        nn.Linear(4, C),
    ).double()  # fmt: skip


def binary_toy() -> nn.Sequential:
    """Study A's binary layers: sign weights (identity STE), study-A BN, SignSat, tanh head."""
    torch.manual_seed(9)
    return nn.Sequential(
        BinaryLinear(4, 5, bias=False, binarize=True, init=0.1), StudyABatchNorm1d(5),
        SignSat(), BinaryLinear(5, C, bias=False, init=0.1), nn.Tanh(),
    ).double()  # fmt: skip


MODELS = {
    "conv": (conv_toy, (6, 2, 5, 5)),
    "residual": (residual_toy, (6, 2, 4, 4)),
    "binary_mlp": (binary_toy, (6, 4)),
}


#: The rules whose step is a function of the batch and the matrices (study B's ls and SPSA
#: rules pick one module at random per step; tests/test_rules_extra.py covers them).
GRADIENT_RULES = [name for name in RULES if name not in ("ls", "spsa", "spsah", "spsag")]


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("name", GRADIENT_RULES)
@pytest.mark.parametrize("regime", [STUDY_A, STUDY_B], ids=["study_a", "study_b"])
def test_every_rule_runs_one_step(name, model_name, regime):
    factory, shape = MODELS[model_name]
    model, (x, y) = factory(), batch(shape)
    before = copy.deepcopy(model.state_dict())
    rule = get_rule(name, regime=regime, num_classes=C)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    metrics = rule.step(model, x, y, opt)
    assert set(metrics) >= {"loss", "correct"} and 0 <= metrics["correct"] <= len(y)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    head = [n for n, m in model.named_modules() if m is output_layer(model)][0]
    assert f"{head}.weight" in changed
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", GRADIENT_RULES)
def test_state_dict_round_trip(name):
    x, y = batch((6, 2, 5, 5))
    model = conv_toy()
    twin = copy.deepcopy(model)
    rule = get_rule(name, regime=STUDY_B, num_classes=C)
    first, _ = run_step(rule, model, x, y)
    state = rule.state_dict()
    assert state["rule"] == name
    resumed = get_rule(name, regime=STUDY_B, num_classes=C)
    resumed.load_state_dict(state)
    rng = torch.get_rng_state()
    second, _ = run_step(resumed, twin, x, y)
    assert torch.equal(rng, torch.get_rng_state())  # no matrix was drawn again
    assert resumed.matrices.keys() == rule.matrices.keys()
    for name_, grad in first.grads.items():
        torch.testing.assert_close(second.grads[name_], grad)
    other = "dfa" if name != "dfa" else "drtp"
    with pytest.raises(CheckpointError):
        get_rule(other, regime=STUDY_B, num_classes=C).load_state_dict(state)


def test_loaded_matrix_of_another_model_is_a_shape_error():
    rule = get_rule("drtp", regime=STUDY_B, num_classes=C)
    rule.load_state_dict({"rule": "drtp", "matrices": {"2": torch.zeros(C, 7)}})
    with pytest.raises(ShapeError, match="another model"):
        run_step(rule, toy(STUDY_B), *batch())


def test_matrices_follow_the_global_seed():
    draws = []
    for seed in (11, 11, 12):
        model, data = conv_toy(), batch((6, 2, 5, 5))
        torch.manual_seed(seed)
        rule = get_rule("dfa", regime=STUDY_A, num_classes=C)
        run_step(rule, model, *data)
        draws.append(rule.matrices["3"])
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
