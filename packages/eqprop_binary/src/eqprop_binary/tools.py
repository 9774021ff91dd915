"""Data, the training methods, training and test epochs, the results table, run paths and
the hyperparameter file.

As in the reference ``Tools.py``: one training epoch runs, per mini-batch, the free phase,
the nudged phase (EP) or ``loss.backward()`` (truncated BPTT), and one weight update; the
training error is read from the free-phase output before the update. Errors are in %:
"Ave" takes the argmax over classes of the mean of each class's ``expand_output`` output
neurons, "Single" uses the first neuron of each class only (the same for bin_W). Losses
are ``1/(2B) sum (s_out - y)^2`` summed over the batches and divided by the dataset size.

Metric names (``metrics.csv``) and the reference's ``results.csv`` columns:

=====================================  ===========================================
``train/error``, ``test/error``        ``Ave_Train_Error``, ``Ave_Test_Error``
``train/error_single``, ``test/...``   ``Single_Train_Error``, ``Single_Test_Error``
``train/loss``, ``test/loss``          ``Train_Loss``, ``Test_Loss``
``log_flips/<layer>``                  ``Nb_Change_Weights_<layer>``
``threshold/<layer>``                  ``Threshold_<layer>``
``gamma/<layer>``, ``alpha/<layer>``   ``Gamma_<layer>``, ``Alpha_<layer>``
``seconds``                            ``Seconds``
=====================================  ===========================================
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import torch
from bnn_shared.data import dataset_info, load_tensors
from bnn_shared.quantizers import hard_sign
from bnn_shared.registry import Registry
from bnn_shared.runner import Context
from bnn_shared.tracking import atomic_write_text

from .dynamics import EPNetwork
from .settings import NUM_CLASSES, Settings

__all__ = [
    "METHODS",
    "RESULTS_COLUMNS",
    "LAYER_COLUMNS",
    "augment_cifar",
    "bptt_step",
    "ep_step",
    "is_cifar10",
    "layer_metrics",
    "layer_names",
    "load_data",
    "one_hot",
    "results_row",
    "run_directory",
    "save_hyperparameters",
    "test_epoch",
    "train_epoch",
    "write_results",
]

#: results.csv column -> metrics.csv name, in the reference's column order
RESULTS_COLUMNS = {
    "Ave_Train_Error": "train/error",
    "Ave_Test_Error": "test/error",
    "Single_Train_Error": "train/error_single",
    "Single_Test_Error": "test/error_single",
    "Train_Loss": "train/loss",
    "Test_Loss": "test/loss",
}
#: per-layer results.csv column prefix -> metrics.csv prefix (``<prefix>/<layer>``)
LAYER_COLUMNS = {
    "Nb_Change_Weights": "log_flips",
    "Threshold": "threshold",
    "Gamma": "gamma",
    "Alpha": "alpha",
}


# -- data -------------------------------------------------------------------------------------


def is_cifar10(dataset: str) -> bool:
    """CIFAR-10 (any alias) is normalised and augmented, as in the reference."""
    return dataset_info(dataset).name == "cifar10"


def load_data(
    cfg: Settings, data_dir: str | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and test images ``(N, C, H, W)`` as float32 in [0, 1] (CIFAR-10: normalised
    with the dataset's mean and std) and integer labels, held in memory. fc nets flatten
    each batch when it is used."""
    normalized = is_cifar10(cfg.dataset)
    arrays = []
    for split in ("train", "test"):
        x, y, _ = load_tensors(cfg.dataset, split, data_dir, download, normalized=normalized)
        arrays += [x, y]
    return arrays[0], arrays[1], arrays[2], arrays[3]


def one_hot(labels: torch.Tensor, expand: int) -> torch.Tensor:
    """One-hot over the 10 classes, each entry repeated ``expand`` times (population code)."""
    target = torch.nn.functional.one_hot(labels, NUM_CLASSES).float()
    return target.repeat_interleave(expand, dim=1)


def augment_cifar(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RandomHorizontalFlip(0.5) and RandomCrop(32, padding=4, edge) on a batch."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(3), x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="replicate")
    dy = torch.randint(0, 9, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 9, (b,), generator=generator).to(x.device)
    rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


# -- the training methods (--optim) -----------------------------------------------------------


def _loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((out - target) ** 2).sum() / (2 * len(target))


def ep_step(
    net: EPNetwork, x: torch.Tensor, target: torch.Tensor, beta: float, epoch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One EP update: free phase, nudged phase, flips; returns the free output and loss."""
    with torch.no_grad():
        ctx = net.prepare(x)
        free = net.forward(net.init_hidden(x), ctx)
        out = free.s[0]
        loss = _loss(out, target)
        nudged = net.forward(free.copy(), ctx, beta=beta, target=target, pred=out)
        net.update_weights(nudged, free, ctx, beta, epoch=epoch)
    return out, loss


def bptt_step(
    net: EPNetwork, x: torch.Tensor, target: torch.Tensor, beta: float, epoch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One truncated-BPTT update of the free phase, fed to the same flip optimizer."""
    ctx = net.prepare(x)
    free = net.forward(net.init_hidden(x), ctx, optim="bptt")
    out = free.s[0]
    loss = _loss(out, target)
    loss.backward()
    net.update_weights(None, free, ctx, beta, epoch=epoch, optim="bptt")
    return out, loss


#: --optim name -> ``step(net, x, target, beta, epoch) -> (free output, loss)``
METHODS: Registry = Registry("training method", flag="--optim")
METHODS.register("ep", ep_step)
METHODS.register("bptt", bptt_step)


# -- epochs -----------------------------------------------------------------------------------


def _errors(out: torch.Tensor, labels: torch.Tensor, expand: int) -> tuple[int, int]:
    """Wrong predictions of the "Ave" and "Single" read-outs."""
    groups = out.detach().view(out.shape[0], NUM_CLASSES, expand)
    ave = (groups.mean(2).argmax(1) != labels).sum().item()
    single = (groups[:, :, 0].argmax(1) != labels).sum().item()
    return ave, single


def _inputs(net: EPNetwork, x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1) if net.cfg.archi == "fc" else x


def train_epoch(
    net: EPNetwork,
    x: torch.Tensor,
    labels: torch.Tensor,
    epoch: int,
    ctx: Context,
    *,
    augment: bool = False,
) -> dict[str, Any]:
    """One pass over the training set in the order of ``ctx.batches``; returns the errors
    (%), the loss, the per-layer metrics (:func:`layer_metrics`) and the seconds it took.

    Args:
        ctx: the runner's context (device, shuffling generator, batches, NaN check).
        augment: CIFAR-10's random flips and crops (:func:`augment_cifar`).
    """
    cfg = net.cfg
    net.train()
    net.bop.reset_flips()
    step = METHODS.get(cfg.optim)
    wrong_ave = wrong_single = 0
    loss_sum = 0.0
    began = time.perf_counter()
    batches = ctx.batches(len(labels), cfg.batchSize, desc=f"epoch {epoch}/{cfg.epochs}")
    for index, idx in enumerate(batches):
        xb = x[idx]
        if augment:
            xb = augment_cifar(xb, ctx.generator)
        xb = _inputs(net, xb.to(ctx.device, non_blocking=True))
        yb = labels[idx].to(ctx.device)
        target = one_hot(yb, cfg.expand_output)
        beta = cfg.beta * (float(hard_sign(torch.randn(1), zero=0)) if cfg.random_beta else 1.0)
        out, loss = step(net, xb, target, beta, epoch)
        ctx.check_loss(loss, index)
        loss_sum += loss.item() * ctx.share  # under torchrun: this process's part of the batch
        ave, single = _errors(out, yb, cfg.expand_output)
        wrong_ave += ave
        wrong_single += single
    seconds = time.perf_counter() - began
    n = ctx.samples  # the samples this process trained on (all of them without torchrun)
    return {
        "train/error": 100.0 * wrong_ave / n,
        "train/error_single": 100.0 * wrong_single / n,
        "train/loss": loss_sum / n,
        **layer_metrics(net),
        "seconds": seconds,
    }


@torch.no_grad()
def test_epoch(
    net: EPNetwork, x: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> dict[str, float]:
    """Free phase only, over the test set: errors (%) and loss."""
    cfg = net.cfg
    net.eval()
    wrong_ave = wrong_single = 0
    loss_sum = 0.0
    for start in range(0, len(labels), cfg.test_batchSize):
        xb = _inputs(net, x[start : start + cfg.test_batchSize].to(device))
        yb = labels[start : start + cfg.test_batchSize].to(device)
        out = net.forward(net.init_hidden(xb), net.prepare(xb)).s[0]
        target = one_hot(yb, cfg.expand_output)
        loss_sum += _loss(out, target).item()
        ave, single = _errors(out, yb, cfg.expand_output)
        wrong_ave += ave
        wrong_single += single
    n = len(labels)
    return {
        "test/error": 100.0 * wrong_ave / n,
        "test/error_single": 100.0 * wrong_single / n,
        "test/loss": loss_sum / n,
    }


# -- the results table ------------------------------------------------------------------------


def layer_names(net: EPNetwork) -> list[str]:
    """Names of the weight layers: ``0, 1`` (fc) or ``fc_0, conv_0, ...`` (conv)."""
    cfg = net.cfg
    if cfg.archi == "fc":
        return [str(k) for k in range(cfg.n_fc)]
    return [f"fc_{k}" for k in range(cfg.n_fc)] + [f"conv_{k}" for k in range(cfg.n_conv)]


def layer_metrics(net: EPNetwork) -> dict[str, float]:
    """Per weight layer: ``log_flips`` (ln of the fraction of weights flipped since the
    epoch began, + 1e-9), ``threshold`` and ``gamma`` of the flip optimizer and the
    current scaling factor ``alpha`` (conv layers: the mean over channels). Conv nets:
    the classifier's gammas for ``fc_k``, fixing the reference."""
    names = layer_names(net)
    row: dict[str, float] = {}
    for name, layer, count in zip(names, net.weight_layers(), net.num_weights(), strict=True):
        row[f"log_flips/{name}"] = math.log(net.bop.flips(layer.weight) / count + 1e-9)
    settings = net.flip_settings()
    for name, (_, threshold) in zip(names, settings, strict=True):
        row[f"threshold/{name}"] = threshold
    for name, (gamma, _) in zip(names, settings, strict=True):
        row[f"gamma/{name}"] = gamma
    for name, alpha in zip(names, net.alpha_values(), strict=True):
        row[f"alpha/{name}"] = alpha
    return row


def results_row(row: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """One row of ``results.csv`` from an epoch's ``metrics.csv`` row: the reference
    columns in the reference order, then the scaling factors and the epoch's training time.

    Args:
        row: the metrics of one epoch (with ``epoch``).
        names: the weight layers' names (:func:`layer_names`).
    """
    # rows logged before the metrics were renamed (a resumed older run) carry the columns
    result: dict[str, Any] = {"Epoch": row["epoch"]}
    result.update({col: row.get(key, row.get(col)) for col, key in RESULTS_COLUMNS.items()})
    for prefix, key in LAYER_COLUMNS.items():
        for name in names:
            column = f"{prefix}_{name}"
            result[column] = row.get(f"{key}/{name}", row.get(column))
    result["Seconds"] = row.get("seconds", row.get("Seconds"))
    return result


def write_results(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Write ``results.csv`` atomically (a killed run never leaves half a file)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


# -- run paths and the hyperparameter file ----------------------------------------------------


def run_directory(out_dir: str | Path, cfg: Settings, resume: bool = False) -> Path:
    """``out_dir/DATA-0-{archi}-{dataset}/{YYYY-MM-DD}/S-{k}`` as in the reference: a new
    ``S-k`` (k = 1 + the largest existing) for a new run. With ``resume``: ``out_dir``
    itself when it holds a checkpoint, else the newest ``S-k`` below it that holds one.
    """
    out_dir = Path(out_dir)
    base = out_dir / f"DATA-0-{cfg.archi}-{cfg.dataset}"
    if resume:
        if (out_dir / "checkpoint.pt").is_file():
            return out_dir
        found = sorted(base.glob("*/S-*/checkpoint.pt"), key=lambda p: (p.stat().st_mtime, str(p)))
        if found:
            return found[-1].parent
        return out_dir  # the core's tracking reports "no checkpoint" with the path
    day = base / date.today().isoformat()
    taken = [int(p.name[2:]) for p in day.glob("S-*") if p.name[2:].isdigit()]
    return day / f"S-{max(taken, default=0) + 1}"


_COMMON = [
    "device",
    "archi",
    "binary_settings",
    "optim",
    "dataset",
    "activationFun",
    "T",
    "Kmax",
    "beta",
    "random_beta",
    "lrBias",
    "batchSize",
    "test_batchSize",
    "epochs",
    "learnAlpha",
    "lrAlpha",
    "decayLrAlpha",
    "epochDecayLrAlpha",
    "nudge",
    "flip_rule",
    "seed",
]
_FC = ["layersList", "gamma", "gradThreshold"]
_CONV = [
    "layersList",
    "convList",
    "padding",
    "kernelSize",
    "Fpool",
    "classi_gamma",
    "conv_gamma",
    "classi_threshold",
    "conv_threshold",
    "clamp_output",
]
_BINARY_ACTIVATIONS = ["gamma_neur", "rho_threshold", "expand_output"]


def save_hyperparameters(cfg: Settings, run_dir: str | Path) -> Path:
    """``Hyperparameters.txt``: a header line, then ``key: value`` for the run's settings
    (fc-only keys for fc, conv-only keys for conv, neuron keys for bin_W_N)."""
    header = (
        "Binary synapses and binary activations (bin_W_N)"
        if cfg.binary_activations
        else "Binary synapses and full-precision activations (bin_W)"
    )
    keys = _COMMON + (_FC if cfg.archi == "fc" else _CONV)
    if cfg.binary_activations:
        keys += _BINARY_ACTIVATIONS
    lines = [f"{header}, {cfg.archi} architecture", ""]
    lines += [f"{key}: {getattr(cfg, key)}" for key in keys]
    path = Path(run_dir) / "Hyperparameters.txt"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
