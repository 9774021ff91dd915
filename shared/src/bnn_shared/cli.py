"""Command-line helpers shared by every package's entry points.

:func:`add_common_arguments` adds the flags every training script understands (data,
run tracking, seed and device); :func:`run_cli` runs a ``main(argv)`` so that a user's
mistake prints one ``error: ...`` line instead of a traceback. An entry point reads::

    def main(argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(description="Train ...")
        parser.add_argument("--epochs", type=int, default=10)
        add_common_arguments(parser, seed=1)
        args = parser.parse_args(argv)
        ...
        return 0

    if __name__ == "__main__":
        raise SystemExit(run_cli(main))
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .errors import BnnError
from .utils import keep_freed_memory

__all__ = ["add_common_arguments", "one_line", "run_cli", "run_settings", "INTERRUPTED_EXIT_CODE"]

#: Exit status after Ctrl-C, as a shell reports for SIGINT (128 + 2).
INTERRUPTED_EXIT_CODE = 130


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    seed: int = 0,
    out_dir: str = "runs",
    data_dir: str | None = None,
    data: bool = True,
    tracking: bool = True,
    runtime: bool = True,
    overrides: bool = True,
) -> argparse.ArgumentParser:
    """Add the shared flags to ``parser``, each in a titled group, and return the parser.

    A flag the parser already has (a package's own ``--seed``, say) is left alone, so call
    this after adding the package's flags.

    Args:
        parser: the parser to extend.
        seed: default of ``--seed``.
        out_dir: default of ``--out-dir``.
        data_dir: default of ``--data-dir`` (None: the dataset module's own default).
        data: add ``--data-dir`` and ``--download``.
        tracking: add ``--out-dir``, ``--resume``, ``--wandb`` and ``--quiet``.
        runtime: add ``--seed`` and ``--device``.
        overrides: add ``--set KEY=VALUE ...`` (config overrides, collected in ``overrides``).
    """
    if data:
        group = parser.add_argument_group("data")
        _add(group, "--data-dir", default=data_dir, metavar="DIR", help="where datasets live")
        _add(group, "--download", action="store_true", help="download missing datasets")
    if tracking:
        group = parser.add_argument_group("run tracking")
        _add(
            group,
            "--out-dir",
            default=out_dir,
            metavar="DIR",
            help="run directory: config.yaml, metrics.csv, checkpoint.pt (default: %(default)s)",
        )
        _add(
            group,
            "--resume",
            action="store_true",
            help="continue the run in --out-dir from its last checkpoint",
        )
        _add(group, "--wandb", action="store_true", help="also log to Weights & Biases")
        _add(group, "--quiet", action="store_true", help="no progress bars or summary line")
    if overrides:
        group = parser.add_argument_group("configuration")
        _add(
            group,
            "--set",
            dest="overrides",
            nargs="+",
            action="extend",
            default=[],
            metavar="KEY=VALUE",
            help="override config keys (dotted for nested ones), e.g. --set lr=1e-3 epochs=2",
        )
    if runtime:
        group = parser.add_argument_group("runtime")
        _add(group, "--seed", type=int, default=seed, help="random seed (default: %(default)s)")
        _add(
            group,
            "--device",
            default="auto",
            help="auto, cpu, cuda, cuda:N, or N (-1: CPU) (default: %(default)s)",
        )
    return parser


def run_settings(args: argparse.Namespace, **changes: Any):
    """The :class:`~bnn_shared.runner.RunSettings` of parsed common flags (``changes`` win)."""
    from .runner import RunSettings

    names = RunSettings.model_fields
    values = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return RunSettings(**{**values, **changes})


def one_line(message: str) -> str:
    """``message`` on one line: torch's multi-line texts joined, runs of blanks shortened."""
    lines = [" ".join(line.split()) for line in str(message).splitlines()]
    return " | ".join(line for line in lines if line) or "unknown error"


def _raised_in_torch(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is inside the torch package."""
    traceback = err.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    if traceback is None:
        return False
    return f"{os.sep}torch{os.sep}" in traceback.tb_frame.f_code.co_filename


def _add(group: Any, flag: str, **kwargs: Any) -> None:
    """Add ``flag`` unless the parser already defines it."""
    with contextlib.suppress(argparse.ArgumentError):
        group.add_argument(flag, **kwargs)


def run_cli(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)`` and turn its outcome into an exit status.

    * a :class:`~bnn_shared.errors.BnnError`: prints ``error: <message>`` on stderr on one
      line, no traceback, and returns its ``exit_code`` (2);
    * a ``RuntimeError`` raised inside torch (a shape that does not fit, say): its multi-line
      text on one ``error:`` line, exit code 2 (``BNN_TRACEBACK=1`` shows the traceback);
    * Ctrl-C: says that the last checkpoint is kept and ``--resume`` continues, returns 130;
    * otherwise returns ``main``'s integer result, or 0 when it returns something else.

    Before ``main`` it calls :func:`~bnn_shared.utils.keep_freed_memory`, so that CPU
    training loops do not page-fault their freed tensors back at every step.

    Use as ``raise SystemExit(run_cli(main))``.
    """
    keep_freed_memory()
    try:
        result = main(argv)
    except BnnError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr, flush=True)
        return err.exit_code
    except RuntimeError as err:
        if not _raised_in_torch(err) or os.environ.get("BNN_TRACEBACK") == "1":
            raise
        print(f"error: {one_line(str(err))}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the last checkpoint is kept; run the same command with --resume "
            "to continue",
            file=sys.stderr,
            flush=True,
        )
        return INTERRUPTED_EXIT_CODE
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
