"""Helpers for the test suites of the core and of every package."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CPU_AND_CUDA",
    "RECORD_GOLDEN_ENV",
    "assert_bad_input",
    "assert_close_rows",
    "assert_out_dir_refused",
    "assert_rejected",
    "check_golden",
    "invalid_configs",
    "metric_rows",
    "relative_difference",
    "schema_fields",
    "single_thread",
    "skip_cuda_without_gpu",
    "torchrun",
    "tree_state",
    "write_mnist_files",
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


# ---------------------------------------------------------------------------------------------
# Property-based tests of configuration schemas
# ---------------------------------------------------------------------------------------------


def schema_fields(schema: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted field name -> pydantic ``FieldInfo`` of a schema, nested models flattened."""
    from pydantic import BaseModel

    fields: dict[str, Any] = {}
    for name, info in schema.model_fields.items():
        tp = info.annotation
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields.update(schema_fields(tp, f"{prefix}{name}."))
        else:
            fields[f"{prefix}{name}"] = info
    return fields


def invalid_configs(
    schema: Any, base: Mapping[str, Any] | None = None, *, exclude: Iterable[str] = ()
):
    """A Hypothesis strategy of ``(data, key)``: ``base`` (default: the schema's defaults as
    plain data) with one thing made wrong at ``key``: an unknown key, a value of the wrong
    type, or a number outside the field's bounds (``gt``, ``ge``). ``exclude`` names fields
    whose validators legitimately convert other types (a device number to its text, say)."""
    import annotated_types
    from hypothesis import strategies as st

    from .config import to_dict

    plain = to_dict(base if base is not None else schema())
    fields = schema_fields(schema)
    names = sorted(set(fields) - set(exclude))

    def with_value(key: str, value: Any) -> tuple[dict[str, Any], str]:
        data = _deep_copy(plain)
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        return data, key

    def wrong_type(key: str):
        kinds = _kinds(fields[key].annotation)
        values = []
        if not kinds & {"int", "float"}:
            values.append(st.integers(-5, 5))
        if "str" not in kinds:
            values.append(st.text(min_size=1, max_size=5).filter(lambda t: not t.isdigit()))
        if not kinds & {"list", "tuple"}:
            values.append(st.lists(st.integers(), min_size=1, max_size=2))
        if kinds & {"int", "float"} and "bool" not in kinds:
            values.append(st.booleans())
        return st.one_of(values).map(lambda v: with_value(key, v))

    def out_of_bounds(key: str):
        bounds = []
        for item in fields[key].metadata:
            if isinstance(item, annotated_types.Gt):
                bounds.append(st.floats(-1e6, item.gt).map(lambda v, k=key: _as_kind(v, fields[k])))
            if isinstance(item, annotated_types.Ge):
                upper = item.ge - (1 if _kinds(fields[key].annotation) == {"int"} else 1e-9)
                bounds.append(st.floats(-1e6, upper).map(lambda v, k=key: _as_kind(v, fields[k])))
        return [b.map(lambda v, k=key: with_value(k, v)) for b in bounds]

    unknown = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12).filter(
        lambda text: text not in schema.model_fields
    )
    strategies = [unknown.map(lambda k: with_value(k, 1))]
    strategies += [wrong_type(name) for name in names if _kinds(fields[name].annotation)]
    strategies += [b for name in names for b in out_of_bounds(name)]
    return st.one_of(strategies)


def assert_rejected(schema: Any, data: Mapping[str, Any], key: str) -> None:
    """``from_dict(schema, data)`` raises one :class:`ConfigError` line naming ``key``."""
    from .config import from_dict
    from .errors import ConfigError

    with pytest.raises(ConfigError) as info:
        from_dict(schema, data, source="config.yaml")
    message = str(info.value)
    assert "\n" not in message, message
    assert key.rsplit(".", 1)[-1] in message, (key, message)


def _kinds(tp: Any) -> set[str]:
    """The plain kinds a field takes: int, float, bool, str, list, tuple (empty: anything)."""
    import types
    import typing

    origin = typing.get_origin(tp)
    if tp is Any or origin is typing.Literal:
        return set()
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            inner = _kinds(arg)
            if not inner:
                return set()
            kinds |= inner
        return kinds
    if origin in (list, tuple) or tp in (list, tuple):
        return {origin.__name__ if origin else tp.__name__}
    if tp in (int, float, bool, str):
        return {tp.__name__}
    return set()


def _as_kind(value: float, info: Any) -> Any:
    return int(math.floor(value)) if _kinds(info.annotation) == {"int"} else value


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


# ---------------------------------------------------------------------------------------------
# Bad input and multi-process runs of a package's command line
# ---------------------------------------------------------------------------------------------


def tree_state(root: str | Path) -> list[tuple[str, int, int]]:
    """Every path under ``root`` with its size and modification time, to compare before and
    after a command (a command refused for bad input must not create or change a file)."""
    root = Path(root)
    return sorted(
        (str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
    )


def assert_bad_input(main: Any, argv: list[str], root: str | Path, *needles: str) -> str:
    """Run ``run_cli(main, argv)`` and check the contract for bad input: exit code 2, one
    ``error:`` line on stderr naming each of ``needles``, no traceback, and no file created
    or changed under ``root``. Returns the error line."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from .cli import run_cli

    before = tree_state(root)
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        code = run_cli(main, argv)
    text = err.getvalue()
    lines = [line for line in text.splitlines() if not line.startswith("warning:")]
    assert code == 2, f"exit code {code}, stderr: {text!r}"
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert tree_state(root) == before, "a refused command created or changed files"
    return lines[0]


def write_mnist_files(root: str | Path, train: tuple[int, int], test: tuple[int, int]) -> Path:
    """Raw MNIST files of zeros under ``root/MNIST/raw``, with ``(images, labels)`` counts per
    split (different counts make a broken download); returns ``root``."""
    import struct

    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        header = struct.pack(">IIII", 2051, images, 28, 28)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + bytes(images * 784))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, labels) + bytes(labels)
        )
    return Path(root)


def assert_out_dir_refused(main: Any, argv: list[str], root: str | Path) -> None:
    """``--out-dir`` that is a file, and one under a file: each refused by
    :func:`assert_bad_input` with a line naming ``--out-dir``."""
    blocker = Path(root) / "taken"
    blocker.write_text("not a directory")
    for out_dir in (blocker, blocker / "run"):
        assert_bad_input(main, [*argv, "--out-dir", str(out_dir)], root, "--out-dir")


def torchrun(
    args: list[str], *, nproc: int = 2, env: Mapping[str, str] | None = None, timeout: float = 600
):
    """``torchrun --standalone --nproc-per-node NPROC ARGS`` (e.g. ``["-m", "dwn.train", ...]``)
    in a subprocess on the CPU, one thread per process; returns the CompletedProcess."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env)


def assert_close_rows(
    rows: list[dict[str, Any]], expected: list[dict[str, Any]], *, loss: float, other: float
) -> None:
    """Metric rows equal key by key: numbers within ``loss`` for keys naming a loss, within
    ``other`` for the rest; other values equal."""
    assert len(rows) == len(expected), (len(rows), len(expected))
    for index, (got, want) in enumerate(zip(rows, expected, strict=True)):
        assert set(got) == set(want), (index, set(got) ^ set(want))
        for key, value in want.items():
            if isinstance(value, float) or isinstance(got[key], float):
                bound = loss if "loss" in key.lower() else other
                assert abs(got[key] - value) <= bound, (index, key, got[key], value)
            else:
                assert got[key] == value, (index, key, got[key], value)
