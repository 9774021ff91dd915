"""Run tracking where nothing is lost: one directory per run, written atomically.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.csv`` (one row per
epoch, rewritten after every row) and ``checkpoint.pt`` (model, optimizer, scheduler, RNG
states and extras after the last finished epoch), and at the end ``final.csv`` (the final
metrics given to :meth:`Run.finish`). Every file is written to a temporary file
in the same directory and moved into place with ``os.replace``, so a crash or a kill at
any moment leaves either the old or the new file, never a broken one. ``--resume`` restores
the checkpoint and continues; on CPU the resumed run's ``metrics.csv`` equals, value for
value, the one an uninterrupted run writes.

Typical loop (log, then checkpoint, at the end of each epoch)::

    with Run(args.out_dir, config, resume=args.resume, use_wandb=args.wandb,
             quiet=args.quiet) as run:
        start = run.restore(model, optimizer, scheduler)
        if "loader_rng" in run.extra:
            generator.set_state(run.extra["loader_rng"])
        for epoch in range(start, config["epochs"]):
            for x, y in run.progress(loader, desc=f"epoch {epoch}"):
                ...
            scheduler.step()
            run.log(epoch, train_loss=loss, test_acc=acc)
            run.save_checkpoint(epoch, model, optimizer, scheduler,
                                loader_rng=generator.get_state())
        run.finish(test_acc=acc)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import os
import pickle
import random
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from .errors import BnnError, CheckpointError, MissingDependencyError

__all__ = [
    "atomic_write_text",
    "atomic_save",
    "capture_rng_state",
    "restore_rng_state",
    "MetricsLog",
    "Run",
    "DEFAULT_RESUME_IGNORED_KEYS",
    "config_differences",
]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"
FINAL_FILE = "final.csv"

#: Config keys that may change between a run and its resumption (matched against the full
#: dotted key or its last part, so ``train.epochs`` is covered by ``epochs``).
DEFAULT_RESUME_IGNORED_KEYS = frozenset(
    {"resume", "epochs", "quiet", "wandb", "device", "out_dir", "data_dir", "download"}
)


# ---------------------------------------------------------------------------------------------
# Atomic files
# ---------------------------------------------------------------------------------------------


def _atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``write`` to a temporary file next to ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open rather than mkstemp: mode 0o666 minus the umask, like any file the user writes.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp_name, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace the file ``path`` by ``text`` (UTF-8) atomically: old or new, never half."""
    data = text.encode("utf-8")
    _atomic_write(path, lambda handle: handle.write(data))


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` atomically: temp file, flush, fsync, ``os.replace``."""
    _atomic_write(path, lambda handle: torch.save(obj, handle))


# ---------------------------------------------------------------------------------------------
# Random number generators
# ---------------------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """States of Python's ``random``, NumPy's global RNG, torch CPU and CUDA (when in use).

    The result holds only tensors, lists, tuples and scalars, so that it loads with
    ``torch.load(weights_only=True)``.
    """
    name, key, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": str(name),
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    # An uninitialised CUDA has not drawn numbers; reading it would create a context per GPU.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` returned (CUDA states for present devices)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    key = np.asarray(
        np_state["key"].numpy() if torch.is_tensor(np_state["key"]) else np_state["key"]
    )
    np.random.set_state(
        (
            np_state["bit_generator"],
            key.astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


# ---------------------------------------------------------------------------------------------
# metrics.csv
# ---------------------------------------------------------------------------------------------


_INT_PATTERN = re.compile(r"^[-+]?\d+$")


def _scalar(value: Any) -> Any:
    """A plain Python value for a CSV cell: tensors and NumPy scalars become numbers."""
    if isinstance(value, torch.Tensor | np.ndarray | np.generic):
        return value.item()
    return value


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return str(value)


def _parse_cell(text: str) -> Any:
    if _INT_PATTERN.match(text):
        return int(text)
    if text in ("True", "False"):
        return text == "True"
    if "_" not in text:
        try:
            return float(text)
        except ValueError:
            pass
    return text


class MetricsLog:
    """Rows of metrics kept in memory and rewritten to a CSV file after every change.

    Columns are the union of the rows' keys in first-seen order, ``epoch`` first; a row
    without a column leaves its cell empty. Floats are written with ``repr``, so reading
    the file back with :meth:`load` gives exactly the logged values.

    Args:
        path: the CSV file (usually ``<run dir>/metrics.csv``); written on the first append.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []

    @classmethod
    def load(cls, path: str | Path) -> MetricsLog:
        """Read an existing CSV (ints, floats and booleans are parsed back).

        Raises:
            CheckpointError: the file is not a CSV of this kind (not text, rows longer or
                shorter than the header, an ``epoch`` that is not an integer).
        """
        log = cls(path)
        try:
            with open(log.path, newline="", encoding="utf-8") as handle:
                for record in csv.DictReader(handle):
                    if None in record or None in record.values():
                        raise ValueError("a row does not have the header's columns")
                    row = {k: _parse_cell(v) for k, v in record.items() if v != ""}
                    if "epoch" in row and not isinstance(row["epoch"], int):
                        raise ValueError(f"epoch {row['epoch']!r} is not an integer")
                    log.rows.append(row)
        except (UnicodeDecodeError, csv.Error, ValueError) as exc:
            raise CheckpointError(
                f"{log.path} is not a CSV of metrics ({exc}); restore it, or start the run "
                "again without --resume"
            ) from None
        return log

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        names = list(seen)
        return ["epoch", *(n for n in names if n != "epoch")] if "epoch" in seen else names

    def append(self, row: Mapping[str, Any]) -> None:
        """Add a row and rewrite the file."""
        self.rows.append({str(k): _scalar(v) for k, v in row.items()})
        self.write()

    def update_last(self, row: Mapping[str, Any]) -> None:
        """Add or replace values of the last row and rewrite the file."""
        self.rows[-1].update({str(k): _scalar(v) for k, v in row.items()})
        self.write()

    def truncate(self, after_epoch: int) -> None:
        """Drop the rows logged for epochs after ``after_epoch`` (those past a checkpoint)."""
        kept = [row for row in self.rows if row.get("epoch", -1) <= after_epoch]
        if len(kept) != len(self.rows):
            self.rows = kept
            self.write()

    def write(self) -> None:
        """Rewrite the whole file atomically."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        columns = self.columns
        writer.writerow(columns)
        for row in self.rows:
            writer.writerow([_format_cell(row.get(name)) for name in columns])
        atomic_write_text(self.path, buffer.getvalue())


class _InMemoryLog(MetricsLog):
    """A metrics log that keeps its rows and never writes (non-writing processes)."""

    def write(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Config helpers
# ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Config values as YAML-safe data: dataclasses and mappings become dicts, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor | np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def config_differences(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    ignore: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs, as ``key: (old, new)``.

    A key is skipped when its dotted name or its last part is in ``ignore``. A key that
    ``old`` lacks takes its value from ``defaults`` (the config class's defaults: a key added
    by a later version of the code then matches when it keeps its default); a key present on
    one side only shows ``"<missing>"`` on the other.
    """
    ignore = set(ignore)
    flat_old, flat_new = _flatten(_plain(old)), _flatten(_plain(new))
    for key, value in _flatten(_plain(defaults or {})).items():
        if key in flat_new:
            flat_old.setdefault(key, value)
    missing = "<missing>"
    differences = {}
    for key in [*flat_old, *(k for k in flat_new if k not in flat_old)]:
        if key in ignore or key.rsplit(".", 1)[-1] in ignore:
            continue
        before, after = flat_old.get(key, missing), flat_new.get(key, missing)
        if before != after or isinstance(before, bool) != isinstance(after, bool):
            differences[key] = (before, after)
    return differences


# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------


def _load_payload(path: Path) -> Any:
    """``torch.load`` of a checkpoint on the CPU: plain values first, the full unpickler for
    extras of other types (the file is a run's own); an unreadable file is a CheckpointError."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        reason = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
        raise CheckpointError(
            f"cannot read the checkpoint {path}: it is not a readable checkpoint ({reason})"
        ) from exc


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents, its model state dict under ``"model"`` (a file holding a bare
    state dict is wrapped so), for commands that use a trained run's weights (export, PTQ).

    Raises:
        CheckpointError: no file, an unreadable one, or no model state dict in it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: file not found; train the run first")
    payload = _load_payload(path)
    if isinstance(payload, dict) and "model" not in payload:
        payload = {"model": payload}
    state = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        raise CheckpointError(f"{path} holds no model state dict")
    return payload


class Run:
    """One training run in one directory: config, metrics, checkpoint, progress bars, wandb.

    Call :meth:`log` and then :meth:`save_checkpoint` at the end of every epoch, and
    :meth:`restore` once before the epoch loop: it returns the first epoch to run and puts
    back the model, optimizer, scheduler and RNG states, so that a resumed run continues
    exactly where the checkpoint was taken. Usable as a context manager (leaving it calls
    :meth:`finish` if the block did not, or closes wandb as failed on an exception).

    Args:
        out_dir: the run directory, created if needed. Starting a run without ``resume``
            in a directory that holds one moves the old files to ``previous-<time>/``.
        config: the resolved settings (a dict, a dataclass or an ``argparse.Namespace``),
            written as ``config.yaml``, stored in the checkpoint and sent to wandb.
        resume: continue from ``out_dir/checkpoint.pt``.
        use_wandb: also log to Weights & Biases (the ``wandb`` extra); honours
            ``WANDB_MODE=offline``; its files go to ``out_dir/wandb``.
        quiet: no progress bars, no notes and no summary line.
        project: the wandb project (default ``"bnn"``).
        name: the wandb run name (default: the directory's name).
        wandb_kwargs: further keyword arguments for ``wandb.init``.
        writer: False for the processes of a multi-process run other than rank 0: they read
            the checkpoint on resume but write no file, print nothing and log nowhere.
        ignore_keys: config keys that may change on resume (default
            :data:`DEFAULT_RESUME_IGNORED_KEYS`).
        defaults: the config's default values (same nesting as ``config``); on resume, a
            key the checkpoint's config lacks counts as having its default, so a checkpoint
            written before a setting existed resumes while that setting keeps its default.

    Raises:
        CheckpointError: ``resume`` without a readable checkpoint, or with a config that
            differs from the checkpoint's in keys that are not ignored.
        MissingDependencyError: ``use_wandb`` without wandb installed.
    """

    def __init__(
        self,
        out_dir: str | Path,
        config: Mapping[str, Any] | Any,
        *,
        resume: bool = False,
        use_wandb: bool = False,
        quiet: bool = False,
        project: str = "bnn",
        name: str | None = None,
        wandb_kwargs: Mapping[str, Any] | None = None,
        ignore_keys: Iterable[str] = DEFAULT_RESUME_IGNORED_KEYS,
        defaults: Mapping[str, Any] | None = None,
        writer: bool = True,
    ):
        self.out_dir = Path(out_dir)
        self.writer = writer
        self._defaults = _plain(defaults) if defaults is not None else None
        self.config: dict[str, Any] = _plain(
            vars(config) if isinstance(config, argparse.Namespace) else config
        )
        if not isinstance(self.config, dict):
            raise TypeError(f"config must be a mapping or a dataclass, got {type(config)!r}")
        self.resume = resume
        self.quiet = quiet
        self.config_path = self.out_dir / CONFIG_FILE
        self.metrics_path = self.out_dir / METRICS_FILE
        self.checkpoint_path = self.out_dir / CHECKPOINT_FILE
        self.final_path = self.out_dir / FINAL_FILE
        self.extra: dict[str, Any] = {}  # the extras of the restored checkpoint
        self.start_epoch = 0
        self.wandb_run: Any = None
        self._checkpoint: dict[str, Any] | None = None
        self._last_checkpoint_epoch = -1
        self._summary: str | None = None
        self._started = time.perf_counter()

        if not writer:  # another process of a multi-process run writes the files
            self.quiet = True
            if resume:
                self._checkpoint = self._load_checkpoint()
            self.metrics = _InMemoryLog(self.metrics_path)
            self._wandb_id = None
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._checkpoint = self._load_checkpoint()
            self._check_config(ignore_keys)
            exists = self.metrics_path.is_file()
            self.metrics = (
                MetricsLog.load(self.metrics_path) if exists else MetricsLog(self.metrics_path)
            )
        else:
            self._set_aside_previous_run()
            self.metrics = MetricsLog(self.metrics_path)
        atomic_write_text(self.config_path, yaml.safe_dump(self.config, sort_keys=False))
        self._wandb_id = (self._checkpoint or {}).get("wandb_id")
        if use_wandb:
            self.wandb_run = self._start_wandb(project, name, dict(wandb_kwargs or {}))

    # -- resuming ------------------------------------------------------------------------------

    def _load_checkpoint(self) -> dict[str, Any]:
        path = self.checkpoint_path
        if not path.is_file():
            raise CheckpointError(
                f"cannot resume: there is no checkpoint at {path} (no epoch of this run has "
                "finished, or --out-dir points elsewhere); start the run without --resume"
            )
        payload = _load_payload(path)
        if not isinstance(payload, dict) or not {"epoch", "model", "rng"} <= payload.keys():
            raise CheckpointError(f"{path} is not a checkpoint written by bnn_shared.tracking")
        return payload

    def _check_config(self, ignore_keys: Iterable[str]) -> None:
        stored = self._checkpoint.get("config")
        if stored is None and self.config_path.is_file():
            stored = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        differences = config_differences(stored or {}, self.config, ignore_keys, self._defaults)
        if differences:
            listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differences.items())
            raise CheckpointError(
                f"cannot resume {self.out_dir}: the config differs from the checkpoint's in "
                f"{', '.join(differences)} ({listed}); resume with the same settings, or start "
                "a new run with another --out-dir"
            )

    def _set_aside_previous_run(self) -> None:
        if not (self.metrics_path.exists() or self.checkpoint_path.exists()):
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = self.out_dir / f"previous-{stamp}"
        counter = 1
        while backup.exists():
            backup = self.out_dir / f"previous-{stamp}-{counter}"
            counter += 1
        backup.mkdir()
        for path in (self.config_path, self.metrics_path, self.checkpoint_path, self.final_path):
            if path.exists():
                os.replace(path, backup / path.name)
        self._note(
            f"note: {self.out_dir} held an earlier run; its files were moved to {backup} "
            "(pass --resume to continue a run instead)"
        )

    def restore(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
    ) -> int:
        """Load the checkpoint into the given objects and return the first epoch to run.

        Without ``resume`` this does nothing and returns 0. Otherwise it restores the states,
        the RNGs, drops the metric rows logged after the checkpoint, sets :attr:`extra` to
        the checkpoint's extras and returns the checkpoint's epoch + 1. Call it after
        building the model, optimizer, scheduler and data loaders, right before the loop.

        Raises:
            CheckpointError: a state is missing from the checkpoint or does not fit.
        """
        if self._checkpoint is None:
            self.extra = {}
            return 0
        checkpoint = self._checkpoint
        pairs = (("model", model), ("optimizer", optimizer), ("scheduler", scheduler))
        for what, target in pairs:
            if target is not None:
                self._load_state(what, target, checkpoint.get(what))
        restore_rng_state(checkpoint["rng"])
        self.extra = dict(checkpoint.get("extra") or {})
        epoch = int(checkpoint["epoch"])
        self.metrics.truncate(epoch)
        self._last_checkpoint_epoch = epoch
        self.start_epoch = epoch + 1
        self._note(f"resuming {self.out_dir} at epoch {self.start_epoch}")
        return self.start_epoch

    def _load_state(self, what: str, target: Any, state: Any) -> None:
        if state is None:
            raise CheckpointError(f"{self.checkpoint_path} holds no {what} state to restore")
        try:
            target.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"the {what} does not fit the checkpoint {self.checkpoint_path} ({exc}); "
                "start a new run without --resume or with another --out-dir"
            ) from exc

    # -- during training -----------------------------------------------------------------------

    def log(self, epoch: int, **metrics: Any) -> None:
        """Record the metrics of ``epoch`` in ``metrics.csv`` (and wandb when on).

        A second call for the same epoch as the last row adds its values to that row.
        Tensors and NumPy scalars are stored as Python numbers.
        """
        epoch = int(epoch)
        rows = self.metrics.rows
        if rows and rows[-1].get("epoch") == epoch:
            self.metrics.update_last(metrics)
        else:
            self.metrics.append({"epoch": epoch, **metrics})
        if self.wandb_run is not None:
            self.wandb_run.log({"epoch": epoch, **{k: _scalar(v) for k, v in metrics.items()}})

    def save_checkpoint(
        self,
        epoch: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        **extra: Any,
    ) -> Path:
        """Atomically write ``checkpoint.pt`` for the finished ``epoch``.

        It holds the state dicts, the RNG states (:func:`capture_rng_state`), the config and
        ``extra`` (for instance ``loader_rng=generator.get_state()`` or ``best_acc=0.97``),
        which :meth:`restore` gives back as :attr:`extra`. Plain values (tensors, numbers,
        strings, lists, dicts) keep the file loadable with ``weights_only=True``.
        """
        if not self.writer:
            self._last_checkpoint_epoch = int(epoch)
            return self.checkpoint_path
        payload = {
            "epoch": int(epoch),
            "model": model.state_dict(),
            "optimizer": None if optimizer is None else optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "rng": capture_rng_state(),
            "extra": extra,
            "config": self.config,
            "wandb_id": self.wandb_run.id if self.wandb_run is not None else self._wandb_id,
        }
        atomic_save(payload, self.checkpoint_path)
        self._last_checkpoint_epoch = int(epoch)
        return self.checkpoint_path

    def progress(
        self,
        iterable: Iterable[Any],
        desc: str | None = None,
        total: int | None = None,
        leave: bool = False,
    ) -> Iterable[Any]:
        """A tqdm bar over ``iterable``, off when quiet or when stderr is not a terminal."""
        disable = self.quiet or not _is_terminal(sys.stderr)
        return tqdm(iterable, desc=desc, total=total, leave=leave, disable=disable)

    # -- the end -------------------------------------------------------------------------------

    def finish(self, **final_metrics: Any) -> str:
        """Print (unless quiet) and return the one-line summary, and close wandb.

        Example: ``done: 10 epochs in 12.3s | test_acc 0.9712 | runs/mnist``. Calling it
        again returns the same line without printing. Non-empty ``final_metrics`` are also
        written (atomically) to ``final.csv``: a header row and one row of values, so that a
        quiet run keeps its final test figures.
        """
        if self._summary is not None:
            return self._summary
        if final_metrics and self.writer:
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(final_metrics)
            writer.writerow(_format_cell(_scalar(v)) for v in final_metrics.values())
            atomic_write_text(self.final_path, text.getvalue())
        logged = [row["epoch"] for row in self.metrics.rows if isinstance(row.get("epoch"), int)]
        # distinct epochs logged (whether counted from 0 or from 1), else the checkpoint's
        epochs = len(set(logged)) if logged else self._last_checkpoint_epoch + 1
        head = f"done: {epochs} epoch{'' if epochs == 1 else 's'}"
        head += f" in {time.perf_counter() - self._started:.1f}s"
        if self.start_epoch:
            head += f" (resumed at epoch {self.start_epoch})"
        values = [f"{key} {_format_metric(_scalar(v))}" for key, v in final_metrics.items()]
        self._summary = " | ".join([head, *values, str(self.out_dir)])
        self._close_wandb({k: _scalar(v) for k, v in final_metrics.items()}, exit_code=0)
        if not self.quiet:  # after wandb's own closing lines, so that it reads last
            print(self._summary, flush=True)
        return self._summary

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._close_wandb({}, exit_code=1)

    # -- helpers -------------------------------------------------------------------------------

    def _note(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def _start_wandb(self, project: str, name: str | None, kwargs: dict[str, Any]) -> Any:
        try:
            import wandb
        except ImportError as exc:
            raise MissingDependencyError(
                "--wandb (use_wandb=True) needs the optional wandb package: "
                "pip install 'bnn-shared[wandb]', or run without --wandb"
            ) from exc
        options: dict[str, Any] = {
            "project": project,
            "name": name or self.out_dir.resolve().name,
            "config": self.config,
            "dir": str(self.out_dir),
        }
        if self._wandb_id:
            options.update(id=self._wandb_id, resume="allow")
        if self.quiet:
            options["settings"] = {"silent": True}
        options.update(kwargs)
        try:
            run = wandb.init(**options)
        except Exception as exc:
            raise BnnError(
                f"wandb could not start ({exc}); run `wandb login`, set WANDB_MODE=offline, "
                "or run without --wandb"
            ) from exc
        run.define_metric("epoch")
        run.define_metric("*", step_metric="epoch")
        return run

    def _close_wandb(self, summary: Mapping[str, Any], exit_code: int) -> None:
        run, self.wandb_run = self.wandb_run, None
        if run is None:
            return
        if summary:
            run.summary.update(dict(summary))
        run.finish(exit_code=exit_code)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _format_metric(value: Any) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.4g}"
    return str(value)
