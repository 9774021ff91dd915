"""Registries: models (with the reference's names), losses, metrics, optimizer, scheduler."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.errors import ConfigError
from hadamrnn.config import load
from hadamrnn.getters import (
    LOSSES,
    METRICS,
    MODELS,
    OPTIMIZERS,
    get_loss,
    get_metric,
    get_model,
    get_optimizer,
    get_scheduler,
)
from hadamrnn.models import LinearRNN, LSTMModel
from hadamrnn.quantized_layers import (
    HadamardRecurrent,
    OrthogonalRecurrent,
    QuantizedOrthogonalRecurrent,
)

LAYERS = {
    "hadamrnn": HadamardRecurrent,
    "ornn": OrthogonalRecurrent,
    "qornn": QuantizedOrthogonalRecurrent,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds_and_runs(name):
    cfg = load(None, [f"MODEL.NAME={name}", "MODEL.HIDDEN_SIZE=16"])
    model = get_model(cfg)
    tokens = getattr(model, "embedding", None) is not None  # e.g. qssmwithembeddings
    x = torch.randint(1, 50, (2, 5)) if tokens else torch.randn(2, 5, 1)
    assert model(x).shape == (2, 10)
    if name == "lstm":
        assert isinstance(model, LSTMModel)
    elif name in LAYERS:  # the other models are tested in test_models.py
        assert isinstance(model.recurrent, LAYERS[name])
        if name == "ornn":  # the float baseline quantizes nothing
            assert model.input_layer.bits is None and model.output_layer.bits is None


def test_reference_names():
    assert MODELS.canonical("BinadamSSM") == "hadamrnn"
    assert MODELS.canonical("BinadamSSMwithEmbeddings") == "hadamrnn"
    assert MODELS.canonical("QORNNwithEmbeddings") == "qornn"
    with pytest.raises(ConfigError, match=r"unknown model 'transformer' \(MODEL\.NAME\)"):
        get_model(load(None, ["MODEL.NAME=transformer"]))


@pytest.mark.parametrize(
    "registry, flag",
    [
        (MODELS, "MODEL.NAME"),
        (LOSSES, "TRAIN.LOSS_FN"),
        (METRICS, "TRAIN.METRICS"),
        (OPTIMIZERS, "TRAIN.OPTIMIZER"),
    ],
)
def test_unknown_names_are_one_message_naming_the_key(registry, flag):
    with pytest.raises(ConfigError, match=f"choose one of {', '.join(registry.names())}") as info:
        registry.get("nope")
    assert flag in str(info.value)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds(name):
    cfg = load(None, [f"TRAIN.OPTIMIZER={name}", "TRAIN.LR=0.5"])
    optimizer = get_optimizer(cfg, get_model(cfg))
    assert isinstance(optimizer, OPTIMIZERS.get(name)) and optimizer.param_groups[0]["lr"] == 0.5


def test_losses_and_metrics():
    cfg = load(None, ["TRAIN.LOSS_FN=$torch.nn.BCEWithLogitsLoss", "TRAIN.METRICS=BinaryAccuracy"])
    loss, metric = get_loss(cfg), get_metric(cfg)
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    target = torch.tensor([1, 1, 0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.reshape(-1), target.float()
    )
    assert torch.allclose(loss(logits, target), expected)
    assert metric(logits, target).item() == 1  # logit > 0 decides (no sigmoid guessing)
    many = torch.randn(2, 4, 9)  # many-to-many: (B, T, C) against (B, T)
    cross = get_loss(load(None, ["TRAIN.LOSS_FN=CrossEntropyLoss"]))
    assert cross(many, torch.zeros(2, 4, dtype=torch.long)).ndim == 0
    assert get_metric(load(None, ["TRAIN.METRICS=none"])) is None
    with pytest.raises(ConfigError, match="LOSS_FN"):
        get_loss(load(None, ["TRAIN.LOSS_FN=hinge"]))
    assert get_metric(load(None, ["TRAIN.METRICS=[]"])) is None
    assert get_metric(load(None, ["TRAIN.METRICS=[MulticlassAccuracy]"])) is metric


def test_optimizer_covers_all_parameters_and_steplr_per_epoch():
    cfg = load(None, ["TRAIN.LR=0.1", "TRAIN.GAMMA=0.5"])
    model = get_model(cfg)
    optimizer = get_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.Adam)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    scheduler = get_scheduler(cfg, optimizer)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert isinstance(model, LinearRNN)


def _train_steps(cfg, steps: int = 3):
    torch.manual_seed(0)
    model = get_model(cfg)
    optimizer = get_optimizer(cfg, model)
    x, y = torch.rand(8, 12, 1), torch.randint(0, 10, (8,))
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer


def test_sign_lr_is_a_second_group_and_zero_keeps_the_signs():
    cfg = load(None, ["TRAIN.LR=0.1", "TRAIN.SIGN_LR=0"])
    torch.manual_seed(0)
    initial = get_model(cfg).recurrent.signs()
    model, optimizer = _train_steps(cfg)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert optimizer.param_groups[1]["params"] == [model.recurrent.s]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    assert torch.equal(model.recurrent.signs(), initial)
    # The paper's setting (SIGN_LR null) trains s with LR: the latent moves.
    paper, _ = _train_steps(load(None, ["TRAIN.LR=0.1"]))
    assert not torch.equal(paper.recurrent.s, model.recurrent.s)
    # Models without sign latents keep one group.
    ornn_cfg = load(None, ["MODEL.NAME=ornn", "TRAIN.SIGN_LR=0"])
    assert len(get_optimizer(ornn_cfg, get_model(ornn_cfg)).param_groups) == 1
    with pytest.raises(ConfigError, match=r"train\.sign_lr"):
        get_optimizer(load(None, ["TRAIN.SIGN_LR=-1"]), model)


@pytest.mark.parametrize("name", ["hadamrnn", "ornn", "qornn"])
def test_recurrent_lr_groups_the_recurrent_matrix_without_its_bias(name):
    cfg = load(None, [f"MODEL.NAME={name}", "TRAIN.LR=0.1", "TRAIN.RECURRENT_LR=0"])
    torch.manual_seed(0)
    model = get_model(cfg)
    optimizer = get_optimizer(cfg, model)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.0]
    second = optimizer.param_groups[1]["params"]
    assert second and all(p is not model.recurrent.bias for p in second)
    assert model.recurrent.bias is not None
    assert any(p is model.recurrent.bias for p in optimizer.param_groups[0]["params"])
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    # A zero learning rate keeps the recurrent matrix while the rest trains.
    before = model.recurrent.weight().detach().clone()
    x, y = torch.rand(8, 12, cfg.model.input_size), torch.randint(0, 10, (8,))
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    torch.testing.assert_close(model.recurrent.weight().detach(), before)


def test_recurrent_lr_errors():
    with pytest.raises(ConfigError, match="not both"):
        cfg = load(None, ["TRAIN.SIGN_LR=0", "TRAIN.RECURRENT_LR=0"])
        get_optimizer(cfg, get_model(cfg))
    with pytest.raises(ConfigError, match=r"train\.recurrent_lr' must be greater than or equal"):
        cfg = load(None, ["TRAIN.RECURRENT_LR=-1"])
        get_optimizer(cfg, get_model(cfg))
    with pytest.raises(ConfigError, match="no recurrent matrix"):
        cfg = load(None, ["MODEL.NAME=lstm", "TRAIN.RECURRENT_LR=0"])
        get_optimizer(cfg, get_model(cfg))
