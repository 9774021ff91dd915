"""Measuring a trained model: the studies' metrics, the confusion matrix and study A's
per-layer monitoring (saturation and normalised HSIC)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bnn_shared.tracking import atomic_write_text
from torch import Tensor, nn

__all__ = ["CONFUSION_FILE", "MONITOR_SAMPLES", "evaluate_model", "monitor", "write_confusion"]

#: The confusion matrix of the best epoch, in the run directory.
CONFUSION_FILE = "confusion.csv"
#: Training images the monitoring looks at (the first ones).
MONITOR_SAMPLES = 2000

Prepare = Callable[[Tensor], Tensor]


def _identity(x: Tensor) -> Tensor:
    return x


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    rule: Any,
    x: Tensor,
    y: Tensor,
    device: torch.device,
    prepare: Prepare = _identity,
    batch: int = 500,
    predictions: list | None = None,
) -> dict[str, float]:
    """``loss`` (the study's logged loss), ``accuracy``, macro ``f1`` and macro ``precision``
    over ``(x, y)``, in eval mode, ``batch`` samples at a time; the predicted classes are
    appended to ``predictions`` when a list is given."""
    from sklearn.metrics import f1_score, precision_score

    model.eval()
    losses, preds = [], []
    for start in range(0, len(y), batch):
        xb = prepare(x[start : start + batch].to(device))
        yb = y[start : start + batch].to(device)
        out = model(xb)
        losses.append(float(rule.regime.logged_loss(out, yb)) * len(yb))
        preds.append(out.argmax(-1).cpu())
    pred = torch.cat(preds).numpy()
    true = y.numpy()
    stats = {
        "loss": sum(losses) / len(y),
        "accuracy": float((pred == true).mean()),
        "f1": float(f1_score(true, pred, average="macro", zero_division=0)),
        "precision": float(precision_score(true, pred, average="macro", zero_division=0)),
    }
    if predictions is not None:
        predictions.append(pred)
    return stats


def write_confusion(path: Path, true, pred, num_classes: int, epoch: int) -> None:
    """Atomically write the confusion matrix (rows: true class, columns: predicted class)."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(true, pred, labels=list(range(num_classes)))
    lines = [f"# epoch {epoch}; rows: true class, columns: predicted class"]
    lines.append(",".join(["true\\pred", *map(str, range(num_classes))]))
    lines += [",".join([str(c), *map(str, row)]) for c, row in enumerate(matrix.tolist())]
    atomic_write_text(path, "\n".join(lines) + "\n")


@torch.no_grad()
def monitor(
    model: nn.Module, x: Tensor, y: Tensor, device: torch.device, prepare: Prepare = _identity
) -> dict[str, float]:
    """Study A's monitoring of every activation layer j, the output included as the last.

    In eval mode (the reference ran batch norm in train mode here, updating its running
    statistics; not reproduced): ``monitor/layer_{j}_saturation``, the share of the layer's
    inputs with |a| > 2 for tanh and > 1 otherwise, and the normalised HSIC
    ``monitor/layer_{j}_nhsic_xz`` / ``monitor/layer_{j}_nhsic_zy`` of the layer's output
    with the inputs and with the targets as +-1 vectors (cosine kernels). The reference
    logged them as ``layer_{j} saturation``, ``layer_{j} nHSIC XZ`` and ``nHSIC ZY``.
    """
    import torch.nn.functional as F

    from .commons.activations import Activation, Tanh
    from .training.hsic import cosine_kernel, normalized_hsic

    captured: list[tuple[nn.Module, Tensor, Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: captured.append((mod, inp[0], out)))
        for m in model.modules()
        if isinstance(m, Activation)
    ]
    model.eval()
    try:
        xb = prepare(x.to(device))
        output = model(xb)
    finally:
        for hook in hooks:
            hook.remove()
    k_x = cosine_kernel(xb.double())
    k_y = cosine_kernel(2 * F.one_hot(y.to(device), output.shape[-1]).double() - 1)
    row = {}
    for j, (module, pre, out) in enumerate(captured):
        bound = 2.0 if isinstance(module, Tanh) else 1.0
        row[f"monitor/layer_{j}_saturation"] = float((pre.abs() > bound).float().mean())
        k_z = cosine_kernel(out.double())
        row[f"monitor/layer_{j}_nhsic_xz"] = float(normalized_hsic(k_x, k_z))
        row[f"monitor/layer_{j}_nhsic_zy"] = float(normalized_hsic(k_z, k_y))
    return row
