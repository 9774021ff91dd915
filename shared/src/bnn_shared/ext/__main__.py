"""``python -m bnn_shared.ext``: build the compiled kernels if needed and print their status."""

from __future__ import annotations

import time

from . import status


def main() -> int:
    start = time.perf_counter()
    report = status()
    for key, value in report.items():
        print(f"{key:>9}: {value}")
    print(f"{'seconds':>9}: {time.perf_counter() - start:.1f}")
    return 0 if report["cpp"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
