"""The training-rule interface and the helpers every rule shares.

A *regime* (:mod:`.regimes`) says what a study optimises and how its fixed random matrices
and targets look. A *rule* (:class:`Rule`) says how the gradients of one training step are
obtained (BP, DFA, DRTP, HSIC bottleneck, SigpropTL); every rule works over any model made
of ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` layers, so the training loop only calls
``rule.step(model, x, y, optimizer)``.

Model interface read by the rules:

* weight layers: the ``Linear`` / ``Conv1d`` / ``Conv2d`` modules, in registration order
  (:func:`weight_layers`); the first one sees the input, which needs no signal;
* output layer: the last weight layer, or ``model.get_submodule(model.output_layer_name)``
  (:func:`output_layer`);
* local blocks: residual blocks that DRTP and HSIC treat as one local problem, marked
  ``local_block = True`` or instances of torchvision's ``InvertedResidual``
  (:func:`local_blocks`);
* ``feedback_chain = True`` (optional): the model has no skip path, so feedback rules may
  detach every hooked layer's input without changing the gradients (DFA does).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from functools import partial
from typing import Any, ClassVar

import torch
from bnn_shared.errors import CheckpointError, ConfigError, ShapeError
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from torchvision.models.mobilenetv2 import InvertedResidual

from .regimes import FEEDBACK_INITS, Regime, get_regime

__all__ = [
    "WEIGHT_TYPES",
    "Rule",
    "LocalRule",
    "weight_layers",
    "output_layer",
    "local_blocks",
    "local_targets",
    "feature_size",
    "broadcast_signal",
    "feedback_matrix",
    "training_mode",
    "check_choice",
]

WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


# ---------------------------------------------------------------------------- choices


def check_choice(key: str, value: Any, choices: Any, owner: str) -> Any:
    """Return ``value`` if it is one of the plain ``choices``, else raise a ConfigError naming
    ``key`` (names of implementations are looked up in a registry instead)."""
    if value not in choices:
        raise ConfigError(f"{owner}: unknown {key} {value!r}; choose from {sorted(choices)}")
    return value


# ---------------------------------------------------------------------------- model interface


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The ``Linear`` / ``Conv1d`` / ``Conv2d`` modules by name, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, WEIGHT_TYPES)}


def output_layer(model: nn.Module) -> nn.Module:
    """The layer trained by the true loss gradient: ``model.output_layer_name`` if set,
    else the last weight layer."""
    name = getattr(model, "output_layer_name", None)
    if name is not None:
        try:
            return model.get_submodule(name)
        except AttributeError as err:
            raise ConfigError(f"output_layer_name {name!r} is not a module of the model") from err
    layers = list(weight_layers(model).values())
    if not layers:
        raise ShapeError("the model has no Linear/Conv1d/Conv2d layer to train")
    return layers[-1]


def is_local_block(module: nn.Module) -> bool:
    """Whether DRTP/HSIC treat ``module`` (a residual block) as one local problem."""
    return getattr(module, "local_block", False) is True or isinstance(module, InvertedResidual)


def local_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The residual blocks that are local problems, by name, in registration order."""
    return {name: m for name, m in model.named_modules() if is_local_block(m)}


def local_targets(model: nn.Module) -> dict[str, nn.Module]:
    """Where layer-local rules cut the graph: every weight layer but the first (the output
    layer included) and every local block, by name, in registration order."""
    first = next(iter(weight_layers(model)), None)
    return {
        name: m
        for name, m in model.named_modules()
        if (isinstance(m, WEIGHT_TYPES) and name != first) or is_local_block(m)
    }


def feature_size(h: Tensor) -> int:
    """Width of the feature axis a feedback matrix maps to: dim 1 of a 4-D (conv) tensor,
    the last dim of a 2-D or 3-D (token) tensor, Conv1d inputs included (as the reference)."""
    if h.dim() not in (2, 3, 4):
        raise ShapeError(f"feedback signals need 2-D, 3-D or 4-D tensors, got {tuple(h.shape)}")
    return h.shape[1] if h.dim() == 4 else h.shape[-1]


def broadcast_signal(signal: Tensor, like: Tensor) -> Tensor:
    """Spread a per-sample signal ``(N, F)`` to ``like``'s shape: repeated over H x W for a
    4-D tensor, over the tokens (dim 1) for a 3-D tensor."""
    if like.dim() == 4:
        return signal[:, :, None, None].expand_as(like)
    if like.dim() == 3:
        return signal[:, None, :].expand_as(like)
    return signal


def feedback_matrix(rows: int, cols: int, init: str, like: Tensor) -> Tensor:
    """A fixed random ``(rows, cols)`` matrix drawn by ``FEEDBACK_INITS.get(init)``.

    Drawn on the CPU from torch's global generator (so a seeded run draws the same matrices
    on every device), in ``like``'s dtype, then moved to ``like``'s device.
    """
    matrix = torch.empty(rows, cols, dtype=like.dtype)
    FEEDBACK_INITS.get(init)(matrix)
    return matrix.to(like.device)


@contextlib.contextmanager
def training_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Put every module in train (or eval) mode, then restore each module's own mode."""
    modes = {m: m.training for m in model.modules()}
    model.train(training)
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


def output_error(loss: Tensor, output: Tensor) -> Tensor:
    """``e = dLoss/d output``, the error every feedback rule projects."""
    (error,) = torch.autograd.grad(loss, output)
    return error


# ---------------------------------------------------------------------------- rule


class Rule:
    """A training rule: how one step's gradients are obtained, over one model interface.

    Subclasses set ``name``, register their hooks in :meth:`_register` and compute the
    gradients of a batch in :meth:`_compute_gradients`; :meth:`step` wraps them with
    ``zero_grad`` / ``step`` of the optimizer. Fixed random matrices live in
    :attr:`matrices` (created lazily at the first batch, when the layer shapes are known) and
    travel with :meth:`state_dict`, so that a resumed run uses the same matrices.

    Args:
        regime: a :class:`Regime` or the name of a preset (``"study_a"``, ``"study_b"``).
        num_classes: number of classes C (rows of every feedback matrix).
    """

    name: ClassVar[str] = "rule"

    def __init__(self, regime: Regime | str, num_classes: int) -> None:
        self.regime = get_regime(regime)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.matrices: dict[str, Tensor] = {}
        self._model: nn.Module | None = None
        self._handles: list[RemovableHandle] = []
        self._active = False  # hooks act only inside step(), never in evaluation passes

    @classmethod
    def option_names(cls) -> list[str]:
        """The keyword options this rule accepts besides ``regime`` and ``num_classes``."""
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]

    # -- lifecycle

    def prepare(self, model: nn.Module) -> None:
        """Find the modules this rule acts on and register its hooks (once per model;
        :meth:`step` calls it for a model it has not seen)."""
        self.remove_hooks()
        self._model = model
        self._register(model)

    def remove_hooks(self) -> None:
        """Remove every hook this rule put on its model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._model = None

    def step(self, model: nn.Module, x: Tensor, y: Tensor, optimizer: Any) -> dict[str, float]:
        """One training step on the batch ``(x, y)``: zero_grad, this rule's gradients, step.

        Returns ``loss`` (the regime's logged loss) and ``correct`` (argmax hits) of the batch.
        """
        if self._model is not model:
            self.prepare(model)
        optimizer.zero_grad()
        self._active = True
        try:
            output = self._compute_gradients(model, x, y)
        finally:
            self._active = False
        optimizer.step()
        return self.batch_metrics(output.detach(), y)

    def batch_metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        """Logged loss and number of correct argmax predictions of a batch."""
        correct = (output.argmax(dim=-1) == y).sum()
        return {"loss": float(self.regime.logged_loss(output, y)), "correct": float(correct)}

    # -- subclass API

    def _register(self, model: nn.Module) -> None:
        """Register the rule's hooks on ``model`` (appending handles to ``self._handles``)."""

    def _compute_gradients(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Fill the parameters' ``.grad`` for the batch; return the model output."""
        raise NotImplementedError

    # -- fixed random matrices

    def _matrix(self, key: str, cols: int, like: Tensor, init: str) -> Tensor:
        """The fixed ``(C, cols)`` matrix ``key``, drawn at first use, on ``like``'s device."""
        shape = (self.num_classes, cols)
        return self._stored(key, shape, like, lambda: feedback_matrix(*shape, init, like))

    def _stored(self, key: str, shape: tuple[int, ...], like: Tensor, draw) -> Tensor:
        """The fixed matrix ``key`` of ``shape``: ``draw()`` at first use, a loaded one
        checked against ``shape``; kept on ``like``'s device and dtype."""
        matrix = self.matrices.get(key)
        if matrix is None:
            matrix = draw()
        elif tuple(matrix.shape) != tuple(shape):
            raise ShapeError(
                f"{self.name}: matrix {key!r} has shape {tuple(matrix.shape)} but the model "
                f"needs {tuple(shape)}; was the state saved for another model?"
            )
        matrix = matrix.to(device=like.device, dtype=like.dtype)
        self.matrices[key] = matrix
        return matrix

    def state_dict(self) -> dict[str, Any]:
        """The rule's name and its fixed random matrices (to save with a checkpoint)."""
        return {"rule": self.name, "matrices": {k: v.clone() for k, v in self.matrices.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the matrices saved by :meth:`state_dict` of the same rule."""
        if state.get("rule") != self.name:
            raise CheckpointError(
                f"the training-rule state belongs to {state.get('rule')!r}, not {self.name!r}"
            )
        self.matrices = {k: v.clone() for k, v in state["matrices"].items()}

    # -- repr

    def extra_repr(self) -> str:
        """Regime and options, as shown by ``repr``."""
        return f"regime={self.regime.name}, num_classes={self.num_classes}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class LocalRule(Rule):
    """Layer-local rules (DRTP, HSIC): each segment is trained during the forward pass.

    A forward pre-hook on every module of :func:`local_targets` receives the segment output
    ``h`` (the module's input); when ``h`` requires grad, :meth:`_train_segment` backpropagates
    a local signal from ``h`` into the segment, and the module gets ``h.detach()``. A local
    block's own first layer thus sees a detached input and stays inert, and the skip paths
    between blocks carry no gradient. After the forward pass the regime's loss is
    backpropagated, which reaches only the output layer (its input is detached).
    """

    def __init__(self, regime: Regime | str, num_classes: int) -> None:
        super().__init__(regime, num_classes)
        self._labels: Tensor | None = None

    def _register(self, model: nn.Module) -> None:
        for name, module in local_targets(model).items():
            self._handles.append(module.register_forward_pre_hook(partial(self._cut, name)))

    def _cut(self, name: str, module: nn.Module, args: tuple) -> tuple | None:
        h = args[0]
        if not (self._active and h.requires_grad):
            return None
        self._train_segment(name, h, self._labels)
        return (h.detach(), *args[1:])

    def _train_segment(self, name: str, h: Tensor, y: Tensor) -> None:
        """Backpropagate the local signal of the segment ending at ``h``."""
        raise NotImplementedError

    def _compute_gradients(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        self._labels = y
        try:
            output = model(x)
        finally:
            self._labels = None
        self.regime.training_loss(output, y).backward()
        return output
