"""Helpers for the test suites of the core and of every package."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CPU_AND_CUDA",
    "RECORD_GOLDEN_ENV",
    "check_golden",
    "metric_rows",
    "relative_difference",
    "single_thread",
    "skip_cuda_without_gpu",
]

#: Device parameters: ``cpu`` always, ``cuda`` marked ``cuda`` so that it skips without a GPU
#: (every package's conftest turns the ``cuda`` marker into a skip when CUDA is absent).
CPU_AND_CUDA = ("cpu", pytest.param("cuda", marks=pytest.mark.cuda))


def skip_cuda_without_gpu(items) -> None:
    """Mark every test carrying the ``cuda`` marker as skipped when no CUDA GPU is present.

    Each package's ``tests/conftest.py`` calls it from ``pytest_collection_modifyitems``.
    """
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


def relative_difference(a, b) -> float:
    """``|a - b| / |b|`` in the Frobenius norm (``|b|`` floored at 1e-30), as a float."""
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


# ---------------------------------------------------------------------------------------------
# Golden runs: short deterministic trainings whose metrics must not change under a refactor
# ---------------------------------------------------------------------------------------------

#: Set to 1 to (re)write the golden files instead of comparing with them.
RECORD_GOLDEN_ENV = "BNN_RECORD_GOLDEN"

#: Metric columns that measure wall-clock time, left out of golden comparisons.
_TIME_COLUMNS = re.compile(r"(?i)(^|[ /_])(seconds|time)([ /_]|$)")


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block on one intra-op thread (golden runs are recorded that way), restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def metric_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics CSV without its timing columns, numbers parsed.

    ``path`` may be a run directory: then its ``metrics.csv`` rows, followed by the row of
    its ``final.csv`` when there is one.
    """
    from .tracking import MetricsLog

    path = Path(path)
    files = [path / "metrics.csv", path / "final.csv"] if path.is_dir() else [path]
    rows = [row for file in files if file.is_file() for row in MetricsLog.load(file).rows]
    return [{k: v for k, v in row.items() if not _TIME_COLUMNS.search(k)} for row in rows]


def check_golden(
    rows: list[dict[str, Any]],
    path: str | Path,
    *,
    rename: Mapping[str, str] | None = None,
    epoch_offset: int = 0,
    tolerance: float = 0.0,
) -> None:
    """Compare the metric ``rows`` of a golden run with the rows recorded in ``path`` (JSON).

    With ``BNN_RECORD_GOLDEN=1`` the rows are written to ``path`` instead. Every recorded
    column must be present in ``rows`` under its name, or under ``rename[name]`` when the
    metric has been renamed since the recording; ``epoch_offset`` is added to the recorded
    epoch numbers (a loop that counted from 0 and now counts from 1 has offset 1). Numbers
    must agree to ``tolerance`` relative to ``max(1, |recorded|)`` (0: bit-identical).

    The recording names the CPU instruction set torch dispatched to; on another one (where
    the kernels sum in another order), the comparison is skipped with that reason.
    """
    import torch

    path = Path(path)
    capability = torch.backends.cpu.get_cpu_capability()
    if os.environ.get(RECORD_GOLDEN_ENV) == "1":
        record = {"torch": torch.__version__, "cpu_capability": capability, "rows": rows}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        return
    if not path.is_file():
        pytest.fail(f"no golden file {path}; record it with {RECORD_GOLDEN_ENV}=1")
    record = json.loads(path.read_text(encoding="utf-8"))
    if record["cpu_capability"] != capability:
        pytest.skip(
            f"golden run recorded on {record['cpu_capability']} kernels, this CPU uses "
            f"{capability}: the summation order differs"
        )
    rename = dict(rename or {})
    assert len(rows) == len(record["rows"]), f"{len(rows)} rows, golden has {len(record['rows'])}"
    for index, (got, want) in enumerate(zip(rows, record["rows"], strict=True)):
        for key, expected in want.items():
            name = rename.get(key, key)
            assert name in got, f"row {index}: metric {name!r} missing (have {sorted(got)})"
            if key == "epoch":
                expected += epoch_offset
            actual = got[name]
            if isinstance(expected, float) and isinstance(actual, int | float):
                bound = tolerance * max(1.0, abs(expected))
                assert abs(actual - expected) <= bound or (
                    math.isnan(actual) and math.isnan(expected)
                ), f"row {index}, {name}: {actual!r} != golden {expected!r}"
            else:
                assert actual == expected, f"row {index}, {name}: {actual!r} != golden {expected!r}"
