"""Export of HadamRNN models as bit-packed files (the ``bnn_shared.models`` entry point).

``python -m bnn_shared.export RUN_DIR`` uses this module to rebuild a run's model
(:func:`from_run`), to rebuild a model from a packed file (:func:`build`, from the plain model
config stored in it) and to read the run's test inputs (:func:`test_inputs`). What is packed:
HadamRNN's sign vector ``s`` at 1 bit per sign (the Hadamard matrix is implicit), the k-bit
``U`` and ``V`` (:class:`~hadamrnn.quantized_layers.QLinear`) and QORNN's k-bit ``W`` as
codebook + codes, the k-bit ``W`` of QRNN / QSSM / SpectralQSSM (:mod:`hadamrnn.qmodels`);
biases, float layers (ORNN, LSTM, embeddings, a float ``W``) stay float32.

The model class is ``MODEL.NAME`` (``hadamrnn``, ``ornn``, ``qornn``, ``lstm``, ``qrnn``,
``qssm``, ``qssmwithembeddings``, ``spectralqssm``) and the config
is the run's ``MODEL`` section as plain values.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from bnn_shared.config import from_dict, to_dict
from bnn_shared.data.splits import batches
from bnn_shared.export import RunModel, load_trained_weights
from torch import Tensor, nn

from .config import Config, ModelConfig, lower_keys
from .dataset_tools import DATASETS, load_split
from .getters import MODELS, get_model

__all__ = ["build", "from_run", "predict", "run_config", "summary_kwargs", "test_inputs"]

#: Default sequence length of each dataset (``DATASET.SEQ_LENGTH`` overrides copy, IMDB, GLUE).
SEQUENCE_LENGTHS = {
    "copy_task": 1000,
    "pmnist": 784,
    "smnist": 784,
    "sdigits": 64,
    "pdigits": 64,
    "imdb": 500,
    "glue": 128,
}


def build(model_class: str, config: dict[str, Any]) -> nn.Module:
    """A fresh model ``model_class`` (``MODEL.NAME``) from the plain ``MODEL`` section.

    Raises:
        ConfigError: unknown model name (the message lists the choices) or a bad config.
    """
    name = MODELS.canonical(model_class)
    cfg = from_dict(ModelConfig, {**config, "name": name}, source="the packed model's config")
    return MODELS.get(name)(cfg)


def run_config(run_config: Mapping[str, Any]) -> Config:
    """The validated :class:`~hadamrnn.config.Config` of a run's ``config.yaml`` (the core
    runner's ``run`` record left out)."""
    stored = {k: v for k, v in lower_keys(dict(run_config)).items() if k != "run"}
    return from_dict(Config, stored, source="the run's config.yaml")


def summary_kwargs(cfg: Config) -> dict[str, Any]:
    """Arguments of :func:`bnn_shared.summary.summary` for one input sequence of the run's
    dataset: ``(T, d_in)`` floats, or ``(T,)`` token ids for embedding models."""
    dataset = DATASETS.canonical(cfg.dataset.name)
    steps = cfg.dataset.seq_length if dataset in ("copy_task", "imdb", "glue") else None
    steps = steps or SEQUENCE_LENGTHS[dataset]
    tokens = MODELS.canonical(cfg.model.name) == "qssmwithembeddings"  # vocabulary default 10000
    if cfg.model.vocab_size is not None or tokens:
        return {"input_size": (steps,), "dtypes": [torch.long]}
    return {"input_size": (steps, cfg.model.input_size)}


def from_run(run_config_: dict[str, Any], state_dict: dict[str, Any]) -> RunModel:
    """The trained model of a run directory (its config and checkpoint), in eval mode.

    Raises:
        ConfigError: the config is not a valid HadamRNN config.
        CheckpointError: the weights do not fit the model the config describes.
    """
    cfg = run_config(run_config_)
    model = get_model(cfg)
    load_trained_weights(model, state_dict, "the run's config")
    return RunModel(
        model=model.eval(),
        model_class=MODELS.canonical(cfg.model.name),
        config=to_dict(cfg.model),
        summary_kwargs=summary_kwargs(cfg),
        run_config=dict(run_config_),
    )


def test_inputs(run: RunModel, data_dir: str | None) -> Iterator[Tensor]:
    """The run's test inputs in the batches of the package's evaluation
    (:func:`hadamrnn.training.evaluate`: ``TRAIN.VAL_BATCH_SIZE`` or a tenth of the split),
    from :func:`hadamrnn.dataset_tools.load_split` (same preprocessing, same pMNIST
    permutation). GLUE's test split has hidden labels but real inputs."""
    cfg = run_config(run.run_config)
    split = load_split(cfg.dataset, "test", data_dir)
    size = cfg.train.val_batch_size or max(1, math.ceil(len(split) / 10))
    for x, _ in batches(split, size):
        yield x


def predict(model: nn.Module, inputs: Tensor) -> Tensor:
    """Predicted classes: the arg-max of the logits, or ``logit > 0`` for one output (binary
    tasks); many-to-many models give one class per step."""
    logits = model(inputs)
    if logits.shape[-1] == 1:
        return (logits[..., 0] > 0).long()
    return logits.argmax(-1)
