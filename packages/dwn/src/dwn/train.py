"""Training of DWN classifiers: ``python -m dwn.train --config configs/dwn/mnist.yaml``.

Reproduces the reference example (examples/mnist.py and the tutorial notebook): a
thermometer encoder fitted on the training images, LUT layers, GroupSum, Adam with StepLR,
cross-entropy on the GroupSum scores. Every config key is also a flag (``--epochs 1``).
Runs are tracked by the core: ``config.yaml``, ``metrics.csv`` (one row per epoch),
``checkpoint.pt`` and ``--resume``; at the end the model is exported (``model.dwn``) and its
integer-only compiled copy is checked against the PyTorch predictions on the test set.

Everything is callable from Python: :func:`build_model`, :func:`make_encoder`,
:func:`load_arrays` and :func:`train`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from bnn_shared.cli import add_common_arguments, run_cli
from bnn_shared.config import add_config_arguments, config_from_arguments, to_dict
from bnn_shared.data import data_root, load_dataset, missing_dataset_error
from bnn_shared.tracking import DEFAULT_RESUME_IGNORED_KEYS, Run
from bnn_shared.utils import parse_device, seed_everything
from torch import nn

from .binarization import DistributiveThermometer, GaussianThermometer, Thermometer
from .config import TrainConfig
from .lut_layer import LUTLayer
from .utils import GroupSum

__all__ = ["build_model", "load_arrays", "make_encoder", "train", "main"]

ENCODERS = {
    "thermometer": Thermometer,
    "gaussian": GaussianThermometer,
    "distributive": DistributiveThermometer,
}
JSC_OPENML_ID = 42468


def make_encoder(cfg: TrainConfig):
    """The thermometer encoder named by ``cfg.encoder`` (not yet fitted)."""
    return ENCODERS[cfg.encoder](cfg.bits, feature_wise=cfg.feature_wise)


def build_model(cfg: TrainConfig, in_bits: int, num_classes: int) -> nn.Sequential:
    """LUT layers as in ``cfg.layers`` / ``cfg.mapping``, then ``GroupSum(classes, tau)``."""
    layers: list[nn.Module] = []
    width = in_bits
    for size, mapping in zip(cfg.layers, cfg.mapping, strict=True):
        layers.append(
            LUTLayer(
                width,
                size,
                cfg.n,
                mapping=mapping,
                alpha=cfg.alpha,
                beta=cfg.beta,
                lm_tau=cfg.lm_tau,
                backend=cfg.backend,
                efd=cfg.efd,
            )
        )
        width = size
    layers.append(GroupSum(num_classes, tau=cfg.tau))
    return nn.Sequential(*layers)


def load_arrays(
    cfg: TrainConfig, data_dir: str | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Raw features ``(N, F)`` float32 and labels of the train and test splits."""
    if cfg.dataset.lower() == "jsc":
        return _load_jsc(cfg, data_dir, download)
    splits = []
    for split in ("train", "test"):
        dataset = load_dataset(cfg.dataset, split, data_dir=data_dir, download=download)
        xs, ys = _stack(dataset)
        splits += [xs.flatten(1), ys]
    return (*splits, dataset.num_classes)


def _stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    inner = getattr(dataset, "dataset", dataset)
    data, targets = getattr(inner, "data", None), getattr(inner, "targets", None)
    if isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and targets is not None:
        # torchvision MNIST-style: the same values as ToTensor, without a Python loop
        return data.float().div_(255), torch.as_tensor(targets).long()
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(xs).float(), torch.as_tensor(ys).long()


def _load_jsc(cfg: TrainConfig, data_dir, download):
    """OpenML 42468 (hls4ml_lhc_jets_hlf), split 80/20 with random_state 42 (LogicNets)."""
    from sklearn.model_selection import train_test_split

    folder = data_root(data_dir) / "jsc"
    cache = folder / "jsc_openml_42468.npz"
    if not cache.exists():
        if not download:
            raise missing_dataset_error("jsc", folder, missing=[cache.name])
        x, y = _fetch_jsc(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, x=x, y=y)
    with np.load(cache, allow_pickle=False) as data:
        x, y = data["x"].astype(np.float32), data["y"]
    labels, y = np.unique(y, return_inverse=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, train_size=cfg.train_size, random_state=42)
    as_t = torch.from_numpy
    return as_t(x_tr), as_t(y_tr).long(), as_t(x_te), as_t(y_te).long(), len(labels)


def _fetch_jsc(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import fetch_openml

    try:
        bunch = fetch_openml(
            data_id=JSC_OPENML_ID,
            data_home=str(folder / "openml"),
            as_frame=False,
            parser="liac-arff",
            n_retries=1,
        )
    except Exception as exc:  # network errors come in many types; all mean "not here"
        raise missing_dataset_error("jsc", folder, reason=f"the download failed: {exc}") from exc
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target)


def evaluate(
    model: nn.Module, bits: torch.Tensor, labels: torch.Tensor, batch: int, device: torch.device
) -> tuple[float, float, torch.Tensor]:
    """Loss, accuracy and predictions of ``model`` in eval mode."""
    model.eval()
    losses, preds = [], []
    with torch.no_grad():
        for start in range(0, len(bits), batch):
            x = bits[start : start + batch].to(device).float()
            y = labels[start : start + batch].to(device)
            out = model(x)
            losses.append(nn.functional.cross_entropy(out, y, reduction="sum").item())
            preds.append(out.argmax(1).cpu())
    predictions = torch.cat(preds)
    accuracy = (predictions == labels).float().mean().item()
    return sum(losses) / len(bits), accuracy, predictions


def train(
    cfg: TrainConfig,
    *,
    out_dir: str | Path = "runs/dwn",
    data_dir: str | None = None,
    download: bool = False,
    resume: bool = False,
    device: str = "auto",
    wandb: bool = False,
    quiet: bool = False,
) -> dict[str, float]:
    """Train, evaluate every epoch, export; returns the final metrics."""
    device = parse_device(device)
    seed_everything(cfg.seed)
    x_train, y_train, x_test, y_test, num_classes = load_arrays(cfg, data_dir, download)
    encoder = make_encoder(cfg).fit(x_train)
    # Bits are 0/1: keep them as uint8 (4x less memory than float) until a batch is used.
    bits_train = encoder.binarize(x_train).flatten(1).to(torch.uint8)
    bits_test = encoder.binarize(x_test).flatten(1).to(torch.uint8)
    model = build_model(cfg, bits_train.shape[1], num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    config = {**to_dict(cfg), "device": str(device), "data_dir": data_dir}
    final: dict[str, float] = {}
    with Run(
        out_dir,
        config,
        resume=resume,
        use_wandb=wandb,
        quiet=quiet,
        project="dwn",
        ignore_keys=DEFAULT_RESUME_IGNORED_KEYS | {"export"},
    ) as run:
        # epochs are counted from 1; restore() returns the epoch after the checkpoint's
        first = max(run.restore(model, optimizer, scheduler), 1)
        if "shuffle_rng" in run.extra:
            shuffle.set_state(run.extra["shuffle_rng"])
        for epoch in range(first, cfg.epochs + 1):
            began = time.perf_counter()
            model.train()
            order = torch.randperm(len(bits_train), generator=shuffle)
            total_loss, correct = 0.0, 0
            batches = order.split(cfg.batch_size)
            for idx in run.progress(batches, desc=f"epoch {epoch}/{cfg.epochs}"):
                x = bits_train[idx].to(device).float()
                y = y_train[idx].to(device)
                optimizer.zero_grad(set_to_none=True)
                out = model(x)
                loss = nn.functional.cross_entropy(out, y)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(idx)
                correct += (out.argmax(1) == y).sum().item()
            scheduler.step()
            test_loss, test_acc, _ = evaluate(model, bits_test, y_test, cfg.test_batch_size, device)
            final = {
                "train_loss": total_loss / len(bits_train),
                "train_acc": correct / len(bits_train),
                "test_loss": test_loss,
                "test_acc": test_acc,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - began,
            }
            run.log(epoch, **final)
            run.save_checkpoint(epoch, model, optimizer, scheduler, shuffle_rng=shuffle.get_state())
        if cfg.export:
            final.update(
                _export_and_check(
                    model, encoder, x_test, bits_test, y_test, cfg, device, run.out_dir
                )
            )
        run.finish(**final)
    return final


def _export_and_check(model, encoder, x_test, bits_test, y_test, cfg, device, out_dir):
    """Export the model and compare the integer-only copy's predictions with PyTorch's."""
    from .export import export, load_compiled

    path = export(model, encoder, Path(out_dir) / "model.dwn")
    _, accuracy, predictions = evaluate(model, bits_test, y_test, cfg.test_batch_size, device)
    compiled = load_compiled(path)
    compiled_predictions = torch.as_tensor(np.asarray(compiled.predict(x_test.numpy())))
    agreement = (compiled_predictions == predictions).float().mean().item()
    return {
        "export_agreement": agreement,
        "compiled_test_acc": (compiled_predictions == y_test).float().mean().item(),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dwn.train", description="Train a Differentiable Weightless Network."
    )
    parser.add_argument("--config", help="YAML file of settings (configs/dwn/*.yaml)")
    add_config_arguments(parser, TrainConfig)
    add_common_arguments(parser, out_dir="runs/dwn")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from_arguments(TrainConfig, args, path=args.config)
    train(
        cfg,
        out_dir=args.out_dir,
        data_dir=args.data_dir,
        download=args.download,
        resume=args.resume,
        device=args.device,
        wandb=args.wandb,
        quiet=args.quiet,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
