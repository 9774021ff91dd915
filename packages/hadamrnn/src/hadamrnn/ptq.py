"""Post-training activation quantization: ``python -m hadamrnn.ptq --checkpoint FILE``.

Loads a trained model (``best.pt`` / ``checkpoint.pt`` of a run directory, which carry their
config, or a ``--save-network`` ``.pth`` with ``--config``), calibrates ``max |x|`` (the
recurrence's input) and ``max |h|`` (every hidden state) on training batches, then evaluates
with the input and the hidden state quantized to each bit width after every step (sequential
engine) and prints the metric per bit width next to the float model's.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from bnn_shared.cli import add_common_arguments, run_cli
from bnn_shared.config import from_dict
from bnn_shared.data.splits import batches
from bnn_shared.errors import CheckpointError, ConfigError
from bnn_shared.utils import parse_device

from .config import Config, load, lower_keys
from .dataset_tools import load_splits
from .extra_layers import ActivationQuantizer
from .getters import get_loss, get_metric, get_model
from .models import LinearRNN
from .training import evaluate

__all__ = ["calibrate", "quantized_metrics", "main"]


def _load(checkpoint: Path, config: str | None) -> tuple[Config, dict]:
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} not found")
    try:
        payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read the checkpoint {checkpoint}: {exc}") from exc
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{checkpoint} holds no model state dict")
    if config is not None:
        return load(config), state
    stored = payload.get("config")
    if stored is None:
        raise ConfigError(f"{checkpoint} carries no config: pass --config FILE")
    stored = {k: v for k, v in lower_keys(stored).items() if k != "run"}  # the runner's record
    return from_dict(Config, stored, source=str(checkpoint)), state


@torch.no_grad()
def calibrate(model, split, cfg: Config, bits: int, device, limit: int | None = 10):
    """Input and state quantizers of ``bits`` bits calibrated on ``limit`` batches."""
    model.eval()
    x_q, h_q = ActivationQuantizer(bits), ActivationQuantizer(bits)
    for x, _ in batches(split, cfg.train.batch_size, limit=limit):
        x = x.to(device)
        x_q.observe(model.embed(x))
        h_q.observe(model.hidden_states(x, all_states=True))
    return x_q, h_q


def quantized_metrics(
    model,
    splits,
    cfg: Config,
    bit_widths: Sequence[int],
    device,
    split: str = "test",
    calibration_batches: int | None = 10,
) -> list[dict]:
    """One row per bit width (and one ``float``): the metric with quantized activations."""
    loss_fn, metric = get_loss(cfg), get_metric(cfg)
    data = getattr(splits, split)
    rows = [{"bits": "float", **evaluate(model, data, cfg, loss_fn, metric, device, prefix=split)}]
    for bits in bit_widths:
        x_q, h_q = calibrate(model, splits.train, cfg, bits, device, calibration_batches)
        row = evaluate(
            model,
            data,
            cfg,
            loss_fn,
            metric,
            device,
            prefix=split,
            input_quantizer=x_q,
            state_quantizer=h_q,
        )
        rows.append(
            {"bits": bits, "max_abs_x": float(x_q.max_abs), "max_abs_h": float(h_q.max_abs), **row}
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hadamrnn.ptq", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path, help="best.pt, .pth, ...")
    parser.add_argument("--config", help="YAML config (needed for a bare .pth state dict)")
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 12, 16])
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--calibration-batches", type=int, default=10)
    parser.add_argument("--device", default="auto")
    add_common_arguments(parser, tracking=False, runtime=False)
    args = parser.parse_args(argv)
    cfg, state = _load(args.checkpoint, args.config)
    device = parse_device(args.device)
    model = get_model(cfg).to(device)
    if not isinstance(model, LinearRNN):
        raise ConfigError(f"ptq needs a linear RNN model, not MODEL.NAME {cfg.model.name!r}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{args.checkpoint} does not fit the config: {exc}") from exc
    splits = load_splits(cfg.dataset, args.data_dir, args.download)
    if args.split == "test" and not splits.test_labels:
        args.split = "val"  # GLUE: test labels are hidden
    for row in quantized_metrics(
        model, splits, cfg, args.bits, device, args.split, args.calibration_batches
    ):
        print(
            "  ".join(
                f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
