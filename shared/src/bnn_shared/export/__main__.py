"""``python -m bnn_shared.export RUN_DIR``: write a trained run's model as a packed file.

``python -m bnn_shared.export FILE.bnn`` checks a packed file instead: it rebuilds the model
with :func:`bnn_shared.export.load` and prints what the file holds (package, model class,
parameters, packed sizes, and the summary when the package's export module has
``summary_inputs(model_class, config)``, the summary's arguments for a rebuilt model).

Reads ``RUN_DIR/config.yaml`` and ``RUN_DIR/checkpoint.pt`` (or ``--checkpoint``), asks the
package that trained the run (``run.package`` in the config, or ``--package``) to rebuild the
model with the trained weights (its ``bnn_shared.models`` entry point's ``from_run``), writes
the packed file (default ``RUN_DIR/model.bnn``), prints the bit-aware summary and the file
size against the summary's memory figure, and writes the summary next to the file
(``model.summary.txt``). ``--verify`` reloads the file with :func:`bnn_shared.export.load` and
counts the test inputs on which the reloaded model predicts the same class as the trained one
(exit code 1 if any differs). Bad input (not a run directory, a checkpoint that is not one, a
package that is not installed) is one ``error:`` line with exit code 2 and nothing written.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import export
from ..cli import run_cli
from ..errors import ConfigError
from ..summary import summary
from ..tracking import read_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bnn_shared.export",
        description="Write a trained run's model as a bit-packed file and print its summary.",
    )
    parser.add_argument(
        "run_dir",
        type=Path,
        help="a run directory (config.yaml, checkpoint.pt) to export, or a packed file to check",
    )
    parser.add_argument("--out", type=Path, help="the packed file (default RUN_DIR/model.bnn)")
    parser.add_argument("--checkpoint", type=Path, help="weights to export (default: the run's)")
    parser.add_argument("--package", help="the package that trained the run (default: recorded)")
    parser.add_argument("--data-dir", help="where the run's dataset lies (for --verify)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="reload the file and compare its predictions with the trained model's on the test set",
    )
    return parser


def read_run(run_dir: Path, checkpoint: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's config (plain dict) and its checkpoint's model state dict."""
    config_path = run_dir / "config.yaml"
    if not run_dir.is_dir() or not config_path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml in it)")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path} is not YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path} does not hold a mapping of settings")
    return config, read_checkpoint(checkpoint or run_dir / "checkpoint.pt")["model"]


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_file():
        raise ConfigError(f"--out {out} is not a file")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {out}: {parent} is not a writable directory")


def verify(api: Any, run: Any, reloaded: torch.nn.Module, data_dir: str | None) -> tuple[int, int]:
    """(agreeing, total) predictions of the trained and the reloaded model on the test set."""
    predict = getattr(api, "predict", None) or (lambda model, x: model(x).argmax(-1))
    agree = total = 0
    run.model.eval()
    with torch.no_grad():
        for batch in api.test_inputs(run, data_dir):
            a, b = predict(run.model, batch), predict(reloaded, batch)
            agree += int((a == b).sum())
            total += int(a.numel())
    return agree, total


def inspect(path: Path) -> int:
    """Rebuild a packed file's model and print what it holds (writes nothing)."""
    model = export.load(path)
    header = export.read_header(path)
    sizes = export.packed_nbytes(
        torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    )
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{path}: {header['package']} {header['model_class']}, {params} parameters; "
        f"{sizes['tensors']} packed tensors in {sizes['packed_bytes']} bytes (their float32 "
        f"size {sizes['float32_bytes']} bytes); file {path.stat().st_size} bytes"
    )
    api = export.package_api(header["package"], path)
    kwargs = getattr(api, "summary_inputs", None)
    if kwargs is not None:
        print(
            summary(model, **kwargs(header["model_class"], header["config"] or {}), print_fn=None)
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.run_dir.is_file():
        return inspect(args.run_dir)
    config, state = read_run(args.run_dir, args.checkpoint)
    package = args.package or (config.get("run") or {}).get("package")
    if package is None:
        raise ConfigError(
            f"{args.run_dir}/config.yaml does not record the package that trained it; give "
            f"--package (one of {', '.join(sorted(export.model_packages())) or 'none'})"
        )
    api = export.package_api(package, args.run_dir)
    out = args.out or args.run_dir / "model.bnn"
    _check_out(out)
    run = api.from_run(config, state)
    result = summary(run.model, **run.summary_kwargs, print_fn=None)
    export.save_binary(
        run.model, out, package=package, model_class=run.model_class, config=run.config
    )
    size = out.stat().st_size
    lines = [
        str(result),
        f"packed file: {out} ({size} bytes); summary memory {result.memory_bytes:.0f} bytes; "
        f"file / summary = {size / result.memory_bytes:.3f}; float32 "
        f"{result.float32_bytes:.0f} bytes ({result.float32_bytes / size:.1f}x the file)",
    ]
    text = "\n".join(lines)
    print(text)
    out.with_suffix(".summary.txt").write_text(text + "\n", encoding="utf-8")
    if args.verify:
        agree, total = verify(api, run, export.load(out), args.data_dir)
        print(f"reloaded model: the same class on {agree} of {total} test inputs")
        return 0 if agree == total else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
