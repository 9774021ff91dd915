"""``python -m eqprop_binary.plot``: figures of finished (or running) training runs, saved as PNG.

Usage::

    python -m eqprop_binary.plot RUN_DIR [RUN_DIR ...] [--out DIR]

Each ``RUN_DIR`` is a run directory (it holds ``results.csv``) or any folder above run
directories, such as ``runs/DATA-0-fc-mnist/2024-05-01``: every ``results.csv`` below it is
a run. Written, and printed one path a line:

* in each run directory: ``errors.png`` (ave and single train/test error per epoch),
  ``losses.png`` (train/test loss) and ``flips.png`` (the ``Nb_Change_Weights_*`` columns:
  natural log of the fraction of weights flipped per epoch, one line per layer; layer ``0``
  or ``fc_0`` is the output layer);
* with two runs or more, ``summary_errors.png`` in ``--out``: mean ± std of the ave
  train/test error across runs, on the epochs present in every run (default ``--out``: the
  first ``RUN_DIR`` when it is a folder above runs, else the parent of the first run).

A table follows: each run's path, epochs, last and best ``Ave_Test_Error``. Unlike the
reference ``plotFunction.py``, figures are saved (Agg backend), never shown.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from bnn_shared.cli import run_cli
from bnn_shared.errors import BnnError
from matplotlib.ticker import MaxNLocator

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["read_results", "find_runs", "plot_run", "plot_summary", "main"]

RESULTS = "results.csv"
REQUIRED = (
    "Epoch",
    "Ave_Train_Error",
    "Ave_Test_Error",
    "Single_Train_Error",
    "Single_Test_Error",
    "Train_Loss",
    "Test_Loss",
)
FLIPS = "Nb_Change_Weights_"
_PER_LAYER = (FLIPS, "Threshold_", "Gamma_", "Alpha_")


def _known(column: str) -> bool:
    return column in REQUIRED or column == "Seconds" or column.startswith(_PER_LAYER)


def read_results(path: str | Path) -> dict[str, list[float]]:
    """Columns of a ``results.csv`` (a file, or the run directory holding it) by name.

    Unknown columns are left out; a header-only (or empty) file gives empty lists.
    Raises :class:`BnnError` when a required column is missing or a cell is not a number.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    if not path.is_file():
        raise BnnError(f"{path} does not exist; give a run's results.csv or its directory")
    try:
        return _read_columns(path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BnnError(
            f"{path} is not a CSV file ({exc}); plot reads the results.csv written by "
            "eqprop_binary.main"
        ) from None


def _read_columns(path: Path) -> dict[str, list[float]]:
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        header = reader.fieldnames or []
        missing = [name for name in REQUIRED if name not in header]
        if header and missing:
            raise BnnError(
                f"{path} lacks the column(s) {', '.join(missing)}; "
                "plot reads the results.csv written by eqprop_binary.main"
            )
        columns: dict[str, list[float]] = {
            name: [] for name in (header or REQUIRED) if _known(name)
        }
        for row in reader:
            for name, values in columns.items():
                try:
                    values.append(float(row[name]))
                except (TypeError, ValueError):
                    raise BnnError(
                        f"{path}, line {reader.line_num}: {name} = {row[name]!r} is not a number"
                    ) from None
    return columns


def _natural_key(path: Path) -> list[str | int]:
    """Sort key putting ``S-2`` before ``S-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories given by ``paths``: each is a run directory, its ``results.csv``, or
    a folder searched recursively for ``results.csv``. Order kept, duplicates dropped."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise BnnError(f"{path} does not exist")
        if path.is_file():
            if path.name != RESULTS:
                raise BnnError(f"{path} is not a {RESULTS}; give a run directory")
            found = [path.parent]
        elif (path / RESULTS).is_file():
            found = [path]
        else:
            found = sorted((p.parent for p in path.rglob(RESULTS)), key=_natural_key)
            if not found:
                raise BnnError(f"no {RESULTS} found in {path} or below it")
        runs += [run for run in found if run not in runs]
    return runs


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _axis(ax: plt.Axes, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``errors.png``, ``losses.png`` and (when the run has flip columns)
    ``flips.png`` in ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    res = read_results(run_dir)
    epochs = res["Epoch"]
    if not epochs:
        raise BnnError(f"{run_dir / RESULTS} has no rows yet")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind in zip(axes, ("Ave", "Single"), strict=True):
        for split in ("Train", "Test"):
            ax.plot(epochs, res[f"{kind}_{split}_Error"], marker=".", label=split.lower())
        _axis(ax, f"{kind} error", "error (%)")
    written = [_save(fig, run_dir / "errors.png")]

    fig, ax = plt.subplots(figsize=(5, 4))
    for split in ("Train", "Test"):
        ax.plot(epochs, res[f"{split}_Loss"], marker=".", label=split.lower())
    _axis(ax, "Loss", "loss")
    written.append(_save(fig, run_dir / "losses.png"))

    flips = [name for name in res if name.startswith(FLIPS)]
    if flips:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in flips:
            ax.plot(epochs, res[name], marker=".", label=name.removeprefix(FLIPS))
        _axis(ax, "Weight flips per epoch (0 / fc_0: output layer)", "ln(fraction flipped)")
        written.append(_save(fig, run_dir / "flips.png"))
    return written


def plot_summary(run_dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Write ``summary_errors.png`` in ``out_dir``: mean ± std across ``run_dirs`` of
    ``Ave_Train_Error`` and ``Ave_Test_Error`` on the epochs present in every run."""
    if not run_dirs:
        raise BnnError("plot_summary needs at least one run")
    tables = []
    for run_dir in run_dirs:
        res = read_results(run_dir)
        tables.append(
            {
                split: dict(zip(res["Epoch"], res[f"Ave_{split}_Error"], strict=True))
                for split in ("Train", "Test")
            }
        )
    epochs = sorted(set.intersection(*(set(table["Test"]) for table in tables)))
    if not epochs:
        raise BnnError("the runs share no epoch; cannot average them")

    fig, ax = plt.subplots(figsize=(6, 4))
    for split in ("Train", "Test"):
        values = np.array([[table[split][e] for e in epochs] for table in tables])
        mean, std = values.mean(axis=0), values.std(axis=0)
        (line,) = ax.plot(epochs, mean, marker=".", label=f"{split.lower()} (mean ± std)")
        ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.25)
    _axis(ax, f"Ave error over {len(tables)} runs", "error (%)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _save(fig, out_dir / "summary_errors.png")


def _table(rows: list[tuple[str, int, float, float]]) -> str:
    head = ("run", "epochs", "last test err (%)", "best test err (%)")
    cells = [head] + [(run, str(n), f"{last:.2f}", f"{best:.2f}") for run, n, last, best in rows]
    width = max(len(cell[0]) for cell in cells)
    return "\n".join(
        f"{run:<{width}}  {n:>6}  {last:>17}  {best:>17}" for run, n, last, best in cells
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eqprop_binary.plot",
        description="Save PNG figures of eqprop_binary runs (errors, losses, weight flips) "
        "and, for two runs or more, the mean ± std of their errors.",
    )
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="a run directory (holds results.csv) or any folder above run directories",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where summary_errors.png goes (default: the first RUN_DIR when it is a folder "
        "above runs, else the parent of the first run)",
    )
    args = parser.parse_args(argv)

    runs, rows = [], []
    for run in find_runs(args.run_dirs):
        test = read_results(run)["Ave_Test_Error"]
        if not test:
            print(f"note: skipping {run / RESULTS}: no rows yet", file=sys.stderr)
            continue
        runs.append(run)
        rows.append((str(run), len(test), test[-1], min(test)))
    if not runs:
        raise BnnError("no results.csv holds any epoch yet; nothing to plot")

    written = [path for run in runs for path in plot_run(run)]
    if len(runs) > 1:
        first = Path(args.run_dirs[0])
        default = first if first.is_dir() and not (first / RESULTS).is_file() else runs[0].parent
        written.append(plot_summary(runs, args.out or default))
    for path in written:
        print(path)
    print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
