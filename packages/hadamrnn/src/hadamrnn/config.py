"""YAML configuration of HadamRNN runs (reference ``config`` loading), validated on load.

The files keep the reference layout: sections ``DATASET``, ``MODEL`` and ``TRAIN`` plus the
top-level ``PROJECT`` / ``USE_WANDB``; keys are case-insensitive (lower-cased on load, as the
reference does). Unlike the reference, a typo or a wrong type is an error naming the key and
the file (:class:`bnn_shared.errors.ConfigError`), the path of ``--config`` is taken
literally, and ``$module.Name`` values are not imported: losses and metrics are names from
registries (the reference's ``$torch.nn.CrossEntropyLoss`` spelling is accepted).
The legacy keys of the reference configs (``GIVENS``, ``MULTIPARAMETERS``, ``DISPLAY_EPOCH``,
``DISPLAY_EVERY``, ``GET_GRADIENTS``, ``ACTIVATION_CONFIG``, ``ACTIVATION_FINAL``) are accepted
and ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from bnn_shared.config import ConfigModel, apply_overrides, from_dict, load_yaml, to_dict
from bnn_shared.errors import ConfigError
from pydantic import Field, model_validator

__all__ = ["Config", "DatasetConfig", "ModelConfig", "TrainConfig", "load", "lower_keys"]


class DatasetConfig(ConfigModel):
    """``DATASET``: which data and how much of it."""

    name: str = "sdigits"  # copy_task, pmnist, smnist, sdigits, pdigits, imdb, glue (aliases ok)
    task: str | None = None  # GLUE task: sst2 or qqp
    train: int | None = None  # training-set size (copy task; MNIST: 60000 - val)
    val: int | None = None  # validation size
    test: int | None = None  # test size (copy task)
    seq_length: int | None = None  # copy: TOTAL length T; imdb / glue: tokens kept
    sent_length: int = 10  # copy task: K symbols to remember
    vocabulary: int = 10  # copy task: blank + 8 symbols + marker
    seed: int = 0  # copy task data seed
    weighted_sampler: bool | None = None  # class-balanced sampling (default: on for GLUE)
    vocab_size: int = 10000  # imdb: keep the most frequent words (Keras num_words)


class ModelConfig(ConfigModel):
    """``MODEL``: architecture; ``name`` picks the model (see ``getters.MODELS``)."""

    name: str = "hadamrnn"  # hadamrnn (BinadamSSM), ornn, qornn, lstm
    hidden_size: int = 64
    input_size: int = 1
    output_size: int = 10
    basic_block: str | int = "full"  # 'full' = HadamRNN; k = blocks of 2^k (Block-HadamRNN)
    num_bits: int | None = 4  # bits of U and V (None: float)
    recurrent_bits: int | None = None  # QORNN: bits of W (default num_bits)
    qoutput: bool = True  # quantize V
    manytomany: bool = False  # one output per step (copy task)
    activation: str = "relu"  # read-out activation (ReLU in every paper config)
    bias: bool = True  # recurrent bias b
    bias_final: bool = True  # output bias c
    single_layer: bool = True  # the 2-layer reference variant is broken; only True
    vocab_size: int | None = None  # token inputs through an embedding (IMDB, GLUE)
    embeddings_dropout: float | None = None  # default 0 (HadamRNN) / 0.5 (QORNN)
    linear_recurrent: bool = True  # False: feed ReLU(h) back (sequential engine)
    readout: Literal["last_position", "last_token", "mean"] = "last_position"
    engine: Literal["parallel", "sequential"] = "parallel"
    clip_sign: bool = False  # clamp HadamRNN's latent s to [-1, 1] (off in the paper)
    # ORNN: map of torch's orthogonal parametrization (cayley is about 13x cheaper at n = 512)
    orthogonal_map: Literal["matrix_exp", "cayley", "householder"] = "matrix_exp"
    lambda_orth: float = 0.0  # orthogonality penalty: only 0 (W is orthogonal by design)
    seed: int = 0  # the one seed of model, data order and loaders
    # legacy keys of the reference configs, accepted and ignored
    givens: Any = None
    multiparameters: Any = None
    activation_config: Any = None
    activation_final: Any = None


class TrainConfig(ConfigModel):
    """``TRAIN``: optimisation and evaluation."""

    loss_fn: str = "cross_entropy"  # cross_entropy or bce_with_logits
    metrics: str | list[str] | None = "accuracy"  # accuracy (logit > 0 for one output) or none
    batch_size: int = 64
    val_batch_size: int | None = None  # default: a tenth of the split, as the reference
    n_epochs: int = 10
    lr: float = 1e-3
    # learning rate of HadamRNN's sign latents s: None = LR (the paper); 0 keeps the random
    # initial signs (each flip of a trained model scrambles W^k: see the package README)
    sign_lr: float | None = None
    # learning rate of the recurrent matrix's parameters of any model (HadamRNN: s, as
    # SIGN_LR; ORNN: its orthogonal parametrization; QORNN: its latent matrix), never of the
    # recurrent bias: None = LR (the paper); orthogonal-RNN recipes use LR / 10 here
    recurrent_lr: float | None = None
    optimizer: str = "adam"
    gamma: float = 0.98  # StepLR factor per epoch
    step_size: int = 1
    torch_device: str = "auto"  # the reference configs say cuda:0
    # CUDA: float32 matmuls and convolutions on TF32 tensor cores, the default of torch 1.7 to
    # 1.11 on Ampere or newer GPUs (the reference ran torch 1.10 on cuda:0); no effect on CPU
    allow_tf32: bool = False
    track_flips: bool = True
    max_batches: int | None = None  # cap on training batches per epoch (smoke runs, bench)
    eval_best: bool = False  # test the best-validation weights instead of the last ones
    save_test_output: bool = False  # GLUE: write the submission TSV of the test split
    # legacy keys, ignored
    display_epoch: Any = None
    display_every: Any = None
    get_gradients: Any = None


class Config(ConfigModel):
    """A whole run: ``PROJECT``, ``USE_WANDB`` and the three sections."""

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    project: str = "hadamRNN_quantized"
    use_wandb: bool = False

    @model_validator(mode="after")
    def _check(self) -> Config:
        model = self.model
        if not model.single_layer:
            raise ConfigError("MODEL.SINGLE_LAYER: only single-layer models exist (True)")
        if model.lambda_orth != 0:
            raise ConfigError("MODEL.LAMBDA_ORTH must be 0: W is orthogonal by construction")
        if model.activation.lower() != "relu":
            raise ConfigError(f"MODEL.ACTIVATION: only relu is implemented, got {model.activation}")
        if isinstance(model.basic_block, str) and model.basic_block != "full":
            raise ConfigError(
                f"MODEL.BASIC_BLOCK must be 'full' or an integer, got {model.basic_block!r}"
            )
        positive = {
            "hidden_size": model.hidden_size,
            "input_size": model.input_size,
            "output_size": model.output_size,
            "batch_size": self.train.batch_size,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key.upper()} must be >= 1, got {value}")
        if self.train.n_epochs < 0:
            raise ConfigError(f"TRAIN.N_EPOCHS must be >= 0, got {self.train.n_epochs}")
        return self


def lower_keys(data: Any) -> Any:
    """Mapping keys lower-cased, recursively (the reference's convention)."""
    if isinstance(data, Mapping):
        return {str(key).lower(): lower_keys(value) for key, value in data.items()}
    if isinstance(data, list):
        return [lower_keys(value) for value in data]
    return data


def load(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (or the defaults), apply ``KEY.SUB=value`` overrides, validate.

    Raises:
        ConfigError: missing file, bad YAML, unknown key or wrong type; the message names the
            key and the file.
    """
    data = lower_keys(load_yaml(path)) if path else {}
    overrides = [_lower_override(item) for item in overrides]
    data = apply_overrides(data, overrides)
    source = str(path) if path else "the defaults"
    if overrides:
        source += " (with --set overrides)"
    try:
        return from_dict(Config, data, source=source)
    except ConfigError as exc:
        if source in str(exc):
            raise
        raise ConfigError(f"{source}: {exc}") from exc


def _lower_override(item: str) -> str:
    key, sep, value = str(item).partition("=")
    return f"{key.lower()}{sep}{value}"


def as_dict(cfg: Config) -> dict[str, Any]:
    """Plain data of ``cfg`` (lower-case keys), readable back by :func:`from_dict`."""
    return to_dict(cfg)
