"""Measuring a model: the studies' metrics, the confusion matrix, study A's per-layer
monitoring (saturation and normalised HSIC), study A's per-batch statistics
(:class:`BatchMonitor`) and its model size, normal and bit-packed (:func:`model_size`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bnn_shared.tracking import MetricsLog, atomic_write_text
from torch import Tensor, nn

__all__ = [
    "BATCH_FILE",
    "BATCH_KEYS",
    "BatchLog",
    "BatchMonitor",
    "CONFUSION_FILE",
    "MONITOR_SAMPLES",
    "evaluate_model",
    "model_size",
    "monitor",
    "saturation_threshold",
    "write_confusion",
]

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


# -- study A: per-batch statistics and model size ---------------------------------------------

#: Study A's per-batch statistics (spec A.2), under the names logged here; the reference's
#: W&B keys were "average saturation", "activation variance", "gradient variance" and
#: "max absolute gradient value".
BATCH_KEYS = (
    "batch/average_saturation",
    "batch/activation_variance",
    "batch/gradient_variance",
    "batch/max_abs_gradient",
)


def saturation_threshold(model: nn.Module) -> float | None:
    """Study A's saturation bound: from the last activation in the model (the output one)
    that is tanh (2.0) or sign / signsat (1.0); signtanh and id are skipped. None when no
    activation is recognised (the reference stopped with an error; here the saturation is
    then not reported)."""
    from .commons.activations import SignSat, SignUnsat, Tanh

    bound = None
    for module in model.modules():
        if isinstance(module, Tanh):
            bound = 2.0
        elif isinstance(module, SignSat | SignUnsat):
            bound = 1.0
    return bound


class BatchMonitor:
    """Study A's per-batch statistics, measured after each step (update applied, before
    clipping), as the reference logged them every iteration (spec A.2).

    P: the outputs of every Linear but the output one in the step's own train-mode forward
    pass (raw ``x @ W_b``, before Scaler and batch norm), kept by forward hooks. G: the
    ``.grad`` of every Linear's weight, the output layer's included: batch-summed, after
    the weight STE, the pseudo-gradients for DFA and DRTP.

    :meth:`measure` gives ``batch/average_saturation`` = #(|p| > tau) / #p (strict),
    ``batch/activation_variance`` = population variance of P, ``batch/gradient_variance`` =
    population variance of G and ``batch/max_abs_gradient`` = max |g|, all pooled over
    every element. ``tau`` is :func:`saturation_threshold`.
    """

    def __init__(self, model: nn.Module) -> None:
        from .training.base import output_layer, weight_layers

        out = output_layer(model)
        self.linears = [m for m in weight_layers(model).values() if isinstance(m, nn.Linear)]
        self.hidden = [m for m in self.linears if m is not out]
        self.tau = saturation_threshold(model)
        self._outputs: dict[int, Tensor] = {}
        self._handles = [m.register_forward_hook(self._keep) for m in self.hidden]

    def _keep(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if module.training:  # the step's forward pass, not the evaluations
            self._outputs[id(module)] = output.detach()

    def remove(self) -> None:
        """Remove the forward hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @torch.no_grad()
    def measure(self) -> dict[str, float]:
        """The statistics of the last training step (keys: :data:`BATCH_KEYS`).

        Each tensor's sum and sum of squares are taken where it lies (torch's float32
        cascade sums, no concatenated copy), then pooled in float64; one host transfer per
        step."""
        kept = [self._outputs[id(m)] for m in self.hidden if id(m) in self._outputs]
        grads = [m.weight.grad for m in self.linears if m.weight.grad is not None]
        self._outputs.clear()
        parts: list[Tensor] = []
        for group in (kept, grads):
            if group:
                parts.append(torch.stack([t.sum() for t in group]).double().sum())
                parts.append(torch.stack([t.square().sum() for t in group]).double().sum())
        if kept and self.tau is not None:
            parts.append(sum((t.abs() > self.tau).sum() for t in kept))
        if grads:
            parts.append(torch.stack([_max_abs(t) for t in grads]).max())
        if not parts:
            return {}
        numbers = torch.stack([part.double() for part in parts]).tolist()
        values: dict[str, float] = {}
        for group, key in ((kept, "batch/activation_variance"), (grads, "batch/gradient_variance")):
            if group:
                (s1, s2), numbers = numbers[:2], numbers[2:]
                n = sum(t.numel() for t in group)
                values[key] = max(s2 / n - (s1 / n) ** 2, 0.0)
        if kept and self.tau is not None:
            values["batch/average_saturation"] = numbers.pop(0) / sum(t.numel() for t in kept)
        if grads:
            values["batch/max_abs_gradient"] = numbers.pop(0)
        return {key: values[key] for key in BATCH_KEYS if key in values}


def _max_abs(t: Tensor) -> Tensor:
    """max |t| without an |t| copy."""
    low, high = torch.aminmax(t)
    return torch.maximum(low.abs(), high)


#: Study A's per-batch statistics, one row per training step, in the run directory.
BATCH_FILE = "batches.csv"


class BatchLog:
    """Study A's per-batch rows (``epoch``, ``step``: the global iteration from 1, then the
    batch's values) in :data:`BATCH_FILE`, rewritten atomically once per epoch by the
    core's :class:`~bnn_shared.tracking.MetricsLog` (rows past the epoch resumed from are
    dropped).

    Args:
        path: the CSV file.
        first_epoch: the epoch about to be trained (rows of this epoch and later are dropped).
        resume: read the rows of an earlier run in ``path``.
        write: write the file (False on the processes of a torchrun that do not write).
    """

    def __init__(self, path: Path, first_epoch: int, resume: bool, write: bool = True) -> None:
        readable = resume and write and Path(path).is_file()
        self.log = MetricsLog.load(path) if readable else MetricsLog(path)
        self.log.rows = [row for row in self.log.rows if row.get("epoch", 0) < first_epoch]
        self.step = int(self.log.rows[-1].get("step", 0)) if self.log.rows else 0
        self.write = write
        self._epoch_rows: list[dict[str, Any]] = []

    def add(self, epoch: int, values: dict[str, float]) -> dict[str, Any]:
        """Record a step's values; returns the row (``epoch`` and ``step`` first)."""
        self.step += 1
        row = {"epoch": epoch, "step": self.step, **values}
        self._epoch_rows.append(row)
        return row

    def end_epoch(self) -> dict[str, float]:
        """Write the epoch's rows; return the epoch means of :data:`BATCH_KEYS`."""
        rows, self._epoch_rows = self._epoch_rows, []
        self.log.rows.extend(rows)
        if self.write:
            self.log.write()
        means = {}
        for key in BATCH_KEYS:
            found = [row[key] for row in rows if key in row]
            if found:
                means[key] = sum(found) / len(found)
        return means


def model_size(model: nn.Module) -> tuple[int, int]:
    """Bytes of the model's tensors as held (parameters and buffers), and the same with each
    binarised layer's weights bit-packed: ``np.packbits(sign(W) > 0)`` along that layer's own
    larger axis (spec A.2; the reference packed ``W > 0.5`` along the first binarised
    layer's axis, quirks 16 and 23). Python object overhead, which the reference's
    ``objsize`` counted, is not included."""
    import numpy as np

    from .commons.layers import is_binarized, latent_weight

    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    normal = sum(t.numel() * t.element_size() for t in tensors.values())
    packed = normal
    for module in model.modules():
        if not is_binarized(module):
            continue
        weight = latent_weight(module).detach()
        bits = (weight > 0).reshape(weight.shape[0], -1).cpu().numpy()
        axis = int(np.argmax(bits.shape))
        packed += np.packbits(bits, axis=axis).nbytes - weight.numel() * weight.element_size()
    return int(normal), int(packed)
