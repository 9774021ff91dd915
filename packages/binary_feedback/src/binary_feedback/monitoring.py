"""Study B's per-layer monitoring (``--monitor``; spec A.6), read at the first batch of every
epoch, right after its training step.

* **Gradient metrics**, per module that owns a parameter, in the call order of a one-sample
  eval forward made once: ``monitor/<module>_grad_norm`` (L2 norm of all its parameters'
  grads concatenated) and ``monitor/<module>_mean_abs_grad`` (mean |g|); 0 when no grad is
  present. A module whose weight sits in a parametrization (every binarised layer) counts
  the parametrization's ``original`` as its own parameter, so binarised bias-free layers are
  listed (the reference dropped them, quirk 28); ``ParametrizationList`` modules themselves
  are not listed.
* **Saturation**, per activation module of :data:`SATURATION_TYPES` (ReLU6 is not one, as in
  the reference): ``monitor/<module>_saturation`` = share of the module's input with
  ``|x| >= 1`` in the last forward of that step, and ``monitor/average_saturation``, their
  mean over the modules.

The reference logged the two gradient tables under swapped names (quirk 10); here each name
says what it holds. The values go to ``metrics.csv`` with the epoch's row (and to W&B when
on). The hooks only read tensors, so a monitored run trains exactly as an unmonitored one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .commons import activations
from .training.base import training_mode

__all__ = ["SATURATION_TYPES", "LayerMonitor", "gradient_modules", "saturation_modules"]

#: The activation classes whose input saturation is recorded (the reference's list: Sigmoid,
#: SiLU, ReLU, ELU, GELU, CELU, Hardswish, Softplus, Sign, SignUnsat, BiRealAct; not ReLU6).
SATURATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.Sigmoid, nn.SiLU, nn.ReLU, nn.ELU, nn.GELU, nn.CELU, nn.Hardswish, nn.Softplus,
    activations.SignSat, activations.SignUnsat, activations.BiRealAct,
)  # fmt: skip


def _owns_parameter(module: nn.Module) -> bool:
    if isinstance(module, parametrize.ParametrizationList):
        return False
    return parametrize.is_parametrized(module) or any(True for _ in module.parameters(False))


def gradient_modules(model: nn.Module, example: Tensor) -> dict[str, nn.Module]:
    """The modules owning a parameter (a parametrized weight counts), by name, in the call
    order of a one-sample eval forward of ``example`` (a batch; its first sample is used)."""
    names = {m: name for name, m in model.named_modules()}
    order: list[nn.Module] = []

    def record(module: nn.Module, args: tuple) -> None:
        if module not in order and _owns_parameter(module):
            order.append(module)

    handles = [m.register_forward_pre_hook(record) for m in names]
    try:
        with torch.no_grad(), training_mode(model, False):
            model(example[:1])
    finally:
        for handle in handles:
            handle.remove()
    return {names[m]: m for m in order if names[m] != ""}


def saturation_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The activation modules of :data:`SATURATION_TYPES`, by name."""
    return {name: m for name, m in model.named_modules() if type(m) in SATURATION_TYPES}


class LayerMonitor:
    """Study B's monitoring of one model: :meth:`start` at the epoch's start, :meth:`read`
    after its first step (then the saturation hooks stop recording until the next start).

    Args:
        model: the model (hooks are put on its activation modules).
        example: a batch of inputs as the model takes them (only the first sample is used).
    """

    def __init__(self, model: nn.Module, example: Tensor) -> None:
        self.layers = gradient_modules(model, example)
        self.activations = saturation_modules(model)
        self._saturation: dict[str, float] = {}
        self._recording = False
        self._handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in self.activations.items()
        ]

    def _hook(self, name: str):
        def record(module: nn.Module, args: tuple, output: Tensor) -> None:
            if self._recording and args and isinstance(args[0], Tensor) and args[0].numel():
                x = args[0].detach()
                self._saturation[name] = float((x.abs() >= 1).float().mean())

        return record

    def start(self) -> None:
        """Record the saturation of the coming forward passes (values of the last kept)."""
        self._saturation.clear()
        self._recording = True

    def read(self) -> dict[str, float]:
        """The metrics of the step just taken; stops recording."""
        self._recording = False
        row: dict[str, float] = {}
        for name, module in self.layers.items():
            grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
            flat = torch.cat(grads).float() if grads else torch.zeros(1)
            row[f"monitor/{name}_grad_norm"] = float(flat.norm()) if grads else 0.0
            row[f"monitor/{name}_mean_abs_grad"] = float(flat.abs().mean()) if grads else 0.0
        values = [self._saturation[name] for name in self.activations if name in self._saturation]
        for name in self.activations:
            if name in self._saturation:
                row[f"monitor/{name}_saturation"] = self._saturation[name]
        if values:
            row["monitor/average_saturation"] = math.fsum(values) / len(values)
        self._saturation.clear()
        return row

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
