"""Post-training activation quantization: ``python -m hadamrnn.ptq --checkpoint FILE``.

Loads a trained model (``best.pt`` / ``checkpoint.pt`` of a run directory, which carry their
config, or a ``--save-network`` ``.pth`` with ``--config``), calibrates ``max |x|`` (the
recurrence's input) and ``max |h|`` (every hidden state) on training batches, then evaluates
with the input and the hidden state quantized to each bit width after every step (sequential
engine) and prints the metric per bit width next to the float model's.

``--integer`` also builds, for each bit width, the integer-only model
(:class:`~hadamrnn.integer.IntegerHadamRNN`: integer weights, activations and fixed-point
scales, the calibrated maxima rounded up to powers of two) and prints one ``integer`` line
per bit width: the metric of the fake-quantized float32 model with those power-of-two scales
(``fake``), the integer model's, and on how many inputs their predictions agree;
``--reference`` adds the agreement with the float64 fixed-point reference
(:meth:`~hadamrnn.integer.IntegerHadamRNN.reference`, equal by construction) and with the
fake-quantized model computed in float64 (exact weights), and how often the float32 and
float64 fake-quantized models agree with each other, ``--csv FILE``
writes the lines as a CSV and ``--out FILE`` writes the integer model of the one ``--bits``
value (read it back with :func:`hadamrnn.integer.load_integer_model`).
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from bnn_shared.cli import add_common_arguments, run_cli
from bnn_shared.config import from_dict
from bnn_shared.data.splits import batches
from bnn_shared.errors import CheckpointError, ConfigError
from bnn_shared.tracking import atomic_write_text, read_checkpoint
from bnn_shared.utils import parse_device

from .config import Config, load, lower_keys
from .dataset_tools import load_splits
from .extra_layers import ActivationQuantizer
from .getters import get_loss, get_metric, get_model
from .integer import IntegerHadamRNN, power_of_two_at_least
from .models import LinearRNN
from .training import evaluate

__all__ = ["calibrate", "integer_rows", "quantized_metrics", "main"]


def _load(checkpoint: Path, config: str | None) -> tuple[Config, dict]:
    payload = read_checkpoint(checkpoint)
    state = payload["model"]
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


def _predictions(logits: torch.Tensor) -> torch.Tensor:
    return (logits[..., 0] > 0).long() if logits.shape[-1] == 1 else logits.argmax(-1)


def _power_of_two_quantizer(quantizer: ActivationQuantizer) -> ActivationQuantizer:
    fixed = ActivationQuantizer(quantizer.bits)
    fixed.max_abs.fill_(power_of_two_at_least(float(quantizer.max_abs)))
    return fixed


@torch.no_grad()
def integer_rows(
    model: LinearRNN,
    splits,
    cfg: Config,
    bit_widths: Sequence[int],
    split: str = "test",
    calibration_batches: int | None = 10,
    *,
    reference: bool = False,
) -> tuple[list[dict], dict[int, IntegerHadamRNN]]:
    """For each bit width: the integer model and its agreement with the fake-quantized
    float32 model (same power-of-two scales) on ``split`` (CPU).

    Returns the rows (bits, scales, shifts, ``<split>/accuracy_fake`` and
    ``<split>/accuracy_integer`` with a metric, ``inputs``, ``agree``; with ``reference`` also
    ``agree_reference`` (the float64 fixed-point reference), ``agree_fake64`` (the
    fake-quantized model in float64, exact weights) and ``fake32_vs_fake64`` (the float32 and
    float64 fake-quantized models with each other)) and the integer models by bit width.
    """
    model = model.cpu().eval()
    metric = get_metric(cfg)
    data = getattr(splits, split)
    size = cfg.train.val_batch_size or max(1, math.ceil(len(data) / 10))
    rows, models = [], {}
    for bits in bit_widths:
        x_q, h_q = calibrate(model, splits.train, cfg, bits, "cpu", calibration_batches)
        x_q, h_q = _power_of_two_quantizer(x_q), _power_of_two_quantizer(h_q)
        integer = IntegerHadamRNN.from_model(
            model,
            input_bits=bits,
            state_bits=bits,
            input_max=float(x_q.max_abs),
            state_max=float(h_q.max_abs),
        )
        models[bits] = integer
        runs = {"": (model, x_q, h_q)}
        if reference:
            runs["_reference"] = integer.reference(model)[:3]
            runs["_fake64"] = tuple(copy.deepcopy(m).double() for m in (model, x_q, h_q))
        counts = dict.fromkeys(["inputs", "fake", "integer", "fake32_vs_fake64"], 0)
        for x, y in batches(data, size):
            logits = integer.integer_logits(x)
            predicted = _predictions(logits)
            found = {}
            for name, (net, in_q, state_q) in runs.items():
                inputs = x if name == "" else _as_double(x)
                out = net(inputs, input_quantizer=in_q, state_quantizer=state_q)
                found[name] = _predictions(out)
                counts["agree" + name] = counts.get("agree" + name, 0) + int(
                    (found[name] == predicted).sum()
                )
                if name == "" and metric is not None:
                    counts["fake"] += float(metric(out, y))
            if reference:
                counts["fake32_vs_fake64"] += int((found[""] == found["_fake64"]).sum())
            counts["inputs"] += predicted.numel()
            if metric is not None:
                counts["integer"] += float(metric(logits, y))
        rows.append(_integer_row(integer, bits, split, counts, metric is not None, reference))
    return rows, models


def _as_double(x: torch.Tensor) -> torch.Tensor:
    return x.double() if x.is_floating_point() else x


def _integer_row(integer, bits, split, counts, with_metric, reference) -> dict:
    meta = integer.meta
    row = {
        "bits": bits,
        "scale_x": meta["input_scale"],
        "scale_h": meta["state_scale"],
        "shift": meta["shift"],
        "logit_shift": meta["logit_shift"],
    }
    if with_metric:
        row[f"{split}/accuracy_fake"] = counts["fake"] / max(counts["inputs"], 1)
        row[f"{split}/accuracy_integer"] = counts["integer"] / max(counts["inputs"], 1)
    row["inputs"], row["agree"] = counts["inputs"], counts["agree"]
    if reference:
        for key in ("agree_reference", "agree_fake64", "fake32_vs_fake64"):
            row[key] = counts[key]
    return row


def _format(row: dict) -> str:
    return "  ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())


def _check_outputs(args) -> None:
    """Refuse bad ``--out`` / ``--csv`` values before any work."""
    if args.out is not None and len(args.bits) != 1:
        raise ConfigError("--out writes one integer model: give exactly one --bits value")
    for flag, path in (("--out", args.out), ("--csv", args.csv)):
        if path is not None and path.exists() and not path.is_file():
            raise ConfigError(f"{flag} {path} is not a file")
        if path is not None and not path.parent.is_dir():
            raise ConfigError(f"{flag} {path}: the directory {path.parent} does not exist")


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hadamrnn.ptq", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path, help="best.pt, .pth, ...")
    parser.add_argument("--config", help="YAML config (needed for a bare .pth state dict)")
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 12, 16])
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--calibration-batches", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--integer", action="store_true", help="also the integer-only model")
    parser.add_argument(
        "--reference", action="store_true", help="with --integer: check the float64 reference"
    )
    parser.add_argument("--out", type=Path, help="write the integer model (one --bits value)")
    parser.add_argument("--csv", type=Path, help="write the integer lines as a CSV")
    add_common_arguments(parser, tracking=False, runtime=False)
    args = parser.parse_args(argv)
    _check_outputs(args)
    cfg, state = _load(args.checkpoint, args.config)
    device = parse_device(args.device)
    model = get_model(cfg).to(device)
    if not isinstance(model, LinearRNN):
        raise ConfigError(f"ptq needs a linear RNN model, not MODEL.NAME {cfg.model.name!r}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{args.checkpoint} does not fit the config: {exc}") from exc
    integer = args.integer or args.out is not None or args.csv is not None
    if integer:  # refuse a model or bits the integer path cannot take before any work
        for bits in args.bits:
            IntegerHadamRNN.from_model(
                model.cpu(), input_bits=bits, state_bits=bits, input_max=1, state_max=1
            )
        model.to(device)
    splits = load_splits(cfg.dataset, args.data_dir, args.download)
    if args.split == "test" and not splits.test_labels:
        args.split = "val"  # GLUE: test labels are hidden
    for row in quantized_metrics(
        model, splits, cfg, args.bits, device, args.split, args.calibration_batches
    ):
        print(_format(row))
    if not integer:
        return 0
    rows, models = integer_rows(
        model,
        splits,
        cfg,
        args.bits,
        args.split,
        args.calibration_batches,
        reference=args.reference,
    )
    for row in rows:
        print("integer  " + _format(row))
    if args.csv is not None:
        atomic_write_text(args.csv, _csv_text(rows))
    if args.out is not None:
        models[args.bits[0]].save(args.out)
        print(f"integer model: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
