"""Bit-packed export of both studies' models: the ``bnn_shared.models`` entry point.

``python -m bnn_shared.export RUN_DIR`` asks this module to rebuild a trained run's model
(:func:`from_run`), stores it with its 1-bit weights packed (the core's
:func:`~bnn_shared.export.save_binary`) and :func:`bnn_shared.export.load` rebuilds it from
the file (:func:`build`). The model is built by the run's own experiment
(:meth:`~binary_feedback.experiment.BinaryFeedbackExperiment.build_model`), so an exported
model is the trained one, binarised the same way:

=============  ===========================================  ===================================
model class    the model                                    what is packed (1 bit per weight)
=============  ===========================================  ===================================
``study_a``    study A's MLP (:class:`~.models.MLP`)        ``weight`` of every binarised
                                                            ``BinaryLinear`` (core quant layer)
``study_b``    a registered model (MLP, SmallCNN,           ``parametrizations.weight.original``
               MobileNetV2, vgg16/19, MLPMixer),            of every binarised Linear/Conv (a
               binarised by ``utils.binary``                quantizer parametrization)
=============  ===========================================  ===================================

Everything else (the full-precision first and last layers, biases, batch-norm parameters and
running statistics, LayerNorms) is stored as the float tensors it is. The stored config is
plain: ``{"study_config": <the run's study config>, "in_shape": [C, H, W], "num_classes": K,
"dtype": "float32"}``; ``dtype`` is the trained weights' (the experiment trains in float32;
study A's reference ran in float64, and an MLP built in float64 is rebuilt in float64).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from bnn_shared.config import from_dict, to_dict
from bnn_shared.data import dataset_info
from bnn_shared.errors import ConfigError
from bnn_shared.export import RunModel, load_trained_weights
from bnn_shared.registry import Registry
from torch import Tensor, nn

from . import data
from .config import StudyAConfig, StudyBConfig, StudyConfig
from .experiment import BinaryFeedbackExperiment, experiment_for
from .train import config_from_mapping

__all__ = [
    "MODEL_CLASSES",
    "TEST_BATCH",
    "build",
    "from_run",
    "model_config",
    "summary_inputs",
    "test_inputs",
]

#: The exported model classes: each study's schema, from which the experiment builds it.
MODEL_CLASSES: Registry[type[StudyConfig]] = Registry("exported model class")
MODEL_CLASSES.register("study_a", StudyAConfig)
MODEL_CLASSES.register("study_b", StudyBConfig)
#: Test inputs per batch (the evaluation's batch size).
TEST_BATCH = 500
_KEYS = ("study_config", "in_shape", "num_classes", "dtype")


def _model_class(config: StudyConfig) -> str:
    return "study_b" if isinstance(config, StudyBConfig) else "study_a"


def _experiment(config: StudyConfig) -> tuple[BinaryFeedbackExperiment, tuple[int, ...], int]:
    """The run's experiment with the model's input shape set (as ``setup`` sets it from the
    data), its input shape and the number of classes, from the dataset's description."""
    experiment = experiment_for(config)
    info = dataset_info(config.dataset)
    experiment.in_shape = experiment.input_shape(tuple(info.input_shape))
    return experiment, tuple(experiment.in_shape), int(info.num_classes)


def model_config(config: StudyConfig, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The plain config :func:`build` rebuilds a run's model from (stored in the file)."""
    _, in_shape, num_classes = _experiment(config)
    return {
        "study_config": to_dict(config),
        "in_shape": list(in_shape),
        "num_classes": num_classes,
        "dtype": str(dtype).removeprefix("torch."),
    }


def _dtype(name: Any) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(f"dtype {name!r} is not a torch floating-point dtype")
    return dtype


def build(model_class: str, config: Mapping[str, Any]) -> nn.Module:
    """A fresh model of ``model_class`` (``study_a`` or ``study_b``) from :func:`model_config`'s
    plain values, built by the study's experiment (binarised as the run was), in ``dtype``.

    Raises:
        ConfigError: unknown model class (naming the choices), a missing key, or a study
            config the schema rejects.
    """
    schema = MODEL_CLASSES.get(model_class)
    missing = [key for key in _KEYS if key not in config]
    if missing:
        raise ConfigError(f"model config lacks {', '.join(missing)} (needs {', '.join(_KEYS)})")
    study_config = from_dict(schema, config["study_config"], source=f"{model_class} config")
    experiment = experiment_for(study_config)
    model = experiment.build_model(tuple(config["in_shape"]), int(config["num_classes"]))
    return model.to(_dtype(config["dtype"]))


def _weights_dtype(state_dict: Mapping[str, Any]) -> torch.dtype:
    floats = [
        v.dtype for v in state_dict.values() if isinstance(v, Tensor) and v.is_floating_point()
    ]
    return floats[0] if floats else torch.float32


def from_run(run_config: Mapping[str, Any], state_dict: Mapping[str, Any]) -> RunModel:
    """The trained model of a run, from its ``config.yaml`` (parsed) and checkpoint weights.

    Raises:
        ConfigError: the config is not a valid study config.
        CheckpointError: the weights do not fit the model the config describes.
    """
    config = config_from_mapping(run_config)
    dtype = _weights_dtype(state_dict)
    values = model_config(config, dtype)
    model_class = _model_class(config)
    model = build(model_class, values)
    load_trained_weights(model, state_dict, "the config's model")
    summary_kwargs = {"input_size": tuple(values["in_shape"]), "dtypes": [dtype]}
    return RunModel(model.eval(), model_class, values, summary_kwargs, dict(run_config))


def test_inputs(run: RunModel, data_dir: str | os.PathLike | None = None) -> Iterator[Tensor]:
    """The run's test-set images as the model sees them at evaluation, in batches of
    :data:`TEST_BATCH`: the study's scaling (:meth:`preprocess`) and, in study B, the resize
    to the model's input (:meth:`prepare`), in the model's dtype. The test split is used in
    both studies (a study-B run without ``test_set`` selected epochs on a validation split).
    ``data_dir`` None reads ``BNN_DATA_DIR``."""
    config = config_from_mapping(run.run_config)
    experiment, _, _ = _experiment(config)
    x_test, _ = data.load_split(config.dataset, "test", data_dir)  # as training reads it
    x_test = experiment.preprocess(x_test)
    dtype = next(run.model.parameters()).dtype
    for start in range(0, len(x_test), TEST_BATCH):
        yield experiment.prepare(x_test[start : start + TEST_BATCH]).to(dtype)


def summary_inputs(model_class: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's arguments for a model :func:`build` made from ``config`` (used by
    ``python -m bnn_shared.export FILE.bnn``)."""
    return {"input_size": tuple(config["in_shape"]), "dtypes": [_dtype(config["dtype"])]}
