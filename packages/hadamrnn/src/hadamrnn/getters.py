"""From a :class:`~hadamrnn.config.Config` to model, optimizer, scheduler, loss and metric.

Each kind is a registry (a dict from name to builder); the reference's names
(``BinadamSSM``, ``BinadamSSMwithEmbeddings``, ``$torch.nn.CrossEntropyLoss``, ...) are aliases.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from bnn_shared.errors import ConfigError
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
    "model_name",
]


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


def _hadamrnn(cfg: ModelConfig) -> nn.Module:
    recurrent = HadamardRecurrent(
        cfg.hidden_size, cfg.basic_block, bias=cfg.bias, clip_sign=cfg.clip_sign
    )
    return _linear(cfg, recurrent, bits=cfg.num_bits, dropout=0.0)


def _ornn(cfg: ModelConfig) -> nn.Module:
    recurrent = OrthogonalRecurrent(
        cfg.hidden_size, bias=cfg.bias, orthogonal_map=cfg.orthogonal_map
    )
    return _linear(cfg, recurrent, bits=None, dropout=0.0)


def _qornn(cfg: ModelConfig) -> nn.Module:
    bits = cfg.recurrent_bits or cfg.num_bits
    if bits is None:
        raise ConfigError("MODEL.NAME qornn needs MODEL.NUM_BITS or MODEL.RECURRENT_BITS")
    recurrent = QuantizedOrthogonalRecurrent(cfg.hidden_size, bits, bias=cfg.bias)
    return _linear(cfg, recurrent, bits=cfg.num_bits, dropout=0.5)


def _lstm(cfg: ModelConfig) -> nn.Module:
    return LSTMModel(
        input_size=cfg.input_size,
        hidden_size=cfg.hidden_size,
        output_size=cfg.output_size,
        many_to_many=cfg.manytomany,
        vocab_size=cfg.vocab_size,
        embeddings_dropout=cfg.embeddings_dropout or 0.0,
    )


#: Models by name: ``builder(model_config) -> nn.Module``.
MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "hadamrnn": _hadamrnn,
    "ornn": _ornn,
    "qornn": _qornn,
    "lstm": _lstm,
}
MODEL_ALIASES = {
    "binadamssm": "hadamrnn",
    "binadamssmwithembeddings": "hadamrnn",
    "block_hadamrnn": "hadamrnn",
    "qornnwithembeddings": "qornn",
}


def model_name(name: str) -> str:
    """The registered model name of ``name`` (reference names accepted)."""
    key = name.strip().lower()
    key = MODEL_ALIASES.get(key, key)
    if key not in MODELS:
        raise ConfigError(f"MODEL.NAME {name!r} is unknown; choose one of {', '.join(MODELS)}")
    return key


def get_model(cfg: Config) -> nn.Module:
    """The model of ``cfg.model``."""
    return MODELS[model_name(cfg.model.name)](cfg.model)


OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


def get_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """``TRAIN.OPTIMIZER`` over all parameters (default Adam, as the paper).

    With ``TRAIN.SIGN_LR`` (HadamRNN) or ``TRAIN.RECURRENT_LR`` (any model with a recurrent
    matrix) set, the recurrent matrix's parameters form a second parameter group with that
    learning rate: HadamRNN's sign latents ``s`` (0: the signs never change), the ORNN's
    orthogonal parametrization, QORNN's latent matrix; the recurrent bias stays in the first.
    """
    key = _strip_path(cfg.train.optimizer)
    if key not in OPTIMIZERS:
        raise ConfigError(
            f"TRAIN.OPTIMIZER {cfg.train.optimizer!r} is unknown; choose {', '.join(OPTIMIZERS)}"
        )
    sign_lr, recurrent_lr = cfg.train.sign_lr, cfg.train.recurrent_lr
    for name, value in (("SIGN_LR", sign_lr), ("RECURRENT_LR", recurrent_lr)):
        if value is not None and value < 0:
            raise ConfigError(f"TRAIN.{name} must be >= 0 or null, got {value}")
    if sign_lr is not None and recurrent_lr is not None:
        raise ConfigError("set TRAIN.SIGN_LR or TRAIN.RECURRENT_LR, not both")
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
        return OPTIMIZERS[key](model.parameters(), lr=cfg.train.lr)
    ids = {id(p) for p in second}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in ids]},
        {"params": second, "lr": lr},
    ]
    return OPTIMIZERS[key](groups, lr=cfg.train.lr)


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


#: Losses by name: ``loss(logits, target)``, logits reshaped to ``(-1, d_out)`` as the reference.
LOSSES = {"cross_entropy": _cross_entropy, "bce_with_logits": _bce}
LOSS_ALIASES = {"crossentropyloss": "cross_entropy", "bcewithlogitsloss": "bce_with_logits"}


def _strip_path(name: str) -> str:
    """``$torch.nn.CrossEntropyLoss`` -> ``crossentropyloss`` (reference spelling)."""
    return name.strip().lstrip("$").rsplit(".", 1)[-1].lower()


def get_loss(cfg: Config) -> Callable[[Tensor, Tensor], Tensor]:
    key = _strip_path(cfg.train.loss_fn)
    key = LOSS_ALIASES.get(key, key)
    if key not in LOSSES:
        raise ConfigError(
            f"TRAIN.LOSS_FN {cfg.train.loss_fn!r} is unknown; choose {', '.join(LOSSES)}"
        )
    return LOSSES[key]


def _correct(logits: Tensor, target: Tensor) -> Tensor:
    """Number of correct predictions: argmax, or ``logit > 0`` for one output (quirk 11)."""
    if logits.shape[-1] == 1:
        predicted = (logits.reshape(-1) > 0).long()
    else:
        predicted = logits.reshape(-1, logits.shape[-1]).argmax(1)
    return (predicted == target.reshape(-1)).sum()


#: Metrics by name: ``metric(logits, target) -> summed value`` (divided by the item count).
METRICS: dict[str, Callable[[Tensor, Tensor], Tensor] | None] = {"accuracy": _correct, "none": None}
METRIC_ALIASES = {"binaryaccuracy": "accuracy", "multiclassaccuracy": "accuracy"}


def get_metric(cfg: Config):
    """The accuracy counter, or None (the copy task reports its cross-entropy)."""
    names = cfg.train.metrics
    if names is None or names == []:
        return None
    name = names[0] if isinstance(names, list) else names
    key = METRIC_ALIASES.get(_strip_path(name), _strip_path(name))
    if key not in METRICS:
        raise ConfigError(f"TRAIN.METRICS {name!r} is unknown; choose {', '.join(METRICS)}")
    return METRICS[key]
