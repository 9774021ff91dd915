"""Do BP, DFA, DRTP, HSIC and SigpropTL rank on fully binary MobileNetV2, VGG-19 and
MLP-Mixer as study B reports? Runs the study's fully binary per-run configs on a setting a
CPU can run and writes one CSV row per run next to the study's ImageNette figure.

Each run is ``python -m binary_feedback.train --config <the study's config>`` (the learning
rate, HSIC's gamma and SigpropTL's gain of ``configs/binary_feedback/study_b``) with the
study's sweep arguments (``--wd 1e-5 --bs 64 --test-set``), on ``--dataset`` (default digits)
resized to ``--image-size`` (default 32), for ``--epochs`` epochs. The score is the best-epoch
test accuracy, as in the study's tables (best and last train accuracy are kept too, to tell
a rule that does not learn from one that does not generalise). Each invocation adds or
replaces its runs' rows in ``--out`` (default
``experiments_results/binary_feedback/order_<dataset><size>/results.csv``), so models can be
run with different epoch budgets; an existing run directory is resumed to ``--epochs``::

    python scripts/binary_feedback_order.py [--epochs 10] [--seed 1] [--models vgg19 ...]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from bnn_shared.testing import metric_rows

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "binary_feedback" / "study_b"
MODELS = ["MobileNetV2", "vgg19", "MLPMixer"]
METHODS = ["bp", "dfa", "drtp", "hsic", "pepita"]
#: The config set of each method's fully binary runs (spec 3.7).
CONFIG_SET = {
    "bp": "bp_dfa_drtp",
    "dfa": "bp_dfa_drtp",
    "drtp": "bp_dfa_drtp",
    "hsic": "HSIC",
    "pepita": "sigpropTL",
}
#: Study B's best-epoch ImageNette test accuracy, %, mean of about 5 seeds (spec 3.8), by
#: ``--binary`` (fully binary: the table's setting); HSIC and SigpropTL ran fully binary only.
STUDY = {
    "full": {
        "MLPMixer": {"bp": 40.5, "dfa": 37.2, "drtp": 37.4, "hsic": 25.0, "pepita": 20.9},
        "MobileNetV2": {"bp": 57.5, "dfa": 45.7, "drtp": 31.4, "hsic": 25.9, "pepita": 12.0},
        "vgg19": {"bp": 21.2, "dfa": 52.0, "drtp": 41.2, "hsic": 28.0, "pepita": 14.1},
    },
    "weights": {
        "MLPMixer": {"bp": 61.7, "dfa": 36.6, "drtp": 26.0},
        "MobileNetV2": {"bp": 80.4, "dfa": 52.9, "drtp": 29.6},
        "vgg19": {"bp": 23.6, "dfa": 67.2, "drtp": 41.9},
    },
    "act": {
        "MLPMixer": {"bp": 65.7, "dfa": 47.5, "drtp": 36.9},
        "MobileNetV2": {"bp": 64.4, "dfa": 53.7, "drtp": 39.5},
        "vgg19": {"bp": 65.6, "dfa": 61.8, "drtp": 48.8},
    },
    "none": {
        "MLPMixer": {"bp": 73.9, "dfa": 46.4, "drtp": 24.0},
        "MobileNetV2": {"bp": 87.9, "dfa": 62.4, "drtp": 38.8},
        "vgg19": {"bp": 89.1, "dfa": 69.0, "drtp": 43.2},
    },
}


#: ``--binary``: which parts are binary (``full``: the table's setting; the others are the
#: study's other configs, for diagnosis; HSIC and SigpropTL have them in ``HSIC_sigpropTL``).
BINARY = {
    "full": (True, True),
    "weights": (False, True),
    "act": (True, False),
    "none": (False, False),
}


def config_file(model: str, method: str, binary: str = "full") -> Path:
    act, weights = BINARY[binary]
    name = f"model={model}_method={method}_binary-act={act}_binary-weights={weights}.yaml"
    folder = CONFIG_SET[method] if binary == "full" else "HSIC_sigpropTL"
    if binary != "full" and method in ("bp", "dfa", "drtp"):
        folder = "bp_dfa_drtp"
    return CONFIGS / folder / name


def run(model: str, method: str, args: argparse.Namespace, out_dir: Path) -> dict:
    command = [sys.executable, "-m", "binary_feedback.train", "--config"]
    command += [str(config_file(model, method, args.binary)), "--dataset", args.dataset]
    command += ["--image-size", str(args.image_size), "--epochs", str(args.epochs)]
    command += ["--wd", "1e-5", "--bs", "64", "--test-set", "--seed", str(args.seed)]
    command += ["--device", "cpu", "--quiet", "--out-dir", str(out_dir)]
    if args.no_early_stopping:  # the loss can never fall by less than this
        command.append("--early-stopping-delta=-1e30")
    if (out_dir / "metrics.csv").is_file():
        command.append("--resume")
    subprocess.run(command, check=True)
    rows = metric_rows(out_dir / "metrics.csv")
    accuracies = [float(row["test/accuracy"]) for row in rows]
    train = [float(row["train/accuracy"]) for row in rows]
    return {
        "model": model,
        "method": "sigprop" if method == "pepita" else method,
        "binary": args.binary,
        "early_stopping": not args.no_early_stopping,
        "dataset": args.dataset,
        "image_size": args.image_size,
        "epochs": len(rows),
        "seed": args.seed,
        "best_test_accuracy": round(100 * max(accuracies), 2),
        "last_test_accuracy": round(100 * accuracies[-1], 2),
        "best_train_accuracy": round(100 * max(train), 2),
        "last_train_accuracy": round(100 * train[-1], 2),
        "study_imagenette_accuracy": STUDY[args.binary][model].get(method, ""),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument(
        "--binary", default="full", choices=list(BINARY), help="binary parts (full: the table)"
    )
    parser.add_argument(
        "--no-early-stopping",
        action="store_true",
        help="train every epoch (the study stops once the loss stalls for 4 evaluations)",
    )
    parser.add_argument("--runs", default="runs/binary_feedback_order", help="run directories")
    parser.add_argument("--out", help="results CSV")
    args = parser.parse_args(argv)
    name = f"order_{args.dataset}{args.image_size}"
    if args.binary != "full":
        name += f"_binary_{args.binary}"
    if args.no_early_stopping:
        name += "_all_epochs"
    out = Path(args.out or ROOT / "experiments_results" / "binary_feedback" / name / "results.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = read_rows(out)  # runs of earlier invocations (other models, epochs) are kept
    for model in args.models:
        for method in args.methods:
            run_dir = Path(args.runs) / name / f"{model}_{method}_seed{args.seed}"
            row = run(model, method, args, run_dir)
            print(row, flush=True)
            rows = [r for r in rows if key(r) != key(row)] + [row]
            rows.sort(key=lambda r: (MODELS.index(r["model"]), SIGNAL_ORDER.index(r["method"])))
            write_rows(out, rows)  # after every run: nothing is lost
    print(f"written {out}")
    return 0


SIGNAL_ORDER = ["bp", "dfa", "drtp", "hsic", "sigprop"]


def key(row: dict) -> tuple[str, str, str]:
    return row["model"], row["method"], str(row["seed"])


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(field for row in rows for field in row))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
