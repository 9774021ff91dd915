"""YAML configuration of HadamRNN runs (reference ``config`` loading), validated on load.

The files keep the reference layout: sections ``DATASET``, ``MODEL`` and ``TRAIN`` plus the
top-level ``PROJECT`` / ``USE_WANDB``. Section names and their first-level keys are
case-insensitive (the reference lower-cases them); keys of nested mappings
(``OPTIMIZER_CONFIG: {lr: ...}``) are kept verbatim. The reference's own files load unchanged
(:mod:`hadamrnn.reference_format`: split sizes, ``*_CONFIG`` kwargs, ``$`` tags from a table of
allowed paths, never imported). Unlike the reference, a typo or a wrong type is an error
naming the key and the file (:class:`bnn_shared.errors.ConfigError`; sizes, epochs and
learning rates must be positive), the path of ``--config`` is taken literally (``.yaml`` or
``.yml``), and a key whose feature is not implemented (``MODEL.GIVENS``,
``MODEL.MULTIPARAMETERS``) gives a one-line warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from bnn_shared.config import ConfigModel, apply_overrides, from_dict, load_yaml
from bnn_shared.errors import ConfigError
from pydantic import Field, field_validator, model_validator

from .engines import ENGINES
from .reference_format import read_sections, resolve_tag, translate, warn

__all__ = ["Config", "DatasetConfig", "ModelConfig", "TrainConfig", "load", "lower_keys"]


class DatasetConfig(ConfigModel):
    """``DATASET``: which data and how much of it."""

    name: str = Field(
        "sdigits",
        description="copy_task, pmnist, smnist, sdigits, pdigits, imdb, glue (reference names "
        "such as CopyMemory accepted); see dataset_tools.DATASETS",
    )
    task: str | None = Field(None, description="GLUE task: sst2 or qqp")
    train: int | None = Field(None, ge=1, description="training-set size (copy task)")
    val: int | None = Field(None, ge=1, description="validation size (copy task, MNIST)")
    test: int | None = Field(None, ge=1, description="test size (copy task)")
    seq_length: int | None = Field(
        None, ge=1, description="copy task: the TOTAL length T; imdb / glue: tokens kept"
    )
    sent_length: int = Field(10, ge=1, description="copy task: K symbols to remember")
    vocabulary: int = Field(10, ge=3, description="copy task: blank + symbols + marker")
    seed: int = Field(0, description="copy task data seed")
    weighted_sampler: bool | None = Field(
        None, description="class-balanced sampling (default: on for GLUE)"
    )
    vocab_size: int = Field(
        10000, ge=1, description="imdb: keep the most frequent words (Keras num_words)"
    )


class ModelConfig(ConfigModel):
    """``MODEL``: architecture; ``name`` picks the model (see ``getters.MODELS``)."""

    name: str = Field("hadamrnn", description="hadamrnn (BinadamSSM), ornn, qornn, lstm")
    hidden_size: int = Field(64, ge=1, description="n, the state size")
    input_size: int = Field(1, ge=1, description="d_in (embedding size for token inputs)")
    output_size: int = Field(10, ge=1, description="d_out")
    basic_block: str | int = Field(
        "full", description="'full' = HadamRNN; k = blocks of 2^k (Block-HadamRNN)"
    )
    num_bits: int | None = Field(4, ge=1, description="bits of U and V (null: float)")
    recurrent_bits: int | None = Field(
        None, ge=1, description="QORNN: bits of W (default num_bits)"
    )
    qoutput: bool = Field(True, description="quantize V")
    manytomany: bool = Field(False, description="one output per step (copy task)")
    activation: str = Field(
        "relu",
        description="read-out activation: relu or modrelu (reference tags $torch.nn.ReLU, "
        "$layers.modrelu); the carried state's activation for qrnn",
    )
    bias: bool = Field(True, description="recurrent bias b")
    bias_final: bool = Field(True, description="output bias c")
    single_layer: bool = Field(True, description="only True (the 2-layer variant is broken)")
    vocab_size: int | None = Field(
        None, ge=1, description="token inputs through an embedding (IMDB, GLUE)"
    )
    embeddings_dropout: float | None = Field(
        None, ge=0, lt=1, description="default 0 (HadamRNN) / 0.5 (QORNN)"
    )
    linear_recurrent: bool = Field(True, description="False: feed ReLU(h) back (sequential)")
    readout: Literal["last_position", "last_token", "mean"] = "last_position"
    engine: str = Field("parallel", description="parallel or sequential (engines.ENGINES)")
    clip_sign: bool = Field(False, description="clamp HadamRNN's latent s to [-1, 1]")
    orthogonal_map: Literal["matrix_exp", "cayley", "householder"] = Field(
        "matrix_exp",
        description="ORNN: map of torch's orthogonal parametrization (cayley is about 13x "
        "cheaper at n = 512)",
    )
    lambda_orth: float = Field(0.0, description="orthogonality penalty: only 0")
    seed: int = Field(0, description="the one seed of model, data order and loaders")
    num_bits_feat: int | None = Field(
        None, ge=1, description="QSSM: bits of the input and state quantizers (null: float)"
    )
    pre_scaling_feat: float = Field(
        1.0, gt=0, description="QSSM: pre-scale of the state quantizer's input"
    )
    use_bjorck: bool = Field(False, description="SpectralQSSM: Bjorck orthonormalisation")
    activation_config: dict[str, Any] | None = Field(
        None, description="modrelu: {features: HIDDEN_SIZE}; relu: null (or {inplace: ...})"
    )
    activation_final: str | None = Field(
        None, description="activation of the many-to-one logits: only null (none)"
    )
    activation_final_config: dict[str, Any] | None = Field(
        None, description="kwargs of ACTIVATION_FINAL: only null"
    )
    # reference keys without effect there too: a warning on load (reference_format)
    givens: Any = Field(None, description="no effect (the reference swallows it)")
    multiparameters: Any = Field(None, description="no effect (the reference swallows it)")

    @field_validator("engine")
    @classmethod
    def _registered_engine(cls, value: str) -> str:
        return ENGINES.canonical(value)

    @field_validator("activation", "activation_final")
    @classmethod
    def _activation_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = str(resolve_tag(value, "activation", "MODEL.ACTIVATION")).lower()
        if name not in ("relu", "modrelu"):
            raise ValueError(f"relu or modrelu ($torch.nn.ReLU, $layers.modrelu), got {value!r}")
        return name

    @model_validator(mode="after")
    def _check_activation(self) -> ModelConfig:
        options = dict(self.activation_config or {})
        allowed = {"relu": {"inplace"}, "modrelu": {"features"}}[self.activation]
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(
                f"MODEL.ACTIVATION_CONFIG: {self.activation} takes {', '.join(sorted(allowed))}, "
                f"not {', '.join(sorted(unknown))}"
            )
        features = options.get("features", self.hidden_size)
        if features != self.hidden_size:
            raise ValueError(
                f"MODEL.ACTIVATION_CONFIG.features ({features}) must be MODEL.HIDDEN_SIZE "
                f"({self.hidden_size}): modrelu has one bias per state unit"
            )
        if self.activation_final is not None or self.activation_final_config:
            raise ValueError(
                "MODEL.ACTIVATION_FINAL (and its config) must be null: a final activation on "
                "the logits is not implemented (every reference config has null)"
            )
        return self


class TrainConfig(ConfigModel):
    """``TRAIN``: optimisation and evaluation."""

    loss_fn: str = Field(
        "cross_entropy",
        description="cross_entropy or bce_with_logits ($torch.nn.CrossEntropyLoss, "
        "$torch.nn.BCEWithLogitsLoss)",
    )
    loss_config: dict[str, Any] | None = Field(
        None, description="loss kwargs: label_smoothing, weight (cross_entropy), pos_weight"
    )
    metrics: str | list[str] | None = Field(
        "accuracy",
        description="accuracy (argmax, or logit > 0 for one output) or none; the reference's "
        "{accuracy: $torchmetrics.Accuracy} mapping is accepted",
    )
    metrics_config: dict[str, Any] | None = Field(
        None, description="metric kwargs as torchmetrics: task, num_classes, threshold"
    )
    batch_size: int = Field(64, ge=1, description="training batch size")
    val_batch_size: int | None = Field(
        None, ge=1, description="default: a tenth of the split, as the reference"
    )
    n_epochs: int = Field(10, ge=1, description="epochs")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    # each flip of a trained model's sign scrambles W^k: see the package README
    sign_lr: float | None = Field(
        None,
        ge=0,
        description="learning rate of HadamRNN's sign latents s: null = LR (the paper); 0 "
        "keeps the random initial signs",
    )
    recurrent_lr: float | None = Field(
        None,
        ge=0,
        description="learning rate of the recurrent matrix's parameters of any model (never "
        "of its bias): null = LR (the paper); orthogonal-RNN recipes use LR / 10",
    )
    optimizer: str = Field("adam", description="adam, adamw or sgd ($torch.optim.Adam, ...)")
    optimizer_config: dict[str, Any] | None = Field(
        None, description="optimizer kwargs other than lr (weight_decay, betas, momentum, ...)"
    )
    scheduler: str = Field(
        "steplr",
        description="steplr, exponentiallr, cosineannealinglr or multisteplr "
        "($torch.optim.lr_scheduler.StepLR, ...), stepped once per epoch",
    )
    scheduler_config: dict[str, Any] | None = Field(
        None, description="scheduler kwargs (StepLR's gamma and step_size: GAMMA, STEP_SIZE)"
    )
    gamma: float = Field(
        0.98, gt=0, description="StepLR factor per step_size epochs (any scheduler's gamma)"
    )
    step_size: int = Field(1, ge=1, description="StepLR period in epochs")
    lambda_orth: float = Field(
        0.0, ge=0, description="orthogonality penalty: only 0 (the reference crashes on > 0)"
    )
    torch_device: str = Field("auto", description="the reference configs say cuda:0")
    # torch 1.7 to 1.11 did this by default on Ampere or newer GPUs (the reference: torch 1.10)
    allow_tf32: bool = Field(
        False, description="CUDA float32 matmuls and convolutions in TF32 (no effect on CPU)"
    )
    track_flips: bool = Field(True, description="count the sign flips of s per epoch")
    max_batches: int | None = Field(
        None, ge=1, description="cap on training batches per epoch (smoke runs, bench)"
    )
    eval_best: bool = Field(
        False, description="test the best-validation weights instead of the last ones"
    )
    save_test_output: bool = Field(
        False, description="GLUE: write the submission TSV of the test split"
    )
    alternate_gradients: bool = Field(
        False,
        description="train the binary latents and the other parameters in alternate epochs "
        "(latents frozen in epochs 1, 3, ...)",
    )
    compute_sv: bool = Field(
        True, description="singular values of the recurrent matrix each epoch (sv/min, ...)"
    )
    get_gradients: bool = Field(
        False, description="mean |grad| of the recurrent layer's own parameters per epoch"
    )
    display_every: int | None = Field(
        None, ge=1, description="print the loss every k training batches (null: never)"
    )
    display_epoch: bool = Field(False, description="print the epoch's loss and validation")

    @field_validator("loss_fn")
    @classmethod
    def _loss_tag(cls, value: str) -> str:
        return resolve_tag(value, "loss", "TRAIN.LOSS_FN")

    @field_validator("optimizer")
    @classmethod
    def _optimizer_tag(cls, value: str) -> str:
        return resolve_tag(value, "optimizer", "TRAIN.OPTIMIZER")

    @field_validator("scheduler")
    @classmethod
    def _scheduler_tag(cls, value: str) -> str:
        return resolve_tag(value, "scheduler", "TRAIN.SCHEDULER")

    @field_validator("metrics")
    @classmethod
    def _metric_tags(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            return [resolve_tag(item, "metric", "TRAIN.METRICS") for item in value]
        return resolve_tag(value, "metric", "TRAIN.METRICS")

    @model_validator(mode="after")
    def _check_train(self) -> TrainConfig:
        if self.lambda_orth != 0:
            raise ValueError(
                "TRAIN.LAMBDA_ORTH must be 0: the reference's orthogonality penalty is not "
                "published (its runs crash on > 0), and W is orthogonal by construction"
            )
        return self


class Config(ConfigModel):
    """A whole run: ``PROJECT``, ``USE_WANDB`` and the three sections."""

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    project: str = Field("hadamRNN_quantized", description="the wandb project")
    use_wandb: bool = Field(False, description="log to Weights & Biases")

    @model_validator(mode="after")
    def _check(self) -> Config:
        model = self.model
        if not model.single_layer:
            raise ValueError("MODEL.SINGLE_LAYER: only single-layer models exist (True)")
        if model.lambda_orth != 0:
            raise ValueError("MODEL.LAMBDA_ORTH must be 0: W is orthogonal by construction")
        if isinstance(model.basic_block, str) and model.basic_block != "full":
            raise ValueError(
                f"MODEL.BASIC_BLOCK must be 'full' or an integer, got {model.basic_block!r}"
            )
        if self.train.sign_lr is not None and self.train.recurrent_lr is not None:
            raise ValueError("set TRAIN.SIGN_LR or TRAIN.RECURRENT_LR, not both")
        return self


def lower_keys(data: Any) -> Any:
    """Mapping keys lower-cased, recursively (overrides' paths are matched this way)."""
    if isinstance(data, Mapping):
        return {str(key).lower(): lower_keys(value) for key, value in data.items()}
    if isinstance(data, list):
        return [lower_keys(value) for value in data]
    return data


def load(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (or the defaults), apply ``KEY.SUB=value`` overrides, validate.

    The package's files and the reference's are both read (:mod:`hadamrnn.reference_format`);
    the optimizer, scheduler, loss and metric kwargs are checked against what they go to
    (:func:`hadamrnn.getters.check_config`), so a bad one fails before anything runs.

    Raises:
        ConfigError: missing file, an extension other than .yaml / .yml, bad YAML, unknown
            key or wrong type, an unknown ``$`` tag or kwarg; the message names the key and
            the file.
    """
    source = str(path) if path else "the defaults"
    if path and Path(path).suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(f"{path}: a config file ends in .yaml or .yml")
    overrides = [_lower_override(item) for item in overrides]
    if overrides:
        source += " (with --set overrides)"
    try:
        data, _ = translate(read_sections(load_yaml(path))) if path else ({}, [])
        data, warnings = translate(apply_overrides(data, overrides), overwrite=True)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    cfg = from_dict(Config, data, source=source)
    for message in warnings:
        warn(f"{source}: {message}")
    from .getters import check_config  # getters imports this module

    try:
        check_config(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


def _lower_override(item: str) -> str:
    """``TRAIN.OPTIMIZER_CONFIG.lr=...``: section and first-level key lower-cased, the rest
    verbatim (as in the files)."""
    key, sep, value = str(item).partition("=")
    parts = key.split(".")
    return ".".join([part.lower() for part in parts[:2]] + parts[2:]) + sep + value
