"""The settings of a run: one schema per study, filled by YAML files, flags and ``--set``.

:class:`StudyAConfig` (ACM SAC 2023, binary MLPs) and :class:`StudyBConfig` (arXiv
2408.04460, the extension) share :class:`StudyConfig`'s keys (method, dataset, epochs,
learning rate, seed, monitoring) with their own defaults (study A: its code's, 5 epochs, lr
1e-3, GD; study B: 80 epochs, lr 1e-3, bp) and add their own. Keys are the command-line flag
names with underscores (``hidden_act`` for ``--hidden-act``); every value is checked when
the schema is built, so a mistake is one line naming the key::

    config = StudyAConfig(method="DRTP", bn=True, hidden="256,128")
    config.hidden                          # [256, 128]
    StudyBConfig(model="ResNet")           # ConfigError: key 'model': unknown model 'ResNet'
"""

from __future__ import annotations

import sys
from typing import Literal

import torch
from bnn_shared.config import ConfigModel
from bnn_shared.data.registry import DATASETS as CORE_DATASETS
from bnn_shared.registry import Registry
from pydantic import Field, PositiveInt, ValidationInfo, field_validator, model_validator

from .commons.activations import ACTIVATIONS
from .models import MODELS
from .models.autoencoder import AUTOENCODERS, check_reconstruction
from .training import RULES
from .training.regimes import FEEDBACK_INITS

__all__ = ["DATASETS", "STUDIES", "STUDY_A_METHODS", "StudyAConfig", "StudyBConfig", "StudyConfig"]

#: The datasets the studies train on: the core's canonical name of each, under the core
#: registry's names and aliases (``FashionMNIST``, ``fmnist``, ``CIFAR-10``, study A's
#: ``cifar``, ``dogs``, ``indoor`` ...).
DATASETS: Registry[str] = Registry("dataset", flag="--dataset")
_STUDIED = ("mnist", "fashion_mnist", "cifar10", "imagenette", "stanford_dogs", "mit_indoor")
for _name in (*_STUDIED, "digits"):
    _aliases = [alias for alias, name in CORE_DATASETS.aliases().items() if name == _name]
    DATASETS.register(_name, _name, aliases=_aliases)


#: The training rules of study A's code (canonical names); the others are study B's.
STUDY_A_METHODS = frozenset({"bp", "dfa", "drtp"})


class StudyConfig(ConfigModel):
    """The keys both studies have; the subclasses set their study's defaults."""

    study: str = Field("A", description="the study whose regime this run follows")
    method: str = Field("DFA", description="training rule: bp (gd), dfa, drtp, hsic, sigprop")
    dataset: str = Field(
        "MNIST", description="MNIST, FashionMNIST, CIFAR10, imagenette or digits (stored canonical)"
    )
    epochs: int = Field(100, ge=1, description="epochs to train")
    lr: float = Field(1e-4, gt=0, description="learning rate")
    seed: int | None = Field(
        None, description="random seed (None: drawn by the runner and stored in config.yaml)"
    )
    monitor: bool = Field(
        False, description="log saturation and normalised HSIC per layer at each epoch end"
    )
    verbose: int = Field(
        0, ge=0, description="0: quiet epochs, 1: a line per epoch, 2 (study A): also per batch"
    )
    run_name: str | None = Field(None, description="a label for the run (stored only)")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        RULES.canonical(value)
        return value

    @field_validator("verbose", mode="before")
    @classmethod
    def _counted_verbose(cls, value: object) -> object:
        # -v is counted; a config.yaml written when it was a switch holds true/false
        return int(value) if isinstance(value, bool) else value

    @field_validator("dataset")
    @classmethod
    def _canonical_dataset(cls, value: str) -> str:
        return DATASETS.get(value)


class StudyAConfig(StudyConfig):
    """Study A (SAC 2023): an MLP trained with a summed squared error and plain SGD.

    The MLP is ``prod(input) - hidden... - classes`` with ``hidden_act`` between layers and
    ``last_act`` at the output; ``binarize`` makes every Linear but the output binary.
    """

    study: Literal["A"] = Field("A", description="the study whose regime this run follows")
    # the study code's command-line defaults (spec A.1), not the paper's settings: those are
    # in configs/binary_feedback/mnist_*.yaml and study_a/
    method: str = Field("GD", description="training rule: GD (BP), DFA, DRTP (any case)")
    epochs: int = Field(5, ge=1, description="epochs to train")
    lr: float = Field(1e-3, gt=0, description="SGD step on batch-summed gradients")
    bn: bool = Field(False, description="batch norm after each hidden Linear")
    sn: bool = Field(False, description="Scaler (x / fan-in) after each hidden Linear")
    init: float = Field(0.1, gt=0, description="weights U(-init, init)")
    hidden_act: str = Field("tanh", description="signsat, tanh, sign, signtanh, id")
    last_act: str = Field("tanh", description="output activation")
    batch_size: int = Field(128, ge=1, description="batch size (the last partial one is dropped)")
    hidden: list[PositiveInt] = Field(
        [700, 500], description="hidden sizes (a list, or comma-separated: 700,500)"
    )
    binarize: bool = Field(False, description="binary weights in every Linear but the output")
    binarize_last: bool = Field(
        False, description="binary output weights (identity STE; also without binarize)"
    )
    weight_ste: Literal["identity", "sat", "tanh"] = Field(
        "identity", description="pseudo-gradient of the binary weights"
    )
    weight_clipping: float | None = Field(
        None, description="clip every |W| to this after a step (None or <= 0: no clipping)"
    )
    batch_stats: bool = Field(
        True, description="per-batch saturation, activation and gradient statistics (spec A.2)"
    )
    dtype: Literal["float32", "float64"] = Field(
        "float32", description="parameters and inputs (the study's NumPy code is float64)"
    )
    wandb_project: str | None = Field(
        None,
        description="W&B project (default, as the study's code: '<dataset as typed, "
        "lower-cased> custom', so -d cifar logs to 'cifar custom')",
    )

    @model_validator(mode="before")
    @classmethod
    def _study_spellings(cls, data: object) -> object:
        """The study's key ``batchsize`` (``--batchsize``) is ``batch_size``; the W&B project
        is named from the dataset as typed, before it becomes canonical."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "batchsize" in data:
            if "batch_size" in data and data["batch_size"] != data["batchsize"]:
                raise ValueError("batchsize and batch_size disagree; give one of them")
            data["batch_size"] = data.pop("batchsize")
        if data.get("wandb_project") is None:
            data["wandb_project"] = f"{str(data.get('dataset', 'MNIST')).lower()} custom"
        return data

    @field_validator("method")
    @classmethod
    def _study_method(cls, value: str) -> str:
        if RULES.canonical(value) not in STUDY_A_METHODS:
            raise ValueError(
                f"study A trains with GD (BP), DFA or DRTP; {value!r} is a study B method "
                "(choose --study B or a study B flag)"
            )
        return value.upper() if value.lower() in ("gd", "dfa", "drtp") else value

    @field_validator("weight_clipping")
    @classmethod
    def _clipping_off_when_not_positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            print(
                f"warning: --weight-clipping {value} <= 0: weight clipping is disabled",
                file=sys.stderr,
            )
            return None
        return value

    @field_validator("hidden", mode="before")
    @classmethod
    def _comma_separated_sizes(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]  # one hidden layer, e.g. ``hidden: 256`` in a YAML file
        if not isinstance(value, str):
            return value
        try:
            return [int(size) for size in value.split(",") if size.strip()]
        except ValueError:
            raise ValueError(f"--hidden {value!r}: give sizes like 700,500,300,200") from None

    @field_validator("hidden_act", "last_act")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        ACTIVATIONS.canonical(value)
        return value


class StudyBConfig(StudyConfig):
    """Study B (arXiv 2408.04460): registered models, cross-entropy, Adam, early stopping.

    Without ``test_set`` a ``train_fraction`` share of the training set is trained on and
    the rest is the validation split (``val/`` metrics, early stopping, best epoch).
    """

    study: Literal["B"] = Field("B", description="the study whose regime this run follows")
    method: str = Field("bp", description="bp, dfa, drtp, hsic, pepita (sigprop)")
    epochs: int = Field(80, ge=1, description="epochs to train (at most; early stopping)")
    dataset: str = Field(
        "imagenette",
        description="imagenette (default), MNIST, FashionMNIST, CIFAR10, dogs, indoor, digits "
        "(stored canonical)",
    )
    val_train_transforms: bool = Field(
        False,
        description="the validation split gets the training transforms, drawn once (the "
        "reference, quirk 27); default: the test transform",
    )
    lr: float = Field(1e-3, gt=0, description="learning rate")
    model: str = Field(
        "MobileNetV2",
        description="MobileNetV2, vgg16, vgg19, MLPMixer, FullyConnected (MLP), SmallCNN; with "
        "reconstruction: vgg11, vgg13, vgg16, vgg19 (autoencoders)",
    )
    binary_act: bool = Field(False, description="sign activations")
    binary_weights: bool = Field(False, description="sign weights (first and last layers kept)")
    unsat: bool = Field(False, description="identity STE instead of the saturated one")
    remove_skips: bool = Field(False, description="drop the skip connections")
    wd: float = Field(0.0, ge=0, description="weight decay (L2 in the gradient)")
    opt: str = Field("Adam", description="any torch.optim class name")
    augment: bool = Field(False, description="training augmentation")
    bs: int = Field(10, ge=1, description="batch size")
    test_set: bool = Field(False, description="train on all of train, select on test")
    train_fraction: float = Field(
        0.9, gt=0, lt=1, description="share of train trained on (without test_set)"
    )
    early_stopping_delta: float = Field(
        1e-3, description="stop once the evaluated loss fell by at most this in 4 epochs"
    )
    hsic_gamma: float = Field(2.0, description="HSIC bottleneck's gamma")
    hsic_mode: Literal["biased", "plausible"] = Field("biased", description="HSIC estimator")
    bw_init: str = Field("normal", description="normal, uniform, kaiming_uniform, kaiming_normal")
    pepita_gain: float = Field(1.0, description="SigpropTL gain (see README)")
    pepita_gain_mode: Literal["reference", "fixed"] = Field(
        "reference", description="reference: the gain has no effect; fixed: F is scaled by it"
    )
    image_size: int | None = Field(
        None, gt=0, description="resize inputs (None: 224 for the large models, else native)"
    )
    no_wandb: bool = Field(False, description="no W&B logging (the default here)")
    # -- study B rest: model options, reconstruction, monitoring, saving, tags ----------------
    monitor: bool = Field(
        False,
        description="per-layer grad norm, mean |grad| and activation saturation at the first "
        "batch of every epoch",
    )
    mlp_mixer_layers: int = Field(12, ge=1, description="MLPMixer depth (mixer blocks)")
    mlp_mixer_dim: int = Field(512, ge=2, description="MLPMixer width (even: channel MLP D/2)")
    fc_batchnorm: bool = Field(False, description="FullyConnected: BatchNorm1d per hidden layer")
    reconstruction: bool = Field(
        False, description="train a VGG autoencoder (vgg11/13/16/19) to reconstruct its input"
    )
    reconstruction_target: Literal["image", "normalized"] = Field(
        "image",
        description="image: the [0, 1] image (matches the sigmoid output); normalized: the "
        "normalised input (the reference, unreachable by the sigmoid)",
    )
    num_workers: int = Field(4, ge=0, description="data-loader workers (stored; see README)")
    save: bool = Field(False, description="write the trained model to model.bnn at the end")
    autosave: bool = Field(False, description="write model.bnn after every epoch (implies save)")
    tags: list[str] = Field([], description="W&B run tags (stored in config.yaml)")
    # -- study B's extra training rules (ls, spsa, spsah, spsag), Biprop, Bi-Real, slow DRTP --
    mut_prob: float = Field(0.1, ge=0, le=1, description="ls: probability of flipping an entry")
    ls_accuracy: bool = Field(False, description="ls: the fitness is the batch accuracy")
    spsa_c: float = Field(1e-3, gt=0, description="spsa, spsah, spsag: perturbation size c")
    spsa_g_pert: Literal["drtp", "hebbian"] = Field(
        "drtp", description="spsag: direction s @ B_m (drtp) or the output itself (hebbian)"
    )
    biprop: float | None = Field(
        None, gt=0, le=1, description="Biprop: share of weights kept (--biprop alone: 0.2)"
    )
    bireal_act: bool = Field(False, description="Bi-Real activations (ignored with binary_act)")
    slow_drtp: bool = Field(False, description="drtp: the hook variant (reference's DRTP class)")

    @field_validator("slow_drtp")
    @classmethod
    def _slow_drtp_needs_drtp(cls, value: bool, info: ValidationInfo) -> bool:
        method = info.data.get("method")
        if value and method is not None and RULES.canonical(method) != "drtp":
            raise ValueError(f"--slow-drtp is a variant of --method drtp, not {method!r}")
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value.lower() not in AUTOENCODERS:
            MODELS.canonical(value)
        return value

    @field_validator("mlp_mixer_dim")
    @classmethod
    def _even_mixer_dim(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"--mlp-mixer-dim {value} must be even (the channel MLP is D/2 wide)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _autosave_implies_save(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("autosave") is True:
            return {**data, "save": True}  # as in the reference
        return data

    @model_validator(mode="after")
    def _reconstruction_fits(self) -> StudyBConfig:
        check_reconstruction(self.model, self.method, self.reconstruction)
        if self.reconstruction and self.image_size is not None and self.image_size % 32:
            raise ValueError(
                f"--reconstruction needs --image-size a multiple of 32, got {self.image_size}"
            )
        return self

    @field_validator("opt")
    @classmethod
    def _torch_optimizer(cls, value: str) -> str:
        found = getattr(torch.optim, value, None)
        if not (isinstance(found, type) and issubclass(found, torch.optim.Optimizer)):
            raise ValueError(f"--opt {value!r} is not a torch.optim optimizer")
        return value

    @field_validator("bw_init")
    @classmethod
    def _known_feedback_init(cls, value: str) -> str:
        FEEDBACK_INITS.canonical(value)
        return value


#: The studies by name (``--study A|B``): their schemas.
STUDIES: Registry[type[StudyConfig]] = Registry("study", flag="--study")
STUDIES.register("A", StudyAConfig)
STUDIES.register("B", StudyBConfig)
