"""A toy experiment for the runner's tests: softmax regression on digits through
:func:`bnn_shared.runner.fit`, runnable alone or under torchrun.

Usage: ``python runner_toy.py OUT_DIR [--resume] [--epochs N] [--kill-after E] [--set K=V]``.
With ``--kill-after E`` rank 0 kills its process with SIGKILL once epoch E is checkpointed,
as a power cut or an out-of-memory kill would (torchrun then stops the other ranks).
"""

from __future__ import annotations

import argparse
import os
import signal

import torch
from bnn_shared.config import ConfigModel, apply_overrides, from_dict
from bnn_shared.data import load_tensors
from bnn_shared.runner import Experiment, RunSettings, fit
from pydantic import Field
from torch import nn


class ToyConfig(ConfigModel):
    epochs: int = Field(3, ge=0)
    lr: float = Field(0.05, gt=0)
    batch_size: int = Field(64, ge=1)
    seed: int | None = 0
    nan_at_epoch: int = 0  # make the loss NaN in this epoch (0: never)
    kill_after: int = 0  # rank 0 kills itself at the start of the epoch after this (0: never)


class Toy(Experiment):
    """Softmax regression on digits."""

    project = "toy"
    resume_ignored = frozenset({"nan_at_epoch", "kill_after"})

    def setup(self, ctx):
        self.x, self.y, _ = load_tensors("digits", "train")
        self.x_test, self.y_test, _ = load_tensors("digits", "test")
        self.model = nn.Linear(64, 10).to(ctx.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.config.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 1, 0.5)

    def train_epoch(self, epoch, ctx):
        if self.config.kill_after and epoch == self.config.kill_after + 1 and ctx.is_main:
            os.kill(os.getpid(), signal.SIGKILL)
        total = 0.0
        for step, idx in enumerate(ctx.batches(len(self.y), self.config.batch_size)):
            loss = nn.functional.cross_entropy(self.model(self.x[idx].flatten(1)), self.y[idx])
            if epoch == self.config.nan_at_epoch:
                loss = loss * float("nan")
            ctx.check_loss(loss, step)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(idx)
        lr = self.optimizer.param_groups[0]["lr"]
        return {"train/loss": total / ctx.samples, "lr": lr}  # a mean over this process

    def evaluate(self, epoch, ctx):
        with torch.no_grad():
            out = self.model(self.x_test.flatten(1))
        return {"test/accuracy": (out.argmax(1) == self.y_test).float().mean().item()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[])
    args = parser.parse_args(argv)
    config = from_dict(ToyConfig, apply_overrides({}, args.overrides))
    settings = RunSettings(out_dir=args.out_dir, resume=args.resume, quiet=True, device="cpu")
    fit(Toy(config), settings)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
