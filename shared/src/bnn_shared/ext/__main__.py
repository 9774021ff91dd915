"""``python -m bnn_shared.ext``: build the compiled kernels if needed and print their status.

Its arguments are parsed like every other command's (``--help``; an unknown flag is one
``error:`` line and exit code 2). Exit code 0 when the C++ kernels are available, 1 when
only the pure-PyTorch references are.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from ..cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m bnn_shared.ext",
        description="Build the compiled kernels (C++, and CUDA when a GPU is present) if "
        "needed and print what is available. BNN_SHARED_EXT=0 turns them off.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    from . import status

    start = time.perf_counter()
    report = status()
    for key, value in report.items():
        print(f"{key:>9}: {value}")
    from .bitops import cpu_path

    print(f"{'bitops':>9}: {cpu_path()}")
    print(f"{'seconds':>9}: {time.perf_counter() - start:.1f}")
    return 0 if report["cpp"] else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
