"""Multilayer perceptrons: study A's binary MLP and study B's ``FullyConnected``.

Both share one layout, so that the full-precision layer names are the same (``layers.1``, the
first Linear, and ``output``)::

    layers = Sequential(Flatten, [Linear -> (BatchNorm) -> activation] per hidden size)
    output = Linear;  last_act = activation (identity for FullyConnected)

Study A (ACM SAC 2023): 784-700-500-300-200-10 without biases, MSE on a tanh output, weights
U(-init, +init), ``binarize`` makes every Linear but the last binary (the first included),
study A's batch norm. 1,110,800 parameters on MNIST, 1,114,200 with batch norm.

Study B (arXiv 2408.04460, not used in its article): the same sizes with tanh, no bias, no
output activation (cross-entropy on logits), PyTorch's default init and ``nn.BatchNorm1d``;
binarised from outside by :func:`binary_feedback.utils.binary.binarize_weights`. The
reference sized every BatchNorm 700 (spec quirk #2); here each is sized by its layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..commons.activations import get_activation
from ..commons.layers import BinaryLinear, StudyABatchNorm1d

__all__ = ["PAPER_HIDDEN", "MLP", "FullyConnected", "Scaler"]

#: Hidden sizes of both studies.
PAPER_HIDDEN = (700, 500, 300, 200)

NormFactory = Callable[..., nn.Module]


class Scaler(nn.Module):
    """Study A's ``--sn`` layer: ``y = x / n_in``, ``n_in`` the fan-in of the Linear before it.

    No parameters; train and eval behave the same. Autograd divides the backward signal by
    ``n_in`` too (``delta_in = delta_out / n_in``), so the preceding Linear's weight gradient
    is also divided by ``n_in``, as in the reference.

    Args:
        fan_in: the input size of the preceding Linear (784 or 3072, then 700, 500, 300 for
            the paper's network).
    """

    def __init__(self, fan_in: int) -> None:
        super().__init__()
        if fan_in < 1:
            raise ValueError(f"Scaler needs a positive fan-in, got {fan_in}")
        self.fan_in = int(fan_in)

    def forward(self, x: Tensor) -> Tensor:
        return x / self.fan_in

    def extra_repr(self) -> str:
        return f"fan_in={self.fan_in}"


class MLP(nn.Module):
    """Study A's MLP: Flatten -> [BinaryLinear -> (Scaler) -> (batch norm) -> hidden act]*
    -> output (no Scaler after it).

    Args:
        in_features: flattened input size (784 for MNIST, 3072 for CIFAR-10).
        num_classes: output size.
        hidden: hidden sizes. Default 700, 500, 300, 200.
        hidden_act: hidden activation name (``tanh``, ``signsat``, ``sign``, ``signtanh``,
            ``id``). Default ``tanh``.
        last_act: output activation name. Default ``tanh`` (study A's MSE head).
        bn: batch norm after each hidden Linear (``--bn``). Default False.
        sn: a :class:`Scaler` after each hidden Linear, before the batch norm (``--sn``).
            Default False.
        binarize: binary weights in every Linear but the output one (``--binarize``).
            Default False.
        binarize_last: binary output weights (``--binarize_last``), with or without
            ``binarize``; its latent weights always get the identity STE, whatever
            ``weight_ste`` (as the reference). Default False.
        weight_ste: latent-weight STE of binary layers: ``identity``, ``sat``, ``tanh``
            (``--weight-ste``). Default ``identity``.
        init: weights drawn U(-init, +init) (``--init``); None: PyTorch's default. Default 0.1.
        bias: biases in the Linear layers. Default False.
        norm: batch-norm factory called with the layer width and ``dtype``. Default
            :class:`StudyABatchNorm1d`.
        dtype: parameter dtype (study A's reference ran in float64). Default None (float32).
    """

    #: No skip path: feedback rules may detach every layer's input (same gradients).
    feedback_chain = True

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = PAPER_HIDDEN,
        *,
        hidden_act: str = "tanh",
        last_act: str = "tanh",
        bn: bool = False,
        sn: bool = False,
        binarize: bool = False,
        binarize_last: bool = False,
        weight_ste: str = "identity",
        init: float | None = 0.1,
        bias: bool = False,
        norm: NormFactory = StudyABatchNorm1d,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()

        def linear(n_in: int, n_out: int, binary: bool, ste: str = weight_ste) -> BinaryLinear:
            return BinaryLinear(
                n_in, n_out, binarize=binary, weight_ste=ste, init=init, bias=bias, dtype=dtype
            )  # fmt: skip

        blocks: list[nn.Module] = [nn.Flatten()]
        sizes = [in_features, *hidden]
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            blocks.append(linear(n_in, n_out, binarize))
            if sn:
                blocks.append(Scaler(n_in))
            if bn:
                blocks.append(norm(n_out, dtype=dtype))
            blocks.append(get_activation(hidden_act))
        self.layers = nn.Sequential(*blocks)
        self.output = linear(sizes[-1], num_classes, binarize_last, "identity")
        self.last_act = get_activation(last_act)

    def forward(self, x: Tensor) -> Tensor:
        return self.last_act(self.output(self.layers(x)))


class FullyConnected(MLP):
    """Study B's ``FullyConnected``: :class:`MLP` with the extension's defaults.

    Tanh hidden layers, no output activation (logits for cross-entropy), PyTorch's default
    initialisation, ``nn.BatchNorm1d`` sized per layer, float weights (binarised from outside).
    Every :class:`MLP` argument can be overridden by keyword.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = PAPER_HIDDEN,
        **options: Any,
    ) -> None:
        defaults = {"last_act": "id", "init": None, "norm": nn.BatchNorm1d}
        super().__init__(in_features, num_classes, hidden, **{**defaults, **options})
