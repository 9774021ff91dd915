"""A tiny deterministic training run for the kill-and-resume test of ``test_tracking.py``.

Usage: ``python resume_script.py OUT_DIR [--resume] [--kill-after EPOCH]``. With
``--kill-after`` the process kills itself with SIGKILL right after the checkpoint of that
epoch, as a power cut or an out-of-memory kill would. Every random source that a real run
uses is exercised: a shuffling DataLoader with its own generator, dropout (torch's global
RNG), NumPy's and Python's global RNGs.
"""

from __future__ import annotations

import argparse
import os
import random
import signal

import numpy as np
import torch
from bnn_shared.tracking import Run
from bnn_shared.utils import seed_everything
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-after", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    config = {"epochs": args.epochs, "resume": args.resume, "lr": 0.1, "hidden": 16, "seed": 0}

    seed_everything(config["seed"])
    inputs = torch.randn(96, 8)
    targets = (inputs.sum(dim=1) > 0).long()
    loader_rng = torch.Generator().manual_seed(1)
    loader = DataLoader(
        TensorDataset(inputs, targets), batch_size=16, shuffle=True, generator=loader_rng
    )
    model = nn.Sequential(
        nn.Linear(8, config["hidden"]), nn.ReLU(), nn.Dropout(0.2), nn.Linear(config["hidden"], 2)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    with Run(args.out_dir, config, resume=args.resume, quiet=True) as run:
        start = run.restore(model, optimizer, scheduler)
        if "loader_rng" in run.extra:
            loader_rng.set_state(run.extra["loader_rng"])
        for epoch in range(start, config["epochs"]):
            model.train()
            total = 0.0
            for x, y in run.progress(loader):
                noise = torch.from_numpy(np.random.normal(0, 0.01, x.shape).astype(np.float32))
                loss = nn.functional.cross_entropy(model(x + noise), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item()
            run.log(
                epoch,
                loss=total / len(loader),
                lr=scheduler.get_last_lr()[0],
                py_random=random.random(),
                weight_sum=model[0].weight.sum(),
            )
            scheduler.step()
            run.save_checkpoint(
                epoch, model, optimizer, scheduler, loader_rng=loader_rng.get_state()
            )
            if epoch == args.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        run.finish(loss=total / len(loader))


if __name__ == "__main__":
    main()
