"""The ``bnn_shared.models`` entry point of dwn: rebuild, export and check a trained DWN.

``python -m bnn_shared.export RUN_DIR`` (and :func:`bnn_shared.export.load`) reach dwn
through this module. The model they ship is what a user runs on raw features:

    ``nn.Sequential(inputs=Flatten, encoder=<fitted thermometer>, bits=Flatten,
    network=Sequential(LUTLayer, ..., GroupSum))``

so that a reloaded file predicts from raw inputs (images are flattened first, as the training
does). In the packed file the LUTs are 1-bit truth tables, each wiring is ``ceil(log2(I))``
bits per index (a learnable mapping is stored as its argmax) and the thresholds stay float32.
This is a second format next to dwn's own integer-only ``.dwn`` export (:mod:`dwn.export`).

The training checkpoint holds the LUT network only: the thermometer is fitted on the training
split before training and not saved, so :func:`from_run` fits it again on the same split
(deterministic: the same thresholds) from the run's recorded data directory (or
``BNN_DATA_DIR``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from bnn_shared.config import from_dict
from bnn_shared.errors import ConfigError
from bnn_shared.export import RunModel, load_trained_weights
from torch import nn

from .binarization import Thermometer
from .config import TrainConfig
from .datasets import load_arrays
from .experiment import build_model, make_encoder

__all__ = [
    "MODEL_CLASSES",
    "MODEL_KEYS",
    "build",
    "classifier",
    "from_run",
    "summary_inputs",
    "test_inputs",
]

#: The model classes :func:`build` knows.
MODEL_CLASSES = ("DWN",)
#: The keys of :class:`~dwn.config.TrainConfig` that shape the model (the others train it).
MODEL_KEYS = (
    "encoder",
    "bits",
    "feature_wise",
    "layers",
    "n",
    "mapping",
    "lm_tau",
    "tau",
    "alpha",
    "beta",
    "efd",
    "backend",
)


def classifier(encoder: Thermometer, network: nn.Module) -> nn.Sequential:
    """Raw features (B, F) or images (B, *shape) to class scores: flatten, encode, flatten
    the bits (feature-major, as the training does), run the LUT network."""
    return nn.Sequential(
        OrderedDict(inputs=nn.Flatten(), encoder=encoder, bits=nn.Flatten(), network=network)
    )


def build(model_class: str, config: Mapping[str, Any]) -> nn.Module:
    """A fresh DWN classifier from the plain values :func:`from_run` stored.

    ``config`` holds the :data:`MODEL_KEYS` of the run's config plus ``features`` (raw
    features per sample) and ``classes``. The encoder's thresholds are a zero placeholder of
    the stored shape, and the wiring and tables are random: loading the file replaces them.

    Raises:
        ConfigError: an unknown ``model_class`` (the message names the choices) or a bad value.
        KeyError: a missing key.
    """
    if model_class not in MODEL_CLASSES:
        raise ConfigError(
            f"dwn cannot build the model class {model_class!r}; choices: {', '.join(MODEL_CLASSES)}"
        )
    cfg = from_dict(TrainConfig, {key: config[key] for key in MODEL_KEYS}, source="dwn model")
    features, classes = int(config["features"]), int(config["classes"])
    encoder = make_encoder(cfg)
    shape = (features, cfg.bits) if cfg.feature_wise else (cfg.bits,)
    encoder.thresholds = torch.zeros(shape, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):  # random wiring and tables, replaced on load
        network = build_model(cfg, features * cfg.bits, classes)
    return classifier(encoder, network)


def run_settings(run_config: Mapping[str, Any]) -> TrainConfig:
    """The :class:`~dwn.config.TrainConfig` of a run's ``config.yaml`` (without ``run``)."""
    settings = {key: value for key, value in run_config.items() if key != "run"}
    return from_dict(TrainConfig, settings, source="the run's config.yaml")


def from_run(run_config: Mapping[str, Any], state_dict: Mapping[str, Any]) -> RunModel:
    """The trained classifier of a run: its LUT network with the checkpoint's weights behind
    the thermometer fitted again on the run's training split.

    Raises:
        ConfigError: the config is not a dwn config.
        CheckpointError: the checkpoint does not fit the network the config describes.
        MissingDatasetError: the training split is not where the run recorded it (or in
            ``BNN_DATA_DIR``).
    """
    cfg = run_settings(run_config)
    data_dir = (run_config.get("run") or {}).get("data_dir")
    x_train, _, _, _, classes = load_arrays(cfg, data_dir)
    encoder = make_encoder(cfg).fit(x_train)
    features = x_train.shape[1]
    with torch.random.fork_rng(devices=[]):
        network = build_model(cfg, features * cfg.bits, classes)
    load_trained_weights(network, state_dict, "the run's DWN")
    config = {key: _plain(getattr(cfg, key)) for key in MODEL_KEYS}
    config.update(features=int(features), classes=int(classes))
    model = classifier(encoder, network).eval()
    return RunModel(model, "DWN", config, {"input_size": (int(features),)}, dict(run_config))


def summary_inputs(model_class: str, config: dict[str, Any]) -> dict[str, Any]:
    """The summary's arguments for a model :func:`build` made from ``config`` (used by
    ``python -m bnn_shared.export FILE.bnn``): one raw feature vector."""
    return {"input_size": (int(config["features"]),)}


def test_inputs(run: RunModel, data_dir: str | None) -> Iterator[torch.Tensor]:
    """The run's test features in batches of ``test_batch_size``: raw (flattened) features,
    which the classifier encodes as the training's evaluation does."""
    cfg = run_settings(run.run_config)
    _, _, x_test, _, _ = load_arrays(cfg, data_dir)
    yield from x_test.split(cfg.test_batch_size)


test_inputs.__test__ = False  # not a pytest test when imported into a test module


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value
