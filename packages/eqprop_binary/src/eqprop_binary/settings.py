"""The settings of a run: every flag of the reference ``main.py``, one validated schema.

Names, defaults and list orders are the reference's (see ``python -m eqprop_binary.main
--help``): ``layersList`` is given input first, as typed on the command line, and every
per-layer list (``gamma``, ``gradThreshold``, ``lrBias``, ``lrAlpha``) output layer first;
``convList`` runs from the top conv layer down to the input channels. The networks reverse
``layersList`` themselves. Only ``optim`` differs: it defaults to ``ep`` (the reference's
default, ``train_ep``, trained nothing).

Flags, a YAML file (``--config``) and ``--set KEY=VALUE`` fill the same schema
(:class:`Settings`); a mistake is one :class:`~bnn_shared.errors.ConfigError` line naming
the flag.
"""

from __future__ import annotations

from typing import Annotated, Any

from bnn_shared.config import ConfigModel
from pydantic import Field, field_validator, model_validator

__all__ = ["CHOICES", "NUM_CLASSES", "Settings"]

NUM_CLASSES = 10

#: the allowed values of the flags that name a choice, in the reference's order
CHOICES: dict[str, tuple[str, ...]] = {
    "archi": ("fc", "conv"),
    "binary_settings": ("bin_W", "bin_W_N"),
    "optim": ("ep", "bptt"),
    "activationFun": ("hardsigm", "heaviside"),
    "nudge": ("current", "free"),
    "flip_rule": ("auto", ">", ">="),
}

Size = Annotated[int, Field(ge=1)]
Rate = Annotated[float, Field(ge=0)]  # learning rates and flip thresholds
Momentum = Annotated[float, Field(gt=0, le=1)]  # the flip optimizer's gamma (Bop)
Switch = Annotated[int, Field(ge=0, le=1)]  # the reference's 0/1 flags


def _list(*values: float, description: str) -> Any:
    return Field(default_factory=lambda: list(values), description=description)


class Settings(ConfigModel):
    """One run's settings (attribute names = the reference's flag names)."""

    device: str = Field("-1", description="-1: CPU, N: cuda:N; also cpu, cuda, auto")
    archi: str = Field("conv", description="fc or conv")
    layersList: list[Size] = _list(10, description="fc layer sizes, input first")
    convList: list[Size] = _list(
        64, 32, 1, description="conv channels, top conv layer first, input channels last"
    )
    padding: int = Field(0, ge=0, description="convolution padding")
    kernelSize: int = Field(5, ge=1, description="kernel size")
    Fpool: int = Field(2, ge=1, description="pooling size and stride")
    optim: str = Field("ep", description="ep or bptt")
    activationFun: str = Field("hardsigm", description="hardsigm or heaviside")
    T: int = Field(150, ge=1, description="free-phase steps")
    Kmax: int = Field(10, ge=1, description="nudged-phase steps")
    gamma_neur: float = Field(0.5, gt=0, le=1, description="leaky-integrator rate")
    beta: float = Field(0.3, description="nudging strength (not 0)")
    random_beta: Switch = Field(1, description="1: random sign of beta per batch")
    binary_settings: str = Field("bin_W", description="bin_W or bin_W_N")
    gamma: list[Momentum] = _list(1e-5, 1e-5, description="fc momentum rates, output first")
    classi_gamma: list[Momentum] = _list(1e-5, description="classifier momentum rates (conv)")
    conv_gamma: list[Momentum] = _list(1e-5, 1e-5, description="conv momentum rates, top first")
    gradThreshold: list[Rate] = _list(5e-7, 5e-8, description="fc flip thresholds, output first")
    classi_threshold: list[Rate] = _list(5e-8, description="classifier flip thresholds (conv)")
    conv_threshold: list[Rate] = _list(5e-8, 5e-8, description="conv flip thresholds, top first")
    rho_threshold: float = Field(0.5, description="theta of H(s - theta)")
    expand_output: int = Field(1, ge=1, description="output neurons per class")
    dataset: str = Field("mnist", description="mnist, cifar10, digits, fashion_mnist")
    lrBias: list[Rate] = _list(0.025, 0.05, 0.1, description="bias learning rates")
    batchSize: int = Field(64, ge=1, description="training batch size")
    test_batchSize: int = Field(512, ge=1, description="test batch size")
    epochs: int = Field(2, ge=1, description="training epochs")
    learnAlpha: Switch = Field(1, description="1: learn the scaling factors")
    lrAlpha: list[Rate] = _list(0.0, 0.0, 0.0, description="scaling-factor learning rates")
    decayLrAlpha: float = Field(1.0, gt=0, description="divide the --lrAlpha rates by this ...")
    epochDecayLrAlpha: int = Field(1000, description="... from this epoch on (1-based)")
    # -- options of this implementation (reference behaviour where results depend on it) --
    nudge: str = Field("current", description="output nudge with the current or free output")
    clamp_output: Switch = Field(0, description="conv bin_W: 1 clamps the nudged output")
    flip_rule: str = Field("auto", description="flip test: auto, > or >=")
    seed: int = Field(0, description="seed of weights, data order and beta signs")

    @field_validator("device", mode="before")
    @classmethod
    def _device_number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    # -- derived facts ---------------------------------------------------------------------

    @property
    def binary_activations(self) -> bool:
        return self.binary_settings == "bin_W_N"

    @property
    def n_fc(self) -> int:
        """Number of fully connected weight layers."""
        return len(self.layersList) - 1 if self.archi == "fc" else len(self.layersList)

    @property
    def n_conv(self) -> int:
        return len(self.convList) - 1 if self.archi == "conv" else 0

    @property
    def flip_inclusive(self) -> bool:
        """Flip test ``>=`` (reference conv nets) or ``>`` (reference fc nets)."""
        if self.flip_rule == "auto":
            return self.archi == "conv"
        return self.flip_rule == ">="

    def lr_alpha(self, epoch: int) -> list[float]:
        """Scaling-factor learning rates in ``epoch`` (1-based): divided by
        ``decayLrAlpha`` from epoch ``epochDecayLrAlpha`` on."""
        factor = 1.0 / self.decayLrAlpha if epoch >= self.epochDecayLrAlpha else 1.0
        return [lr * factor for lr in self.lrAlpha]

    # -- cross-field checks: one clear sentence per impossible combination -------------------

    @model_validator(mode="after")
    def _check(self) -> Settings:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"--{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )
        if self.beta == 0:
            raise ValueError("--beta must not be 0: the EP gradient divides by beta")
        if self.optim == "bptt":
            self._check_bptt()
        self._check_layers()
        outputs = self.layersList[-1]
        if outputs != NUM_CLASSES * self.expand_output:
            raise ValueError(
                f"the output layer has {outputs} neurons, but {NUM_CLASSES} classes with "
                f"--expand_output {self.expand_output} need {NUM_CLASSES * self.expand_output}"
            )
        return self

    def _check_bptt(self) -> None:
        if self.binary_activations:
            raise ValueError(
                "--optim bptt exists for --binary_settings bin_W only (as in the paper)"
            )
        if self.Kmax >= self.T:
            raise ValueError("--optim bptt needs --T larger than --Kmax")
        if self.learnAlpha and any(self.lrAlpha):
            raise ValueError(
                "learnt scaling factors (--learnAlpha 1 with a nonzero --lrAlpha) are "
                "trained by EP only; use --learnAlpha 0 with --optim bptt"
            )

    def _check_layers(self) -> None:
        if not self.layersList:
            raise ValueError("--layersList needs positive sizes")
        if self.archi == "fc":
            if len(self.layersList) < 2:
                raise ValueError("--layersList needs the input size and at least one layer")
            self._need("gamma", self.n_fc)
            self._need("gradThreshold", self.n_fc)
        else:
            if len(self.convList) < 2:
                raise ValueError(
                    "--convList needs at least two positive entries (top conv layer first, "
                    "the input channels last)"
                )
            self._need("classi_gamma", self.n_fc)
            self._need("classi_threshold", self.n_fc)
            self._need("conv_gamma", self.n_conv)
            self._need("conv_threshold", self.n_conv)
        self._need("lrBias", self.n_fc + self.n_conv)
        if self.learnAlpha:
            self._need("lrAlpha", self.n_fc + self.n_conv)

    def _need(self, name: str, count: int) -> None:
        values = getattr(self, name)
        if len(values) < count:
            layers = "layer" if count == 1 else "layers"
            raise ValueError(
                f"--{name} has {len(values)} value(s) but the network has {count} {layers} "
                "that need one each (output layer first)"
            )
