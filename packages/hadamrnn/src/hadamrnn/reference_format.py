"""The reference's YAML format (spec B.1) as input of :func:`hadamrnn.config.load`.

The reference's six config files load unchanged; this module turns their layout into the
package's keys before validation:

* section names (``DATASET``, ``MODEL``, ``TRAIN``) and their first-level keys are matched
  case-insensitively; keys of nested mappings (``OPTIMIZER_CONFIG: {lr: ...}``) are verbatim;
* ``$a.b.C`` tags name torch classes. They are looked up in :data:`TAGS`, a table of ALLOWED
  dotted paths, and never imported; a bare ``$Name`` (resolved against the launch script's
  globals by the reference, quirk 26) and a path not in the table are errors;
* ``DATASET.TRAIN_SIZE`` / ``VAL_SIZE`` / ``TEST_SIZE`` become ``TRAIN`` / ``VAL`` / ``TEST``
  with the reference's rules (MNIST: TRAIN + VAL = 60,000; IMDB / GLUE: fixed sizes);
* ``TRAIN.OPTIMIZER_CONFIG.lr`` becomes ``TRAIN.LR``, StepLR's ``SCHEDULER_CONFIG`` gamma and
  step_size become ``TRAIN.GAMMA`` / ``TRAIN.STEP_SIZE`` (the package's own keys, so that a
  reference file and the package's file of a task give the same config); the other kwargs
  stay in the ``*_CONFIG`` keys and are checked against the class they go to;
* ``TRAIN.METRICS`` as a mapping ``{name: tag}`` becomes the list of metric names;
* ``TRAIN.USE_WANDB`` is the top-level ``USE_WANDB``;
* ``MODEL.GIVENS`` and ``MODEL.MULTIPARAMETERS``, which the reference swallows, give a
  one-line ``warning:`` each.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any

from bnn_shared.errors import ConfigError
from bnn_shared.registry import Registry

__all__ = [
    "SECTIONS",
    "TAGS",
    "TAG_KEYS",
    "check_kwargs",
    "read_sections",
    "resolve_tag",
    "translate",
    "warn",
]

SECTIONS = ("dataset", "model", "train")

#: MNIST has 60,000 training images: the reference asserts TRAIN + VAL = 60,000
MNIST_TRAIN_IMAGES = 60_000


def _tag_key(name: str) -> str:
    return str(name).strip().removeprefix("$").lower()


#: Allowed ``$`` tags: dotted path -> ``(kind, package name)``. Nothing else is resolved.
TAGS: Registry[tuple[str, str]] = Registry("$-tag", normalize=_tag_key)
_TAG_TABLE = {
    "activation": {"torch.nn.ReLU": "relu", "layers.modrelu": "modrelu"},
    "loss": {
        "torch.nn.CrossEntropyLoss": "cross_entropy",
        "torch.nn.BCEWithLogitsLoss": "bce_with_logits",
    },
    "optimizer": {
        "torch.optim.Adam": "adam",
        "torch.optim.AdamW": "adamw",
        "torch.optim.SGD": "sgd",
    },
    "scheduler": {
        f"torch.optim.lr_scheduler.{name}": name.lower()
        for name in ("StepLR", "ExponentialLR", "CosineAnnealingLR", "MultiStepLR")
    },
    "metric": {
        "torchmetrics.Accuracy": "accuracy",
        "torchmetrics.classification.Accuracy": "accuracy",
        "torchmetrics.classification.BinaryAccuracy": "binary_accuracy",
        "torchmetrics.classification.MulticlassAccuracy": "multiclass_accuracy",
    },
}
for _kind, _paths in _TAG_TABLE.items():
    for _path, _name in _paths.items():
        TAGS.register(_path, (_kind, _name))

#: The keys whose values may be tags, and the kind of object each names.
TAG_KEYS = {
    ("model", "activation"): "activation",
    ("model", "activation_final"): "activation",
    ("train", "loss_fn"): "loss",
    ("train", "optimizer"): "optimizer",
    ("train", "scheduler"): "scheduler",
    ("train", "metrics"): "metric",
}


def _allowed(kind: str) -> str:
    return ", ".join(f"${path}" for path in _TAG_TABLE[kind])


def resolve_tag(value: Any, kind: str, key: str) -> Any:
    """The package's name for the tag ``value`` (a value without ``$`` is returned as is).

    Raises:
        ConfigError: a bare ``$Name``, a path not in :data:`TAGS`, or a tag of another kind
            (``$torch.optim.Adam`` as a loss); the message names ``key`` and the allowed tags.
    """
    if not isinstance(value, str) or not value.strip().startswith("$"):
        return value
    text = value.strip()
    if "." not in text:
        raise ConfigError(
            f"{key}: bare tag {text!r} is not resolved (write the dotted path); "
            f"allowed: {_allowed(kind)}"
        )
    if text not in TAGS:
        raise ConfigError(f"{key}: unknown tag {text!r}; allowed: {_allowed(kind)}")
    found, name = TAGS.get(text)
    if found != kind:
        raise ConfigError(f"{key}: {text} is a {found}, not a {kind}; allowed: {_allowed(kind)}")
    return name


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def read_sections(data: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys and the first-level keys of each section lower-cased; nested verbatim.

    Raises:
        ConfigError: two keys of one mapping differ only in case.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = _unique(out, key, "the top level")
        if name in SECTIONS and isinstance(value, Mapping):
            section: dict[str, Any] = {}
            for sub, item in value.items():
                section[_unique(section, sub, name.upper())] = item
            value = section
        out[name] = value
    return out


def _unique(mapping: Mapping[str, Any], key: Any, where: str) -> str:
    name = str(key).lower()
    if name in mapping:
        raise ConfigError(f"{where}: key {key!r} is given twice (keys are case-insensitive)")
    return name


def translate(data: Mapping[str, Any], *, overwrite: bool = False) -> tuple[dict, list[str]]:
    """The reference's keys (module docstring) as the package's, and the warnings to give.

    Args:
        data: the config, sections read by :func:`read_sections`.
        overwrite: a reference key's value replaces the package key's (``--set`` overrides
            in the reference spelling); otherwise two different values are an error.

    Raises:
        ConfigError: a tag where none is allowed, a key given in both spellings with
            different values, split sizes that break the reference's rules.
    """
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    warnings: list[str] = []
    for section in SECTIONS:
        if not isinstance(out.get(section, {}), Mapping):
            return out, warnings  # the schema reports the section that is not a mapping
    dataset, model, train = (out.setdefault(section, {}) for section in SECTIONS)
    _check_tag_places(out)
    _dataset_sizes(dataset, overwrite)
    warnings += _model_keys(model)
    if "use_wandb" in train:
        _move(train, "use_wandb", out, "use_wandb", ("TRAIN.USE_WANDB", "USE_WANDB"), overwrite)
    _optimizer_keys(train, overwrite)
    warnings += _metric_keys(train)
    return out, warnings


def _move(
    source: dict, key: str, target: dict, new: str, names: tuple[str, str], overwrite: bool
) -> None:
    """``source[key]`` moved to ``target[new]``; ``names``: both keys as the user writes them."""
    value = source.pop(key)
    old_name, new_name = names
    if new in target and target[new] != value and not overwrite:
        raise ConfigError(f"{old_name} ({value!r}) and {new_name} ({target[new]!r}) disagree")
    target[new] = value


def _check_tag_places(data: Mapping[str, Any]) -> None:
    """A ``$`` value outside :data:`TAG_KEYS` is an error (nothing is imported)."""
    for section in SECTIONS:
        for key, value in data.get(section, {}).items():
            if (section, key) in TAG_KEYS:
                continue
            if isinstance(value, Mapping):
                items = list(value.values())
            else:
                items = list(value) if isinstance(value, list | tuple) else [value]
            for item in items:
                if isinstance(item, str) and item.strip().startswith("$"):
                    allowed = ", ".join(f"{s.upper()}.{k.upper()}" for s, k in TAG_KEYS)
                    raise ConfigError(
                        f"{section.upper()}.{key.upper()}: tag {item!r} is not allowed here "
                        f"(tags only in {allowed})"
                    )


def _dataset_sizes(dataset: dict[str, Any], overwrite: bool) -> None:
    """``TRAIN_SIZE`` / ``VAL_SIZE`` / ``TEST_SIZE`` with the reference's rules."""
    given = {key: dataset[key] for key in ("train_size", "val_size", "test_size") if key in dataset}
    if not given:
        return
    name = str(dataset.get("name", "")).lower()
    if name in ("imdb", "glue"):
        keys = ", ".join(f"DATASET.{key.upper()}" for key in given)
        raise ConfigError(f"{keys}: the {name} splits have fixed sizes; remove {keys}")
    for key in given:
        new = key.removesuffix("_size")
        names = (f"DATASET.{key.upper()}", f"DATASET.{new.upper()}")
        _move(dataset, key, dataset, new, names, overwrite)
    if name in ("pmnist", "smnist") and "train_size" in given:
        train, val = dataset.get("train"), dataset.get("val")
        if not isinstance(train, int) or isinstance(train, bool):
            return  # the schema reports the type
        if val is None:
            dataset["val"] = MNIST_TRAIN_IMAGES - train
        elif isinstance(val, int) and train + val != MNIST_TRAIN_IMAGES:
            raise ConfigError(
                f"DATASET.TRAIN_SIZE + VAL_SIZE must be {MNIST_TRAIN_IMAGES} for {name} "
                f"(the MNIST training images), got {train} + {val}"
            )


#: reference model names that read token ids through an embedding of VOCAB_SIZE rows
_WITH_EMBEDDINGS = ("binadamssmwithembeddings", "qssmwithembeddings", "qornnwithembeddings")
REFERENCE_VOCAB_SIZE = 10_000


def _model_keys(model: dict[str, Any]) -> list[str]:
    name = str(model.get("name", "")).lower()
    if name in _WITH_EMBEDDINGS and model.get("vocab_size") is None:
        model["vocab_size"] = REFERENCE_VOCAB_SIZE  # the reference's default
    return [
        f"MODEL.{key.upper()} has no effect (the reference swallows it too)"
        for key in ("givens", "multiparameters")
        if model.get(key) is not None
    ]


def _optimizer_keys(train: dict[str, Any], overwrite: bool) -> None:
    """``OPTIMIZER_CONFIG.lr`` -> ``LR``; StepLR's ``SCHEDULER_CONFIG`` -> GAMMA, STEP_SIZE."""
    options = train.get("optimizer_config")
    if isinstance(options, Mapping):
        options = dict(options)
        if "lr" in options:
            names = ("TRAIN.OPTIMIZER_CONFIG.lr", "TRAIN.LR")
            _move(options, "lr", train, "lr", names, overwrite)
        train["optimizer_config"] = options or None
    scheduler = resolve_tag(train.get("scheduler", "steplr"), "scheduler", "TRAIN.SCHEDULER")
    options = train.get("scheduler_config")
    if isinstance(options, Mapping) and str(scheduler).lower() == "steplr":
        options = dict(options)
        for key in ("gamma", "step_size"):
            if key in options:
                names = (f"TRAIN.SCHEDULER_CONFIG.{key}", f"TRAIN.{key.upper()}")
                _move(options, key, train, key, names, overwrite)
        train["scheduler_config"] = options or None


def _metric_keys(train: dict[str, Any]) -> list[str]:
    """``METRICS: {name: tag}`` -> the list of tags (logged as ``accuracy``)."""
    metrics = train.get("metrics")
    if not isinstance(metrics, Mapping):
        return []
    train["metrics"] = list(metrics.values()) or None
    return [
        f"TRAIN.METRICS: {name!r} is logged as 'accuracy' (train/accuracy, val/accuracy)"
        for name in metrics
        if str(name) != "accuracy"
    ]


def check_kwargs(
    target: Callable, kwargs: Mapping[str, Any] | None, key: str, skip: tuple[str, ...] = ()
) -> None:
    """Every name of ``kwargs`` is a parameter of ``target`` (other than ``skip``).

    Raises:
        ConfigError: an unknown kwarg, naming ``key`` and the accepted names.
    """
    if not kwargs:
        return
    params = [
        name
        for name, param in inspect.signature(target).parameters.items()
        if name not in ("self", *skip)
        and param.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    for name in kwargs:
        if name not in params:
            raise ConfigError(
                f"{key}: {getattr(target, '__name__', target)} has no argument {name!r}; "
                f"accepted: {', '.join(params)}"
            )
