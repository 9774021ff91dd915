"""How much one sign flip of HadamRNN's ``s`` costs, against what the identity STE predicts.

Trains the pMNIST HadamRNN of a config with its sign vector fixed (``TRAIN.SIGN_LR=0``) for a
few epochs on a subset of the training split, then flips single signs ``u_i = sign(s_i)`` one
at a time and measures the change of the cross-entropy on held-out images, next to the
first-order change the identity STE predicts, ``-2 u_i dL/ds_i``. A negative prediction is a
flip the STE asks for. Probed coordinates: the ``--probe`` most wanted flips, the most
unwanted ones, and random ones.

Writes one row per probed coordinate::

    python scripts/hadamrnn_flip_sensitivity.py [--config configs/hadamrnn/pmnist.yaml]
        [--train 5000] [--held-out 500] [--epochs 4] [--probe 10]
        [--out experiments_results/hadamrnn/pmnist/flip_sensitivity.csv]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch
from bnn_shared.cli import run_cli
from bnn_shared.utils import keep_freed_memory
from hadamrnn import get_model, get_optimizer, load, load_splits

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments_results" / "hadamrnn" / "pmnist" / "flip_sensitivity.csv"


def tensors(split, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` items of a split as one batch."""
    return split.batch(torch.arange(count))


def loss_on(model, x, y) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x), y)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "hadamrnn" / "pmnist.yaml"))
    parser.add_argument("--train", type=int, default=5000, help="training images")
    parser.add_argument("--held-out", type=int, default=500, help="images the loss is read on")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--probe", type=int, default=10, help="coordinates of each kind")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    keep_freed_memory()

    cfg = load(args.config, ["TRAIN.SIGN_LR=0"])
    torch.manual_seed(cfg.model.seed)
    splits = load_splits(cfg.dataset, args.data_dir)
    x, y = tensors(splits.train, args.train)
    x_held, y_held = tensors(splits.val, args.held_out)
    model = get_model(cfg)
    optimizer = get_optimizer(cfg, model)
    batch = cfg.train.batch_size
    for epoch in range(args.epochs):
        order = torch.randperm(args.train)
        for start in range(0, args.train, batch):
            idx = order[start : start + batch]
            optimizer.zero_grad()
            loss_on(model, x[idx], y[idx]).backward()
            optimizer.step()
        with torch.no_grad():
            print(f"epoch {epoch}: held-out loss {loss_on(model, x_held, y_held).item():.4f}")

    s = model.recurrent.s
    model.zero_grad()
    base = loss_on(model, x_held, y_held)
    base.backward()
    predicted = (-2 * torch.sign(s.detach()) * s.grad).reshape(-1)
    order = torch.argsort(predicted)
    generator = torch.Generator().manual_seed(0)
    picks = {
        "wanted": order[: args.probe],
        "unwanted": order.flip(0)[: args.probe],
        "random": torch.randperm(len(order), generator=generator)[: args.probe],
    }
    rows = []
    with torch.no_grad():
        for kind, coords in picks.items():
            for i in coords.tolist():
                s[0, i] *= -1
                actual = loss_on(model, x_held, y_held).item() - base.item()
                s[0, i] *= -1
                rows.append([kind, i, f"{predicted[i].item():.6g}", f"{actual:.6g}"])
                print(f"{kind:8s} s[{i:3d}]  STE {predicted[i].item():+.4f}  actual {actual:+.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["kind", "coordinate", "ste_predicted_dloss", "actual_dloss"])
        writer.writerows(rows)
    print(f"base held-out loss {base.item():.4f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
