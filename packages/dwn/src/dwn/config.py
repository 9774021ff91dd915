"""Training configuration of ``python -m dwn.train``: one schema, validated on load.

Every key is also a command-line flag (``--lr 1e-3``, ``--layers 2000 1000``); a YAML file
given with ``--config`` sets the base values (``configs/dwn/*.yaml``), and ``--set KEY=VALUE``
overrides any key. A value out of range is one error naming the key (``key 'lr' must be
greater than 0``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from bnn_shared.config import ConfigModel
from pydantic import Field, ValidationInfo, field_validator, model_validator

from .binarization import ENCODERS

__all__ = ["TrainConfig"]

Mapping = Literal["random", "arange", "learnable"]
PositiveInt = Annotated[int, Field(gt=0)]


class TrainConfig(ConfigModel):
    """Settings of one DWN training run (defaults: the reference MNIST example)."""

    dataset: str = Field("mnist", description="mnist, fashion_mnist, digits, jsc")
    encoder: str = Field("distributive", description="thermometer, gaussian or distributive")
    bits: int = Field(3, ge=1, description="thermometer bits per feature")
    feature_wise: bool = Field(True, description="one threshold set per feature")
    layers: list[PositiveInt] = Field(
        default_factory=lambda: [2000, 1000], min_length=1, description="LUTs per layer"
    )
    n: int = Field(6, ge=1, le=10, description="inputs per LUT")
    mapping: list[Mapping] = Field(
        default_factory=lambda: ["learnable", "random"],
        min_length=1,
        description="wiring per layer (one value applies to every layer)",
    )
    lm_tau: float = Field(0.001, gt=0, description="LearnableMapping softmax temperature")
    tau: float = Field(1 / 0.3, gt=0, description="GroupSum temperature")
    alpha: float | None = Field(None, description="EFD alpha (None: 0.5*0.75^(n-1))")
    beta: float | None = Field(None, description="EFD beta (None: 1/3)")
    efd: Literal["code", "paper"] = Field(
        "code", description="EFD weighting: reference code (beta^H) or paper (1/(H+1))"
    )
    backend: Literal["auto", "torch", "cpp", "cuda"] = Field(
        "auto", description="EFD kernel backend"
    )
    epochs: int = Field(30, ge=1, description="training epochs")
    batch_size: int = Field(32, ge=1, description="training batch size")
    test_batch_size: int = Field(1000, ge=1, description="evaluation batch size")
    lr: float = Field(1e-2, gt=0, description="Adam learning rate")
    step_size: int = Field(14, ge=1, description="StepLR step (epochs)")
    gamma: float = Field(0.1, gt=0, description="StepLR factor")
    train_size: float = Field(0.8, gt=0, lt=1, description="jsc: train share of the split")
    seed: int = Field(0, description="seed of weights, wiring and shuffling")
    export: bool = Field(True, description="export the trained model and check the compiled copy")

    @field_validator("encoder")
    @classmethod
    def _registered_encoder(cls, encoder: str) -> str:
        if encoder not in ENCODERS:
            raise ValueError(ENCODERS.unknown_message(encoder))
        return ENCODERS.canonical(encoder)

    @field_validator("mapping")
    @classmethod
    def _one_mapping_for_every_layer(cls, mapping: list[str], info: ValidationInfo) -> list[str]:
        layers = info.data.get("layers")
        return mapping * len(layers) if layers and len(mapping) == 1 else mapping

    @model_validator(mode="after")
    def _one_mapping_per_layer(self) -> TrainConfig:
        if len(self.mapping) != len(self.layers):
            raise ValueError(
                f"'mapping' has {len(self.mapping)} entries but 'layers' has "
                f"{len(self.layers)}: give one mapping, or one per layer"
            )
        return self
