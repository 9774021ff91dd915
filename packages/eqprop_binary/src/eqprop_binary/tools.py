"""Training and test epochs, the results table, run paths and the hyperparameter file.

As in the reference ``Tools.py``: one training epoch runs, per mini-batch, the free phase,
the nudged phase (EP) or ``loss.backward()`` (truncated BPTT), and one weight update; the
training error is read from the free-phase output before the update. Errors are in %:
"Ave" takes the argmax over classes of the mean of each class's ``expand_output`` output
neurons, "Single" uses the first neuron of each class only (the same for bin_W). Losses
are ``1/(2B) sum (s_out - y)^2`` summed over the batches and divided by the dataset size.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import torch
from bnn_shared.data import load_dataset
from bnn_shared.tracking import atomic_write_text

from .network import EPNetwork
from .settings import NUM_CLASSES, Settings

__all__ = [
    "load_data",
    "one_hot",
    "train_epoch",
    "test_epoch",
    "results_row",
    "write_results",
    "run_directory",
    "save_hyperparameters",
]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.247, 0.243, 0.261)


# -- data -------------------------------------------------------------------------------------


def load_data(
    cfg: Settings, data_dir: str | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and test images ``(N, C, H, W)`` as float32 in [0, 1] (CIFAR-10: normalised)
    and integer labels, held in memory. fc nets flatten each batch when it is used."""
    arrays = []
    for split in ("train", "test"):
        dataset = load_dataset(cfg.dataset, split, data_dir=data_dir, download=download)
        arrays += _stack(dataset)
    if cfg.dataset.lower() in {"cifar10", "cifar-10"}:
        mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
        arrays[0] = (arrays[0] - mean) / std
        arrays[2] = (arrays[2] - mean) / std
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _stack(dataset) -> list[torch.Tensor]:
    inner = getattr(dataset, "dataset", dataset)
    data, targets = getattr(inner, "data", None), getattr(inner, "targets", None)
    x = getattr(inner, "x", None)
    if isinstance(x, torch.Tensor) and targets is not None:
        images = x.float()
    elif isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and targets is not None:
        images = data.float().div_(255)  # torchvision MNIST: (N, H, W)
    elif data is not None and getattr(data, "dtype", None) is not None and targets is not None:
        images = torch.as_tensor(data).float().div_(255).permute(0, 3, 1, 2)  # CIFAR: NHWC
    else:
        xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
        images, targets = torch.stack(xs).float(), ys
    if images.dim() == 3:
        images = images.unsqueeze(1)
    return [images.contiguous(), torch.as_tensor(targets).long()]


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
    generator: torch.Generator,
    device: torch.device,
    progress: Callable[[Iterable], Iterable] = iter,
) -> dict[str, Any]:
    """One pass over the training set; returns errors (%), loss and flips per layer."""
    cfg = net.cfg
    net.train()
    net.bop.reset_flips()
    augment = cfg.dataset.lower() in {"cifar10", "cifar-10"}
    wrong_ave = wrong_single = 0
    loss_sum = 0.0
    began = time.perf_counter()
    order = torch.randperm(len(labels), generator=generator)
    for idx in progress(order.split(cfg.batchSize)):
        xb = x[idx]
        if augment:
            xb = augment_cifar(xb, generator)
        xb = _inputs(net, xb.to(device, non_blocking=True))
        yb = labels[idx].to(device)
        target = one_hot(yb, cfg.expand_output)
        beta = cfg.beta * (float(torch.sign(torch.randn(1))) if cfg.random_beta else 1.0)
        if cfg.optim == "bptt":
            ctx = net.prepare(xb)
            free = net.forward(net.init_hidden(xb), ctx, optim="bptt")
            out = free.s[0]
            loss = ((out - target) ** 2).sum() / (2 * len(idx))
            loss.backward()
            net.update_weights(None, free, ctx, beta, epoch=epoch, optim="bptt")
        else:
            with torch.no_grad():
                ctx = net.prepare(xb)
                free = net.forward(net.init_hidden(xb), ctx)
                out = free.s[0]
                loss = ((out - target) ** 2).sum() / (2 * len(idx))
                nudged = net.forward(free.copy(), ctx, beta=beta, target=target, pred=out)
                net.update_weights(nudged, free, ctx, beta, epoch=epoch)
        loss_sum += loss.item()
        ave, single = _errors(out, yb, cfg.expand_output)
        wrong_ave += ave
        wrong_single += single
    n = len(labels)
    flips = [net.bop.flips(layer.weight) for layer in net.weight_layers()]
    return {
        "ave_error": 100.0 * wrong_ave / n,
        "single_error": 100.0 * wrong_single / n,
        "loss": loss_sum / n,
        "flips": flips,
        "seconds": time.perf_counter() - began,
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
        loss_sum += (((out - target) ** 2).sum() / (2 * len(yb))).item()
        ave, single = _errors(out, yb, cfg.expand_output)
        wrong_ave += ave
        wrong_single += single
    n = len(labels)
    return {
        "ave_error": 100.0 * wrong_ave / n,
        "single_error": 100.0 * wrong_single / n,
        "loss": loss_sum / n,
    }


# -- the results table ------------------------------------------------------------------------


def _layer_names(net: EPNetwork) -> list[str]:
    """Column suffixes of the weight layers: ``0, 1`` (fc) or ``fc_0, conv_0, ...``."""
    cfg = net.cfg
    if cfg.archi == "fc":
        return [str(k) for k in range(cfg.n_fc)]
    return [f"fc_{k}" for k in range(cfg.n_fc)] + [f"conv_{k}" for k in range(cfg.n_conv)]


def results_row(
    net: EPNetwork, epoch: int, train: dict[str, Any], test: dict[str, float]
) -> dict[str, Any]:
    """One row of ``results.csv``: the reference columns, in the reference order (conv:
    the Gamma_fc columns hold the classifier's gammas, fixing the reference), then the
    current scaling factors and the epoch's training time."""
    row: dict[str, Any] = {
        "Epoch": epoch,
        "Ave_Train_Error": train["ave_error"],
        "Ave_Test_Error": test["ave_error"],
        "Single_Train_Error": train["single_error"],
        "Single_Test_Error": test["single_error"],
        "Train_Loss": train["loss"],
        "Test_Loss": test["loss"],
    }
    names = _layer_names(net)
    for name, flips, count in zip(names, train["flips"], net.num_weights(), strict=True):
        row[f"Nb_Change_Weights_{name}"] = math.log(flips / count + 1e-9)
    settings = net.flip_settings()
    for name, (_, threshold) in zip(names, settings, strict=True):
        row[f"Threshold_{name}"] = threshold
    for name, (gamma, _) in zip(names, settings, strict=True):
        row[f"Gamma_{name}"] = gamma
    for name, alpha in zip(names, net.alpha_values(), strict=True):
        row[f"Alpha_{name}"] = alpha
    row["Seconds"] = train["seconds"]
    return row


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
