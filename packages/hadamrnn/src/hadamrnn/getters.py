"""From a :class:`~hadamrnn.config.Config` to model, optimizer, scheduler, loss and metric.

Each kind is a :class:`bnn_shared.registry.Registry` (case-insensitive names, one message for
an unknown name); the reference's names (``BinadamSSM``, ``BinadamSSMwithEmbeddings``,
``$torch.nn.CrossEntropyLoss``, ...) are aliases.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from bnn_shared.errors import ConfigError
from bnn_shared.registry import Registry
from torch import Tensor, nn

from .config import Config, ModelConfig
from .models import LinearRNN, LSTMModel
from .quantized_layers import HadamardRecurrent, OrthogonalRecurrent, QuantizedOrthogonalRecurrent

__all__ = [
    "MODELS",
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "get_model",
    "get_optimizer",
    "get_scheduler",
    "get_loss",
    "get_metric",
]


#: Models by name (``MODEL.NAME``): ``builder(model_config) -> nn.Module``.
MODELS: Registry[Callable[[ModelConfig], nn.Module]] = Registry("model", flag="MODEL.NAME")


def _linear(cfg: ModelConfig, recurrent: nn.Module, *, bits, dropout: float) -> LinearRNN:
    return LinearRNN(
        recurrent,
        input_size=cfg.input_size,
        output_size=cfg.output_size,
        num_bits=bits,
        qoutput=cfg.qoutput,
        bias_final=cfg.bias_final,
        many_to_many=cfg.manytomany,
        vocab_size=cfg.vocab_size,
        embeddings_dropout=dropout if cfg.embeddings_dropout is None else cfg.embeddings_dropout,
        readout=cfg.readout,
        linear_recurrent=cfg.linear_recurrent,
        engine=cfg.engine,
    )


@MODELS.register("hadamrnn", aliases=("binadamssm", "binadamssmwithembeddings", "block_hadamrnn"))
def _hadamrnn(cfg: ModelConfig) -> nn.Module:
    recurrent = HadamardRecurrent(
        cfg.hidden_size, cfg.basic_block, bias=cfg.bias, clip_sign=cfg.clip_sign
    )
    return _linear(cfg, recurrent, bits=cfg.num_bits, dropout=0.0)


@MODELS.register("ornn")
def _ornn(cfg: ModelConfig) -> nn.Module:
    recurrent = OrthogonalRecurrent(
        cfg.hidden_size, bias=cfg.bias, orthogonal_map=cfg.orthogonal_map
    )
    return _linear(cfg, recurrent, bits=None, dropout=0.0)


@MODELS.register("qornn", aliases=("qornnwithembeddings",))
def _qornn(cfg: ModelConfig) -> nn.Module:
    bits = cfg.recurrent_bits or cfg.num_bits
    if bits is None:
        raise ConfigError("MODEL.NAME qornn needs MODEL.NUM_BITS or MODEL.RECURRENT_BITS")
    recurrent = QuantizedOrthogonalRecurrent(cfg.hidden_size, bits, bias=cfg.bias)
    return _linear(cfg, recurrent, bits=cfg.num_bits, dropout=0.5)


@MODELS.register("lstm")
def _lstm(cfg: ModelConfig) -> nn.Module:
    return LSTMModel(
        input_size=cfg.input_size,
        hidden_size=cfg.hidden_size,
        output_size=cfg.output_size,
        many_to_many=cfg.manytomany,
        vocab_size=cfg.vocab_size,
        embeddings_dropout=cfg.embeddings_dropout or 0.0,
    )


def get_model(cfg: Config) -> nn.Module:
    """The model of ``cfg.model``."""
    return MODELS.get(cfg.model.name)(cfg.model)


#: Optimizers by name (``TRAIN.OPTIMIZER``).
OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer", flag="TRAIN.OPTIMIZER")
OPTIMIZERS.register("adam", torch.optim.Adam)
OPTIMIZERS.register("adamw", torch.optim.AdamW)
OPTIMIZERS.register("sgd", torch.optim.SGD)


def get_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """``TRAIN.OPTIMIZER`` over all parameters (default Adam, as the paper).

    With ``TRAIN.SIGN_LR`` (HadamRNN) or ``TRAIN.RECURRENT_LR`` (any model with a recurrent
    matrix) set, the recurrent matrix's parameters form a second parameter group with that
    learning rate: HadamRNN's sign latents ``s`` (0: the signs never change), the ORNN's
    orthogonal parametrization, QORNN's latent matrix; the recurrent bias stays in the first.
    """
    optimizer = OPTIMIZERS.get(_strip_path(cfg.train.optimizer))
    sign_lr, recurrent_lr = cfg.train.sign_lr, cfg.train.recurrent_lr  # >= 0, not both
    second = _recurrent_matrix_parameters(model)
    if recurrent_lr is not None:
        if not second:
            raise ConfigError(
                f"TRAIN.RECURRENT_LR: model {cfg.model.name!r} has no recurrent matrix layer"
            )
        lr = recurrent_lr
    else:  # SIGN_LR is RECURRENT_LR for HadamRNN's sign latents; other models ignore it
        hadamard = isinstance(getattr(model, "recurrent", None), HadamardRecurrent)
        lr = sign_lr if hadamard else None
    if lr is None:
        return optimizer(model.parameters(), lr=cfg.train.lr)
    ids = {id(p) for p in second}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in ids]},
        {"params": second, "lr": lr},
    ]
    return optimizer(groups, lr=cfg.train.lr)


def _recurrent_matrix_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of ``model.recurrent`` except its bias (empty without one)."""
    recurrent = getattr(model, "recurrent", None)
    if not isinstance(recurrent, nn.Module):
        return []
    bias = getattr(recurrent, "bias", None)
    return [p for p in recurrent.parameters() if p is not bias]


def get_scheduler(cfg: Config, optimizer: torch.optim.Optimizer):
    """``StepLR(step_size, gamma)``, stepped once per epoch."""
    return torch.optim.lr_scheduler.StepLR(optimizer, cfg.train.step_size, cfg.train.gamma)


def _cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def _bce(logits: Tensor, target: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(
        logits.reshape(-1), target.reshape(-1).to(logits.dtype)
    )


#: Losses by name (``TRAIN.LOSS_FN``): ``loss(logits, target)``, logits reshaped to
#: ``(-1, d_out)`` as the reference.
LOSSES: Registry[Callable[[Tensor, Tensor], Tensor]] = Registry("loss", flag="TRAIN.LOSS_FN")
LOSSES.register("cross_entropy", _cross_entropy, aliases=("crossentropyloss",))
LOSSES.register("bce_with_logits", _bce, aliases=("bcewithlogitsloss",))


def _strip_path(name: str) -> str:
    """``$torch.nn.CrossEntropyLoss`` -> ``crossentropyloss`` (reference spelling)."""
    return name.strip().lstrip("$").rsplit(".", 1)[-1].lower()


def get_loss(cfg: Config) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss ``TRAIN.LOSS_FN``."""
    return LOSSES.get(_strip_path(cfg.train.loss_fn))


def _correct(logits: Tensor, target: Tensor) -> Tensor:
    """Number of correct predictions: argmax, or ``logit > 0`` for one output (quirk 11)."""
    if logits.shape[-1] == 1:
        predicted = (logits.reshape(-1) > 0).long()
    else:
        predicted = logits.reshape(-1, logits.shape[-1]).argmax(1)
    return (predicted == target.reshape(-1)).sum()


#: Metrics by name (``TRAIN.METRICS``): ``metric(logits, target) -> summed value`` (divided by
#: the item count); ``none`` (or null) is no metric.
METRICS: Registry[Callable[[Tensor, Tensor], Tensor]] = Registry("metric", flag="TRAIN.METRICS")
METRICS.register("accuracy", _correct, aliases=("binaryaccuracy", "multiclassaccuracy"))


def get_metric(cfg: Config) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The accuracy counter, or None (the copy task reports its cross-entropy)."""
    names = cfg.train.metrics
    name = names[0] if isinstance(names, list) and names else names
    if not name or _strip_path(name) == "none":
        return None
    return METRICS.get(_strip_path(name))
