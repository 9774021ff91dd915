"""Bit-packed export of the four binary EP networks: the ``bnn_shared.models`` entry point.

``python -m bnn_shared.export RUN_DIR`` asks this module to rebuild a trained run's network
(:func:`from_run`), stores it with its binary weights packed (the core's
:func:`~bnn_shared.export.save_binary`) and :func:`bnn_shared.export.load` rebuilds it from
the file (:func:`build`).

Model classes are the :data:`~eqprop_binary.network.NETWORKS` names (``fc_bin_W``,
``fc_bin_W_N``, ``conv_bin_W``, ``conv_bin_W_N``). Every weight layer is a core quant layer
whose weight IS ``alpha * sign`` (kernel quantizer ``NoOp(precision=1)``): the file stores
it with 1 bit per weight and a codebook ``{-alpha, +alpha}`` (per tensor for fc layers, per
output channel for conv layers). Biases and the scaling factors ``alpha`` are stored as
float32. The stored config is plain: ``{"settings": <the run's Settings>, "input_shape":
[...]}`` (one input without the batch dimension: ``[features]`` for fc nets, ``[C, H, W]``
for conv nets).

The networks relax (:meth:`~eqprop_binary.dynamics.EPNetwork.infer`: the free phase from
the initial states, ``T`` steps), so :func:`predict` runs that free phase and reads the
output as the evaluation does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from bnn_shared.config import from_dict, to_dict
from bnn_shared.data import dataset_info, load_tensors
from bnn_shared.errors import ConfigError
from bnn_shared.export import RunModel, load_trained_weights
from torch import Tensor

from .dynamics import EPNetwork
from .network import NETWORKS
from .settings import Settings
from .tools import is_cifar10

__all__ = [
    "MODEL_CLASSES",
    "build",
    "from_run",
    "model_config",
    "predict",
    "summary_inputs",
    "test_inputs",
]

#: The exported model classes (the canonical names of :data:`NETWORKS`).
MODEL_CLASSES = ("fc_bin_W", "fc_bin_W_N", "conv_bin_W", "conv_bin_W_N")
_KEYS = ("settings", "input_shape")


def _model_class(cfg: Settings) -> str:
    return f"{cfg.archi}_{cfg.binary_settings}"


def model_config(cfg: Settings) -> dict[str, Any]:
    """The plain config :func:`build` rebuilds a run's network from: the settings and one
    input's shape (``[features]`` for fc nets, the dataset's ``[C, H, W]`` for conv nets)."""
    shape = tuple(dataset_info(cfg.dataset).input_shape)
    if cfg.archi == "fc":
        shape = (cfg.layersList[0],)
    return {"settings": to_dict(cfg), "input_shape": list(shape)}


def build(model_class: str, config: Mapping[str, Any]) -> EPNetwork:
    """A fresh network of ``model_class`` from :func:`model_config`'s plain values.

    Raises:
        ConfigError: unknown model class (naming the choices), a missing key, settings the
            schema rejects, or settings of another architecture or binary setting.
        ShapeError: the input shape does not fit the settings.
    """
    if model_class not in MODEL_CLASSES:
        raise ConfigError(
            f"unknown model class {model_class!r}; choose one of {', '.join(MODEL_CLASSES)}"
        )
    missing = [key for key in _KEYS if key not in config]
    if missing:
        raise ConfigError(f"model config lacks {', '.join(missing)} (needs {', '.join(_KEYS)})")
    cfg = from_dict(Settings, config["settings"], source=f"{model_class} config")
    if _model_class(cfg) != model_class:
        raise ConfigError(f"the settings describe a {_model_class(cfg)} network, not {model_class}")
    return NETWORKS.get(model_class).from_input(cfg, tuple(config["input_shape"]))


def from_run(run_config: Mapping[str, Any], state_dict: Mapping[str, Any]) -> RunModel:
    """The trained network of a run, from its ``config.yaml`` (parsed) and checkpoint weights.

    Raises:
        ConfigError: the config is not valid settings.
        CheckpointError: the weights do not fit the network the config describes.
    """
    settings = {key: value for key, value in run_config.items() if key != "run"}
    cfg = from_dict(Settings, settings, source="the run's config.yaml")
    values = model_config(cfg)
    model_class = _model_class(cfg)
    model = build(model_class, values)
    load_trained_weights(model, state_dict, "the config's network")
    summary_kwargs = {"input_size": tuple(values["input_shape"])}
    return RunModel(model.eval(), model_class, values, summary_kwargs, dict(run_config))


def test_inputs(run: RunModel, data_dir: str | os.PathLike | None = None) -> Iterator[Tensor]:
    """The run's test-set inputs as the evaluation feeds them (:func:`~.tools.test_epoch`):
    images in [0, 1] (CIFAR-10 normalised), flattened for fc nets, in batches of
    ``--test_batchSize``. ``data_dir`` None reads ``BNN_DATA_DIR``."""
    cfg = run.model.cfg
    x, _, _ = load_tensors(cfg.dataset, "test", data_dir, normalized=is_cifar10(cfg.dataset))
    for start in range(0, len(x), cfg.test_batchSize):
        batch = x[start : start + cfg.test_batchSize]
        yield batch.flatten(1) if cfg.archi == "fc" else batch


@torch.no_grad()
def predict(model: EPNetwork, inputs: Tensor) -> Tensor:
    """Predicted classes: the free phase (``T`` steps) and the evaluation's "Ave" read-out
    (:meth:`~eqprop_binary.dynamics.EPNetwork.predict`)."""
    return model.predict(inputs)


def summary_inputs(model_class: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's arguments for a model :func:`build` made from ``config`` (used by
    ``python -m bnn_shared.export FILE.bnn``)."""
    return {"input_size": tuple(config["input_shape"])}
