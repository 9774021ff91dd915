"""The offline demo behind ``hatch run demo``: train every present package's model briefly.

Each installed distribution may contribute one or more demos through the entry-point group
``bnn_shared.demos``: a callable taking ``quiet: bool`` and returning a :class:`DemoResult`
(or a list of them). Packages that are not installed simply have no row. Demos use embedded
data only (scikit-learn's bundled digits, the generated copy task): no file, no network.

The core contributes its own row: a binary MLP (``QuantLinear`` with ``ste_sign`` weights
and activations) on digits, so that the demo shows the core working before any package.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import torch
from torch import nn

ENTRY_POINT_GROUP = "bnn_shared.demos"

__all__ = ["DemoResult", "core_demo", "discover", "format_table", "run_demos", "write_csv"]


@dataclass
class DemoResult:
    """One row of the demo table."""

    package: str
    model: str
    dataset: str
    metric: str  # name of the test metric, e.g. "test_acc" or "test_ce"
    value: float
    weight_bits: str  # bit-widths of the weights, e.g. "1/32" (binary weights, float biases)
    size_kib: float  # model size with quantized weights
    float32_kib: float  # the same model in float-32
    seconds: float


def discover() -> dict[str, EntryPoint]:
    """Demos registered by installed distributions, by entry-point name (``.load()`` gives
    the demo function)."""
    found = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found[ep.name] = ep
    return found


def run_demos(only: Iterable[str] | None = None, *, quiet: bool = False) -> list[DemoResult]:
    """Run the registered demos (all, or those named in ``only``) and return their rows."""
    from .errors import BnnError

    available = discover()
    names = list(available) if only is None else list(only)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise BnnError(f"unknown demo(s) {unknown}; available: {sorted(available)}")
    results: list[DemoResult] = []
    for name in names:
        fn = available[name].load()
        if not quiet:
            print(f"[demo] {name} ...", flush=True)
        out = fn(quiet=quiet)
        results.extend(out if isinstance(out, list) else [out])
    return results


def format_table(results: list[DemoResult]) -> str:
    """The demo table as aligned text."""
    header = [
        "package",
        "model",
        "dataset",
        "test metric",
        "weight bits",
        "size KiB",
        "fp32 KiB",
        "seconds",
    ]
    rows = [
        [
            r.package,
            r.model,
            r.dataset,
            f"{r.metric} {r.value:.4g}",
            r.weight_bits,
            f"{r.size_kib:.2f}",
            f"{r.float32_kib:.2f}",
            f"{r.seconds:.1f}",
        ]
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def write_csv(results: list[DemoResult], path: str | os.PathLike) -> Path:
    """Write the rows to ``path`` atomically."""
    from .tracking import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in fields(DemoResult)]
    lines = [",".join(names)]
    for r in results:
        row = asdict(r)
        lines.append(_csv_line([_fmt(row[n]) for n in names]))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _csv_line(cells: list[str]) -> str:
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


# ------------------------------------------------------------------- the core's demo


def binary_mlp(in_features: int, hidden: int, classes: int) -> nn.Sequential:
    """A BinaryNet-style MLP: float input to the first layer, binary everything else.

    Weights of every layer are binarized with ``ste_sign``; hidden activations are
    binarized by the next layer's ``input_quantizer``; batch norm and biases stay float.
    """
    from .layers import QuantLinear

    def block(i: int, o: int, first: bool) -> list[nn.Module]:
        return [
            QuantLinear(
                i,
                o,
                bias=False,
                input_quantizer=None if first else "ste_sign",
                kernel_quantizer="ste_sign",
            ),
            nn.BatchNorm1d(o),
        ]

    return nn.Sequential(
        nn.Flatten(),
        *block(in_features, hidden, True),
        *block(hidden, hidden, False),
        *block(hidden, classes, False),
    )


def core_demo(*, quiet: bool = False, epochs: int = 40, seed: int = 0) -> DemoResult:
    """Train the core's binary MLP on the bundled digits and evaluate on its test split."""
    from .data import as_tensors, load_dataset
    from .layers import clip_weights_
    from .summary import summary
    from .utils import seed_everything

    start = time.perf_counter()
    seed_everything(seed)
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    x_train, y_train = as_tensors(train)
    x_test, y_test = as_tensors(test)
    model = binary_mlp(64, 256, train.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=generator).split(64):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            clip_weights_(model, 1.0)
        scheduler.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    stats = summary(model, train.input_shape, print_fn=None)
    return DemoResult(
        package="bnn-shared",
        model="binary MLP 64-256-256-10",
        dataset="digits",
        metric="test_acc",
        value=accuracy,
        weight_bits="/".join(str(b) for b in sorted(stats.params)),
        size_kib=stats.memory_bytes / 1024,
        float32_kib=stats.float32_bytes / 1024,
        seconds=time.perf_counter() - start,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m bnn_shared.demo [--only NAME ...] [--out CSV] [--quiet]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Train every present package briefly, offline.")
    parser.add_argument("--only", nargs="+", help="run only these demos (entry-point names)")
    parser.add_argument("--out", default="experiments_results/demo.csv", help="CSV to write")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    results = run_demos(args.only, quiet=args.quiet)
    print(format_table(results))
    path = write_csv(results, args.out)
    print(f"table written to {path}")
    return 0


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli(main))
