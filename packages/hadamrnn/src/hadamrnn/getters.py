"""From a :class:`~hadamrnn.config.Config` to model, optimizer, scheduler, loss and metric.

Each kind is a :class:`bnn_shared.registry.Registry` (case-insensitive names, one message for
an unknown name); the reference's names (``BinadamSSM``, ``BinadamSSMwithEmbeddings``,
``$torch.nn.CrossEntropyLoss``, ...) are aliases.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable
from typing import Any

import torch
from bnn_shared.errors import ConfigError
from bnn_shared.registry import Registry
from torch import Tensor, nn

from .config import Config, ModelConfig
from .extra_layers import ACTIVATIONS
from .models import LinearRNN, LSTMModel
from .qmodels import QRNN, QSSM, QSSMwithEmbeddings, SpectralQSSM, sequential_only
from .quantized_layers import HadamardRecurrent, OrthogonalRecurrent, QuantizedOrthogonalRecurrent
from .reference_format import check_kwargs

__all__ = [
    "MODELS",
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "check_config",
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
        activation=_activation(cfg),
    )


def _activation(cfg: ModelConfig) -> nn.Module | None:
    """``MODEL.ACTIVATION`` as a module over ``n`` features (None: the paper's ReLU)."""
    if ACTIVATIONS.canonical(cfg.activation) == "relu":
        return None
    return ACTIVATIONS.get(cfg.activation)(cfg.hidden_size)


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
    if _activation(cfg) is not None:
        raise ConfigError(
            f"MODEL.ACTIVATION {cfg.activation}: the lstm baseline has no activation to choose"
        )
    return LSTMModel(
        input_size=cfg.input_size,
        hidden_size=cfg.hidden_size,
        output_size=cfg.output_size,
        many_to_many=cfg.manytomany,
        vocab_size=cfg.vocab_size,
        embeddings_dropout=cfg.embeddings_dropout or 0.0,
    )


def _q_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    """Arguments shared by the reference's QRNN and QSSM models (``hadamrnn.qmodels``)."""
    return {
        "input_size": cfg.input_size,
        "hidden_size": cfg.hidden_size,
        "output_size": cfg.output_size,
        "num_bits": cfg.num_bits if cfg.recurrent_bits is None else cfg.recurrent_bits,
        "bias": cfg.bias,
        "bias_final": cfg.bias_final,
        "many_to_many": cfg.manytomany,
        "vocab_size": cfg.vocab_size,
        "embeddings_dropout": cfg.embeddings_dropout or 0.0,
        "readout": cfg.readout,
        "activation": _activation(cfg),
    }


def _qssm_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    kwargs = _q_kwargs(cfg)
    linear = cfg.linear_recurrent and cfg.num_bits_feat is None
    engine = cfg.engine
    if not linear:
        why = "MODEL.NUM_BITS_FEAT" if cfg.linear_recurrent else "MODEL.LINEAR_RECURRENT false"
        engine = sequential_only(cfg.name, engine, "engine" in cfg.model_fields_set, why)
    return {
        **kwargs,
        "qoutput": cfg.qoutput,
        "num_bits_feat": cfg.num_bits_feat,
        "pre_scaling_feat": cfg.pre_scaling_feat,
        "linear_recurrent": cfg.linear_recurrent,
        "engine": engine,
    }


@MODELS.register("qrnn")
def _qrnn(cfg: ModelConfig) -> nn.Module:
    why = "the activation inside its recurrence"
    sequential_only("qrnn", cfg.engine, "engine" in cfg.model_fields_set, why)
    return QRNN(**_q_kwargs(cfg))


@MODELS.register("qssm")
def _qssm(cfg: ModelConfig) -> nn.Module:
    return QSSM(**_qssm_kwargs(cfg))


@MODELS.register("qssmwithembeddings")
def _qssm_with_embeddings(cfg: ModelConfig) -> nn.Module:
    return QSSMwithEmbeddings(**_qssm_kwargs(cfg))


@MODELS.register("spectralqssm")
def _spectral_qssm(cfg: ModelConfig) -> nn.Module:
    return SpectralQSSM(use_bjorck=cfg.use_bjorck, **_qssm_kwargs(cfg))


_QSSMS = ("qssm", "qssmwithembeddings", "spectralqssm")
#: Models that read a key (the others ignore it) ...
_READERS = {
    "num_bits_feat": _QSSMS,
    "pre_scaling_feat": _QSSMS,
    "use_bjorck": ("spectralqssm",),
    "recurrent_bits": ("qornn", "qrnn", *_QSSMS),
    "basic_block": ("hadamrnn",),
    "clip_sign": ("hadamrnn",),
    "orthogonal_map": ("ornn",),
}
#: ... and keys that one model does not read although the others do.
_IGNORED_BY = {"qrnn": ("qoutput", "linear_recurrent")}


def _warn_unread_keys(cfg: ModelConfig) -> None:
    """One warning line per ``MODEL`` key set (to a value other than its default) that the
    model does not read."""
    name = MODELS.canonical(cfg.name)
    keys = [key for key, readers in _READERS.items() if name not in readers]
    for key in (*keys, *_IGNORED_BY.get(name, ())):
        value = getattr(cfg, key)
        if value != ModelConfig.model_fields[key].default:
            _warn(f"MODEL.{key.upper()} {value!r} has no effect on {name}")
    if name in _QSSMS and cfg.num_bits_feat is None and cfg.pre_scaling_feat != 1.0:
        _warn("MODEL.PRE_SCALING_FEAT has no effect without MODEL.NUM_BITS_FEAT")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def get_model(cfg: Config) -> nn.Module:
    """The model of ``cfg.model``; a warning line for each key set that it does not read."""
    _warn_unread_keys(cfg.model)
    return MODELS.get(cfg.model.name)(cfg.model)


#: Optimizers by name (``TRAIN.OPTIMIZER``; tags ``$torch.optim.Adam``, ...), built with
#: ``lr = TRAIN.LR`` and the kwargs ``TRAIN.OPTIMIZER_CONFIG``.
OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer", flag="TRAIN.OPTIMIZER")
OPTIMIZERS.register("adam", torch.optim.Adam)
OPTIMIZERS.register("adamw", torch.optim.AdamW)
OPTIMIZERS.register("sgd", torch.optim.SGD)


def get_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """``TRAIN.OPTIMIZER`` over all parameters (default Adam, as the paper), with
    ``lr = TRAIN.LR`` and ``TRAIN.OPTIMIZER_CONFIG`` (weight_decay, betas, momentum, ...).

    With ``TRAIN.SIGN_LR`` (HadamRNN) or ``TRAIN.RECURRENT_LR`` (any model with a recurrent
    matrix) set, the recurrent matrix's parameters form a second parameter group with that
    learning rate: HadamRNN's sign latents ``s`` (0: the signs never change), the ORNN's
    orthogonal parametrization, QORNN's latent matrix; the recurrent bias stays in the first.

    Raises:
        ConfigError: an OPTIMIZER_CONFIG kwarg the optimizer has not, or a value it refuses.
    """
    optimizer = OPTIMIZERS.get(cfg.train.optimizer)
    kwargs = {"lr": cfg.train.lr, **(cfg.train.optimizer_config or {})}
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
        return _build(optimizer, "TRAIN.OPTIMIZER_CONFIG", model.parameters(), **kwargs)
    ids = {id(p) for p in second}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in ids]},
        {"params": second, "lr": lr},
    ]
    return _build(optimizer, "TRAIN.OPTIMIZER_CONFIG", groups, **kwargs)


def _build(cls: Callable[..., Any], key: str, *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)``; an unknown or refused kwarg is a ConfigError naming ``key``."""
    check_kwargs(cls, kwargs, key)
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {cls.__name__}: {exc}") from None


def _recurrent_matrix_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of ``model.recurrent`` except its bias (empty without one)."""
    recurrent = getattr(model, "recurrent", None)
    if not isinstance(recurrent, nn.Module):
        return []
    bias = getattr(recurrent, "bias", None)
    return [p for p in recurrent.parameters() if p is not bias]


#: Learning-rate schedulers by name (``TRAIN.SCHEDULER``; tags
#: ``$torch.optim.lr_scheduler.StepLR``, ...), stepped once per epoch.
SCHEDULERS: Registry[type] = Registry("scheduler", flag="TRAIN.SCHEDULER")
SCHEDULERS.register("steplr", torch.optim.lr_scheduler.StepLR, aliases=("step_lr",))
SCHEDULERS.register("exponentiallr", torch.optim.lr_scheduler.ExponentialLR)
SCHEDULERS.register("cosineannealinglr", torch.optim.lr_scheduler.CosineAnnealingLR)
SCHEDULERS.register("multisteplr", torch.optim.lr_scheduler.MultiStepLR)


def get_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> Any:
    """``TRAIN.SCHEDULER`` (default StepLR) with the kwargs ``TRAIN.SCHEDULER_CONFIG``,
    stepped once per epoch; ``TRAIN.STEP_SIZE`` and ``TRAIN.GAMMA`` are the defaults of the
    scheduler's ``step_size`` and ``gamma`` where it has them (StepLR, ExponentialLR,
    MultiStepLR's gamma).

    Raises:
        ConfigError: a kwarg the scheduler has not, a missing one, or a value it refuses.
    """
    scheduler = SCHEDULERS.get(cfg.train.scheduler)
    check_kwargs(scheduler, cfg.train.scheduler_config, "TRAIN.SCHEDULER_CONFIG", ("optimizer",))
    takes = inspect.signature(scheduler).parameters
    defaults = {"step_size": cfg.train.step_size, "gamma": cfg.train.gamma}
    kwargs = {key: value for key, value in defaults.items() if key in takes}
    kwargs.update(cfg.train.scheduler_config or {})
    return _build(scheduler, "TRAIN.SCHEDULER_CONFIG", optimizer, **kwargs)


def _cross_entropy(logits: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), **kwargs
    )


def _bce(logits: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(
        logits.reshape(-1), target.reshape(-1).to(logits.dtype), **kwargs
    )


#: Losses by name (``TRAIN.LOSS_FN``): ``loss(logits, target, **LOSS_CONFIG)``, logits
#: reshaped to ``(-1, d_out)`` as the reference.
LOSSES: Registry[Callable[..., Tensor]] = Registry("loss", flag="TRAIN.LOSS_FN")
LOSSES.register("cross_entropy", _cross_entropy, aliases=("crossentropyloss",))
LOSSES.register("bce_with_logits", _bce, aliases=("bcewithlogitsloss",))
#: LOSS_CONFIG kwargs each loss takes (tensors given as lists); the reduction stays the mean
LOSS_OPTIONS = {
    "cross_entropy": ("label_smoothing", "weight"),
    "bce_with_logits": ("pos_weight",),
}


def get_loss(cfg: Config) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss ``TRAIN.LOSS_FN`` with the kwargs ``TRAIN.LOSS_CONFIG``.

    Raises:
        ConfigError: a LOSS_CONFIG kwarg the loss does not take.
    """
    name = LOSSES.canonical(cfg.train.loss_fn)
    loss = LOSSES.get(name)
    options = dict(cfg.train.loss_config or {})
    unknown = set(options) - set(LOSS_OPTIONS[name])
    if unknown:
        raise ConfigError(
            f"TRAIN.LOSS_CONFIG: {name} takes {', '.join(LOSS_OPTIONS[name])}, "
            f"not {', '.join(sorted(unknown))}"
        )
    if not options:
        return loss

    def configured(logits: Tensor, target: Tensor) -> Tensor:
        kwargs = {
            key: torch.as_tensor(value, dtype=logits.dtype, device=logits.device)
            if isinstance(value, list | tuple)
            else value
            for key, value in options.items()
        }
        return loss(logits, target, **kwargs)

    return configured


def _correct(logits: Tensor, target: Tensor, *, threshold: float = 0.5) -> Tensor:
    """Number of correct predictions: argmax, or ``sigmoid(logit) > threshold`` (``logit >
    0`` at 0.5) for one output (quirk 11)."""
    if logits.shape[-1] == 1:
        cut = 0.0 if threshold == 0.5 else math.log(threshold / (1 - threshold))
        predicted = (logits.reshape(-1) > cut).long()
    else:
        predicted = logits.reshape(-1, logits.shape[-1]).argmax(1)
    return (predicted == target.reshape(-1)).sum()


#: Metrics by name (``TRAIN.METRICS``): ``metric(logits, target) -> summed value`` (divided by
#: the item count); ``none`` (or null) is no metric. The torchmetrics classes the reference
#: names are entries, so that METRICS_CONFIG is checked against the one named.
METRICS: Registry[Callable[..., Tensor]] = Registry("metric", flag="TRAIN.METRICS")
METRICS.register("accuracy", _correct)
METRICS.register("binary_accuracy", _correct, aliases=("binaryaccuracy",))
METRICS.register("multiclass_accuracy", _correct, aliases=("multiclassaccuracy",))
#: METRICS_CONFIG kwargs per metric (torchmetrics' names); validate_args has no effect
METRIC_OPTIONS = {
    "accuracy": ("task", "num_classes", "threshold", "average", "top_k", "validate_args"),
    "binary_accuracy": ("threshold", "validate_args"),
    "multiclass_accuracy": ("num_classes", "average", "top_k", "validate_args"),
}


def _metric_name(cfg: Config) -> str | None:
    names = cfg.train.metrics
    if isinstance(names, list):
        if len(names) > 1:
            raise ConfigError(f"TRAIN.METRICS: one metric (accuracy), got {names}")
        names = names[0] if names else None
    if not names or str(names).lower() == "none":
        return None
    return METRICS.canonical(names)


def get_metric(cfg: Config) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The accuracy counter with ``TRAIN.METRICS_CONFIG``, or None (the copy task reports its
    cross-entropy).

    Raises:
        ConfigError: METRICS_CONFIG without a metric, a kwarg the metric has not, or values
            that do not fit the model (``num_classes`` other than MODEL.OUTPUT_SIZE, a binary
            task with several outputs, another ``average`` than micro, ``top_k`` > 1).
    """
    name = _metric_name(cfg)
    options = dict(cfg.train.metrics_config or {})
    if name is None:
        if options:
            raise ConfigError("TRAIN.METRICS_CONFIG is given, but TRAIN.METRICS is none")
        return None
    threshold = _check_metric_options(name, options, cfg.model.output_size)
    metric = METRICS.get(name)
    if threshold == 0.5:
        return metric
    return functools.partial(metric, threshold=threshold)


def _check_metric_options(name: str, options: dict[str, Any], outputs: int) -> float:
    """The binary threshold of a valid METRICS_CONFIG (see :func:`get_metric`); without one,
    every accuracy name is the same counter (argmax, or logit > 0 for one output), where
    torchmetrics would need a task or num_classes."""
    if not options:
        return 0.5
    unknown = set(options) - set(METRIC_OPTIONS[name])
    if unknown:
        raise ConfigError(
            f"TRAIN.METRICS_CONFIG: {name} takes {', '.join(METRIC_OPTIONS[name])}, "
            f"not {', '.join(sorted(unknown))}"
        )
    task = {"binary_accuracy": "binary", "multiclass_accuracy": "multiclass"}.get(name)
    task = options.get("task", task)
    if name == "accuracy" and options and task is None:
        raise ConfigError("TRAIN.METRICS_CONFIG: accuracy needs task (binary or multiclass)")
    if task not in (None, "binary", "multiclass"):
        raise ConfigError(f"TRAIN.METRICS_CONFIG.task: binary or multiclass, got {task!r}")
    if task == "binary" and outputs != 1:
        raise ConfigError(
            f"TRAIN.METRICS_CONFIG: a binary task needs MODEL.OUTPUT_SIZE 1, not {outputs}"
        )
    if task == "multiclass" and options.get("num_classes") != outputs:
        raise ConfigError(
            f"TRAIN.METRICS_CONFIG.num_classes ({options.get('num_classes')}) must be "
            f"MODEL.OUTPUT_SIZE ({outputs})"
        )
    default = "macro" if name == "multiclass_accuracy" else "micro"  # torchmetrics' defaults
    if task == "multiclass" and options.get("average", default) != "micro":
        raise ConfigError(
            f"TRAIN.METRICS_CONFIG.average: only micro (per-sample accuracy) is implemented, "
            f"{name} gives {options.get('average', default)}: set average: micro"
        )
    if options.get("top_k", 1) != 1:
        raise ConfigError("TRAIN.METRICS_CONFIG.top_k: only 1 is implemented")
    threshold = options.get("threshold", 0.5)
    if task == "multiclass" and "threshold" in options:
        raise ConfigError("TRAIN.METRICS_CONFIG.threshold: only for a binary task")
    if not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise ConfigError(f"TRAIN.METRICS_CONFIG.threshold: in (0, 1), got {threshold!r}")
    return float(threshold)


def check_config(cfg: Config) -> None:
    """Build what ``cfg`` names once on a dummy parameter (optimizer, scheduler) and check the
    loss and metric kwargs, so that a bad name or kwarg fails at load, before any run.

    Raises:
        ConfigError: see :func:`get_optimizer`, :func:`get_scheduler`, :func:`get_loss`,
            :func:`get_metric`; an unknown MODEL.NAME.
    """
    MODELS.canonical(cfg.model.name)
    dummy = nn.Linear(1, 1)
    optimizer = _build(
        OPTIMIZERS.get(cfg.train.optimizer),
        "TRAIN.OPTIMIZER_CONFIG",
        dummy.parameters(),
        **{"lr": cfg.train.lr, **(cfg.train.optimizer_config or {})},
    )
    get_scheduler(cfg, optimizer)
    get_loss(cfg)
    get_metric(cfg)
