"""Training configuration of ``python -m dwn.train``: one schema, validated on load.

Every key is also a command-line flag (``--lr 1e-3``, ``--layers 2000 1000``); a YAML file
given with ``--config`` sets the base values (``configs/dwn/*.yaml``).
"""

from __future__ import annotations

from typing import Literal

from bnn_shared.config import ConfigModel
from pydantic import Field, ValidationInfo, field_validator, model_validator

__all__ = ["TrainConfig"]

Encoder = Literal["thermometer", "gaussian", "distributive"]
Mapping = Literal["random", "arange", "learnable"]


class TrainConfig(ConfigModel):
    """Settings of one DWN training run (defaults: the reference MNIST example)."""

    dataset: str = Field("mnist", description="mnist, fashion_mnist, digits, jsc")
    encoder: Encoder = Field("distributive", description="thermometer kind")
    bits: int = Field(3, description="thermometer bits per feature")
    feature_wise: bool = Field(True, description="one threshold set per feature")
    layers: list[int] = Field(default_factory=lambda: [2000, 1000], description="LUTs per layer")
    n: int = Field(6, description="inputs per LUT")
    mapping: list[Mapping] = Field(
        default_factory=lambda: ["learnable", "random"],
        description="wiring per layer (one value applies to every layer)",
    )
    lm_tau: float = Field(0.001, description="LearnableMapping softmax temperature")
    tau: float = Field(1 / 0.3, description="GroupSum temperature")
    alpha: float | None = Field(None, description="EFD alpha (None: 0.5*0.75^(n-1))")
    beta: float | None = Field(None, description="EFD beta (None: 1/3)")
    efd: Literal["code", "paper"] = Field(
        "code", description="EFD weighting: reference code (beta^H) or paper (1/(H+1))"
    )
    backend: Literal["auto", "torch", "cpp", "cuda"] = Field(
        "auto", description="EFD kernel backend"
    )
    epochs: int = Field(30, description="training epochs")
    batch_size: int = Field(32, description="training batch size")
    test_batch_size: int = Field(1000, description="evaluation batch size")
    lr: float = Field(1e-2, description="Adam learning rate")
    step_size: int = Field(14, description="StepLR step (epochs)")
    gamma: float = Field(0.1, description="StepLR factor")
    train_size: float = Field(0.8, description="jsc: train share of the split")
    seed: int = Field(0, description="seed of weights, wiring and shuffling")
    export: bool = Field(True, description="export the trained model and check the compiled copy")

    @field_validator("mapping")
    @classmethod
    def _one_mapping_for_every_layer(cls, mapping: list[str], info: ValidationInfo) -> list[str]:
        layers = info.data.get("layers")
        return mapping * len(layers) if layers and len(mapping) == 1 else mapping

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
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
                raise ValueError(f"dwn config: {message}")
        return self
