"""The settings of a run: every flag of the reference ``main.py``, validated once.

Names, defaults and list orders are the reference's (see ``python -m eqprop_binary.main
--help``): ``layersList`` is given input first, as typed on the command line, and every
per-layer list (``gamma``, ``gradThreshold``, ``lrBias``, ``lrAlpha``) output layer first;
``convList`` runs from the top conv layer down to the input channels. The networks reverse
``layersList`` themselves. Only ``optim`` differs: it defaults to ``ep`` (the reference's
default, ``train_ep``, trained nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from bnn_shared.errors import ConfigError

__all__ = ["Settings", "NUM_CLASSES"]

NUM_CLASSES = 10


def _list(*values: float) -> Any:
    return field(default_factory=lambda: list(values))


@dataclass
class Settings:
    """One run's settings (attribute names = the reference's flag names)."""

    device: str = "-1"
    archi: str = "conv"
    layersList: list[int] = _list(10)
    convList: list[int] = _list(64, 32, 1)
    padding: int = 0
    kernelSize: int = 5
    Fpool: int = 2
    optim: str = "ep"
    activationFun: str = "hardsigm"
    T: int = 150
    Kmax: int = 10
    gamma_neur: float = 0.5
    beta: float = 0.3
    random_beta: int = 1
    binary_settings: str = "bin_W"
    gamma: list[float] = _list(1e-5, 1e-5)
    classi_gamma: list[float] = _list(1e-5)
    conv_gamma: list[float] = _list(1e-5, 1e-5)
    gradThreshold: list[float] = _list(5e-7, 5e-8)
    classi_threshold: list[float] = _list(5e-8)
    conv_threshold: list[float] = _list(5e-8, 5e-8)
    rho_threshold: float = 0.5
    expand_output: int = 1
    dataset: str = "mnist"
    lrBias: list[float] = _list(0.025, 0.05, 0.1)
    batchSize: int = 64
    test_batchSize: int = 512
    epochs: int = 2
    learnAlpha: int = 1
    lrAlpha: list[float] = _list(0.0, 0.0, 0.0)
    decayLrAlpha: float = 1.0
    epochDecayLrAlpha: int = 1000
    # -- options of this implementation (reference behaviour where results depend on it) --
    nudge: str = "current"
    clamp_output: int = 0
    flip_rule: str = "auto"
    seed: int = 0

    @classmethod
    def from_namespace(cls, args: Any) -> Settings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})

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

    def validate(self) -> Settings:
        """Raise :class:`ConfigError` with one clear sentence for impossible settings."""
        choices = {
            "archi": ("fc", "conv"),
            "binary_settings": ("bin_W", "bin_W_N"),
            "optim": ("ep", "bptt"),
            "activationFun": ("hardsigm", "heaviside"),
            "nudge": ("current", "free"),
            "flip_rule": ("auto", ">", ">="),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"--{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )
        positive = ("T", "Kmax", "batchSize", "test_batchSize", "expand_output", "kernelSize")
        for name in (*positive, "Fpool"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.padding < 0:
            raise ConfigError("--epochs and --padding must be >= 0")
        if self.beta == 0:
            raise ConfigError("--beta must not be 0: the EP gradient divides by beta")
        if not 0 < self.gamma_neur <= 1:
            raise ConfigError(f"--gamma_neur must be in (0, 1], got {self.gamma_neur}")
        if self.decayLrAlpha <= 0:
            raise ConfigError("--decayLrAlpha must be > 0")
        if self.optim == "bptt":
            if self.binary_activations:
                raise ConfigError(
                    "--optim bptt exists for --binary_settings bin_W only (as in the paper)"
                )
            if self.Kmax >= self.T:
                raise ConfigError("--optim bptt needs --T larger than --Kmax")
            if self.learnAlpha and any(self.lrAlpha):
                raise ConfigError(
                    "learnt scaling factors (--learnAlpha 1 with a nonzero --lrAlpha) are "
                    "trained by EP only; use --learnAlpha 0 with --optim bptt"
                )
        if min(self.layersList, default=0) < 1:
            raise ConfigError("--layersList needs positive sizes")
        if self.archi == "fc":
            if len(self.layersList) < 2:
                raise ConfigError("--layersList needs the input size and at least one layer")
            self._need("gamma", self.n_fc)
            self._need("gradThreshold", self.n_fc)
        else:
            if len(self.convList) < 2 or min(self.convList) < 1:
                raise ConfigError(
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
        outputs = self.layersList[-1]
        if outputs != NUM_CLASSES * self.expand_output:
            raise ConfigError(
                f"the output layer has {outputs} neurons, but {NUM_CLASSES} classes with "
                f"--expand_output {self.expand_output} need {NUM_CLASSES * self.expand_output}"
            )
        return self

    def _need(self, name: str, count: int) -> None:
        values = getattr(self, name)
        if len(values) < count:
            layers = "layer" if count == 1 else "layers"
            raise ConfigError(
                f"--{name} has {len(values)} value(s) but the network has {count} {layers} "
                "that need one each (output layer first)"
            )
