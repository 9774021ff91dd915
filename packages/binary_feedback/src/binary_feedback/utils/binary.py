"""Study B's binarisation of any model: binary weights by parametrization, sign activations.

* :func:`binarize_weights` registers the core's ``SteSign(1.0, zero=-1, strict=False)``
  (``weight_quantizer("sat", strict=False)``) as a parametrization of the ``weight`` of every
  Linear / Conv1d / Conv2d except the layers kept full precision (the first and the last,
  per model, see :mod:`binary_feedback.models`). The forward weight ``module.weight`` is
  ``sign(W)`` (exactly +-1, sign(0) = -1, no scaling factor), the latent ``W`` lives in
  ``parametrizations.weight.original`` and gets ``g * 1(|W| <= 1)``, which is the identity
  STE while the weights are clipped to [-1, 1] (:func:`clip_binary_weights_`, the core's
  ``clip_weights_``). Biases, BatchNorm and LayerNorm stay float. The core's summary and
  bit-packed export read the parametrization (1 bit); :func:`quantized_weight` and
  :func:`weight_precision` give any layer's forward weight and its bits.
* :func:`binarize_activations` swaps every activation module listed in
  :data:`BINARIZED_ACTIVATIONS` for a sign with the saturated STE (or the identity STE with
  ``unsat``). Only modules are swapped: functional activations and residual sums stay real.

Reference: Crulis, Serres, de Runz, Venturini, arXiv 2408.04460 (``binary_nn_extended``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bnn_shared.errors import ConfigError
from bnn_shared.layers import clip_weights_
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..commons.activations import SignSat, SignUnsat
from ..commons.layers import is_binarized, weight_quantizer, weight_quantizer_of

__all__ = [
    "BINARIZED_ACTIVATIONS",
    "BINARIZED_WEIGHTS",
    "binarize_activations",
    "binarize_weights",
    "binary_layers",
    "clip_binary_weights_",
    "quantized_weight",
    "weight_precision",
]

#: Layer types whose weight :func:`binarize_weights` binarises.
BINARIZED_WEIGHTS = (nn.Linear, nn.Conv1d, nn.Conv2d)

#: Activation module types :func:`binarize_activations` replaces (the reference's list).
BINARIZED_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.Tanh,
    nn.ELU,
    nn.Softplus,
    nn.CELU,
    nn.Hardswish,
    nn.PReLU,
    nn.LeakyReLU,
    nn.RReLU,
    nn.SiLU,
)


def binarize_weights(model: nn.Module, keep_fp: Iterable[str] = ()) -> list[str]:
    """Binarise in place the weights of every Linear / Conv1d / Conv2d not in ``keep_fp``.

    Args:
        model: any model; layers already binarised (see ``is_binarized``) are left alone.
        keep_fp: names (as in ``model.named_modules()``) of the layers kept full precision.

    Returns:
        The names of the layers binarised by this call, in module order.

    Raises:
        ConfigError: a name in ``keep_fp`` is not a module of ``model``.
    """
    keep = set(keep_fp)
    modules = dict(model.named_modules())
    unknown = sorted(keep - set(modules))
    if unknown:
        raise ConfigError(f"layers to keep full precision not found in the model: {unknown}")
    names = []
    for name, module in modules.items():
        if isinstance(module, BINARIZED_WEIGHTS) and name not in keep and not is_binarized(module):
            quantizer = weight_quantizer("sat", strict=False)
            parametrize.register_parametrization(module, "weight", quantizer)
            names.append(name)
    return names


def binarize_activations(model: nn.Module, unsat: bool = False, strict: bool = False) -> int:
    """Replace in place every activation module of a :data:`BINARIZED_ACTIVATIONS` type.

    Args:
        model: any model (its own submodules are replaced, at any depth).
        unsat: identity STE (``SignUnsat``, study B's ``--unsat``) instead of the saturated one.
            Default False.
        strict: window of the saturated STE, ``|x| < 1`` (True, study A) or ``|x| <= 1``
            (False, study B's ``Sign``). Default False.

    Returns:
        The number of modules replaced.
    """
    return replace_activations(model, lambda: SignUnsat() if unsat else SignSat(strict))


def replace_activations(model: nn.Module, make: Callable[[], nn.Module]) -> int:
    """Replace in place every activation module of a :data:`BINARIZED_ACTIVATIONS` type, at
    any depth, by a new ``make()``; returns how many (``--binary-act``, ``--bireal-act``)."""
    targets = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, BINARIZED_ACTIVATIONS)
    ]
    for parent, name in targets:
        setattr(parent, name, make())
    return len(targets)


def binary_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers whose forward weights are binary, by name, in module order."""
    return {name: module for name, module in model.named_modules() if is_binarized(module)}


def clip_binary_weights_(model: nn.Module) -> nn.Module:
    """Clamp the latent weights of the binarised layers to [-1, 1] (study B, after each step):
    the core's ``clip_weights_(model, 1.0, select=is_binarized)``."""
    return clip_weights_(model, 1.0, select=is_binarized)


def quantized_weight(module: nn.Module) -> Tensor:
    """The weight the module's forward pass uses: ``quantized_weight()`` of a quant layer
    (:class:`~binary_feedback.commons.layers.BinaryLinear`), else ``module.weight``, which for
    a layer binarised by :func:`binarize_weights` is the parametrization's ``sign(W)``
    (differentiable; call under ``torch.no_grad()`` to read it)."""
    method = getattr(module, "quantized_weight", None)
    return method() if callable(method) else module.weight


def weight_precision(module: nn.Module) -> int:
    """Bits per value of :func:`quantized_weight`: 1 for a binarised layer, 32 otherwise."""
    quantizer = weight_quantizer_of(module)
    return 32 if quantizer is None else int(quantizer.precision)
