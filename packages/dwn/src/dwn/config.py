"""Training configuration of ``python -m dwn.train``: one dataclass, validated on load.

Every key is also a command-line flag (``--lr 1e-3``, ``--layers 2000 1000``); a YAML file
given with ``--config`` sets the base values (``configs/dwn/*.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bnn_shared.errors import ConfigError

__all__ = ["TrainConfig"]

Encoder = Literal["thermometer", "gaussian", "distributive"]
Mapping = Literal["random", "arange", "learnable"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    """Settings of one DWN training run (defaults: the reference MNIST example)."""

    dataset: str = field(default="mnist", metadata=_help("mnist, fashion_mnist, digits, jsc"))
    encoder: Encoder = field(default="distributive", metadata=_help("thermometer kind"))
    bits: int = field(default=3, metadata=_help("thermometer bits per feature"))
    feature_wise: bool = field(default=True, metadata=_help("one threshold set per feature"))
    layers: list[int] = field(
        default_factory=lambda: [2000, 1000], metadata=_help("LUTs per layer")
    )
    n: int = field(default=6, metadata=_help("inputs per LUT"))
    mapping: list[Mapping] = field(
        default_factory=lambda: ["learnable", "random"],
        metadata=_help("wiring per layer (one value applies to every layer)"),
    )
    lm_tau: float = field(default=0.001, metadata=_help("LearnableMapping softmax temperature"))
    tau: float = field(default=1 / 0.3, metadata=_help("GroupSum temperature"))
    alpha: float | None = field(default=None, metadata=_help("EFD alpha (None: 0.5*0.75^(n-1))"))
    beta: float | None = field(default=None, metadata=_help("EFD beta (None: 1/3)"))
    efd: Literal["code", "paper"] = field(
        default="code", metadata=_help("EFD weighting: reference code (beta^H) or paper (1/(H+1))")
    )
    backend: Literal["auto", "torch", "cpp", "cuda"] = field(
        default="auto", metadata=_help("EFD kernel backend")
    )
    epochs: int = field(default=30, metadata=_help("training epochs"))
    batch_size: int = field(default=32, metadata=_help("training batch size"))
    test_batch_size: int = field(default=1000, metadata=_help("evaluation batch size"))
    lr: float = field(default=1e-2, metadata=_help("Adam learning rate"))
    step_size: int = field(default=14, metadata=_help("StepLR step (epochs)"))
    gamma: float = field(default=0.1, metadata=_help("StepLR factor"))
    train_size: float = field(default=0.8, metadata=_help("jsc: train share of the split"))
    seed: int = field(default=0, metadata=_help("seed of weights, wiring and shuffling"))
    export: bool = field(
        default=True, metadata=_help("export the trained model and check the compiled copy")
    )

    def __post_init__(self) -> None:
        if len(self.mapping) == 1:
            self.mapping = self.mapping * len(self.layers)
        checks = [
            (self.bits >= 1, "bits must be >= 1"),
            (1 <= self.n <= 10, "n must be in 1..10"),
            (len(self.layers) >= 1 and min(self.layers) >= 1, "layers must be positive sizes"),
            (len(self.mapping) == len(self.layers), "give one mapping, or one per layer"),
            (self.tau > 0, "tau must be > 0"),
            (self.epochs >= 0 and self.batch_size >= 1, "epochs >= 0 and batch_size >= 1"),
            (0 < self.train_size < 1, "train_size must be in (0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"dwn config: {message}")
