"""Write study B's 102 per-run configurations (spec 3.7 and A.7) from a table of its grid.

One YAML file per per-run configuration of the reference's ``configs/`` folders (which carry a
wrong ``.csv`` extension, quirk 14), under ``configs/binary_feedback/study_b/<set>/``:

==============  =====  ============================================================
set             files  content
==============  =====  ============================================================
bp_dfa_drtp     36     3 models x {bp, dfa, drtp} x 4 binarisations (ImageNette)
HSIC            3      hsic, fully binary, gamma 20
HSIC_sigpropTL  24     3 models x {hsic, pepita} x 4 binarisations
sigpropTL       3      pepita, fully binary (disagrees with HSIC_sigpropTL, quirk 15)
Dogs            18     3 models x {bp, dfa, drtp} x {continuous, fully binary}
Indoor          18     the same on MIT Indoor-67
==============  =====  ============================================================

File names and keys are the reference's (``model=<M>_method=<m>_binary-act=<B>_binary-
weights=<B>``; keys ``binary-act``, ``binary-weights``, ``lr``, ``method``, ``model``, plus
``hsic-gamma`` or ``pepita-gain``); Dogs and Indoor files add ``dataset`` (the reference
passed ``--dogs`` / ``--indoor`` as extra arguments). The sweeps' other settings are extra
arguments, as in the reference::

    python -m binary_feedback.train --config FILE --augment --epochs 80 --bs 64 --wd 1e-5 \\
        --test-set                                 # ImageNette sets (the published protocol)
    python -m binary_feedback.train --config FILE --bs 128          # Dogs, Indoor

Usage: ``python scripts/make_binary_feedback_configs.py`` writes the files;
``--check`` exits 1 if a committed file differs from the table (or is missing or extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "configs" / "binary_feedback" / "study_b"

MODELS = ("MLPMixer", "MobileNetV2", "vgg19")
#: The four binarisations, in the spec's table order: (binary-act, binary-weights).
FOUR = (("cont", False, False), ("binW", False, True), ("binA", True, False), ("bin", True, True))
TWO = (FOUR[0], FOUR[3])

# lr per model and method, in FOUR's order (spec 3.7, configs/bp_dfa_drtp)
BP_DFA_DRTP = {
    "MLPMixer": {"bp": "1e-4 1e-3 1e-3 1e-4", "dfa": "1e-4 1e-3 1e-3 1e-4", "drtp": "1e-3 " * 4},
    "MobileNetV2": {"bp": "1e-3 1e-3 1e-4 1e-4", "dfa": "1e-3 " * 4, "drtp": "1e-3 " * 4},
    "vgg19": {
        "bp": "1e-4 1e-5 1e-5 1e-3",
        "dfa": "1e-5 1e-5 1e-4 1e-5",
        "drtp": "1e-4 1e-5 1e-4 1e-4",
    },
}
HSIC_GAMMA = 20.0  # selected for every config
HSIC_FULL = {"MLPMixer": "1e-4", "MobileNetV2": "1e-4", "vgg19": "1e-5"}  # configs/HSIC
HSIC_FOUR = {
    "MLPMixer": "1e-3 1e-5 1e-5 1e-4",
    "MobileNetV2": "1e-4 " * 4,
    "vgg19": "1e-5 1e-4 1e-5 1e-5",
}
# pepita (lr, gain) in FOUR's order (configs/HSIC_sigpropTL) and fully binary (configs/sigpropTL)
PEPITA_FOUR = {
    "MLPMixer": "1e-5/0.1 1e-3/0.01 1e-4/0.1 1e-3/0.1",
    "MobileNetV2": "1e-5/1 1e-4/0.01 1e-5/0.01 1e-5/0.1",
    "vgg19": "1e-5/0.1 1e-5/0.1 1e-3/0.01 1e-3/0.1",
}
PEPITA_FULL = {"MLPMixer": "1e-3/0.1", "MobileNetV2": "1e-3/0.01", "vgg19": "1e-4/0.01"}
# Dogs and Indoor lr per model and method: fully continuous / fully binary
DOGS = {
    "MLPMixer": {"bp": "1e-4 1e-4", "dfa": "1e-3 1e-3", "drtp": "1e-4 1e-4"},
    "MobileNetV2": {"bp": "1e-3 1e-4", "dfa": "1e-3 1e-3", "drtp": "1e-4 1e-3"},
    "vgg19": {"bp": "1e-4 1e-5", "dfa": "1e-4 1e-4", "drtp": "1e-4 1e-4"},
}
INDOOR = {
    "MLPMixer": {"bp": "1e-4 1e-3", "dfa": "1e-4 1e-4", "drtp": "1e-5 1e-4"},
    "MobileNetV2": {"bp": "1e-3 1e-4", "dfa": "1e-3 1e-3", "drtp": "1e-4 1e-4"},
    "vgg19": {"bp": "1e-4 1e-5", "dfa": "1e-4 1e-5", "drtp": "1e-4 1e-4"},
}
IMAGENETTE_ARGS = "--augment --epochs 80 --bs 64 --wd 1e-5 --test-set"
DOGS_INDOOR_ARGS = "--bs 128"


def _yaml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # "1.0e-05": YAML 1.1 readers take "1e-05" for a string
        return f"{value:.1e}" if "e" in repr(value) else repr(value)
    return str(value)


def _file(model: str, method: str, act: bool, weights: bool, lr: str, **extra: object):
    """(file name, text) of one configuration."""
    name = f"model={model}_method={method}_binary-act={act}_binary-weights={weights}.yaml"
    keys = {"binary-act": act, "binary-weights": weights, "lr": float(lr), "method": method}
    keys["model"] = model
    keys.update(extra)
    return name, keys


def table() -> dict[str, dict[str, object]]:
    """Every configuration, as ``{"<set>/<file name>": keys}``."""
    files: dict[str, dict[str, object]] = {}

    def add(folder: str, entry: tuple[str, dict[str, object]]) -> None:
        files[f"{folder}/{entry[0]}"] = entry[1]

    for model in MODELS:
        for method, lrs in BP_DFA_DRTP[model].items():
            for (_, act, weights), lr in zip(FOUR, lrs.split(), strict=True):
                add("bp_dfa_drtp", _file(model, method, act, weights, lr))
        add(
            "HSIC", _file(model, "hsic", True, True, HSIC_FULL[model], **{"hsic-gamma": HSIC_GAMMA})
        )
        for (_, act, weights), lr in zip(FOUR, HSIC_FOUR[model].split(), strict=True):
            add(
                "HSIC_sigpropTL",
                _file(model, "hsic", act, weights, lr, **{"hsic-gamma": HSIC_GAMMA}),
            )
        for (_, act, weights), pair in zip(FOUR, PEPITA_FOUR[model].split(), strict=True):
            lr, gain = pair.split("/")
            add(
                "HSIC_sigpropTL",
                _file(model, "pepita", act, weights, lr, **{"pepita-gain": float(gain)}),
            )
        lr, gain = PEPITA_FULL[model].split("/")
        add("sigpropTL", _file(model, "pepita", True, True, lr, **{"pepita-gain": float(gain)}))
        for folder, grid, dataset in (("Dogs", DOGS, "dogs"), ("Indoor", INDOOR, "indoor")):
            for method, lrs in grid[model].items():
                for (_, act, weights), lr in zip(TWO, lrs.split(), strict=True):
                    add(folder, _file(model, method, act, weights, lr, dataset=dataset))
    return files


def render(keys: dict[str, object], folder: str) -> str:
    """A file's text: a comment with the sweep's extra arguments, then the keys."""
    args = DOGS_INDOOR_ARGS if folder in ("Dogs", "Indoor") else IMAGENETTE_ARGS
    lines = [
        f"# study B, configs/{folder} (generated by scripts/make_binary_feedback_configs.py)",
        f"# python -m binary_feedback.train --config THIS_FILE {args}",
    ]
    lines += [f"{key}: {_yaml(value)}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


def texts() -> dict[Path, str]:
    """Every file's path (under :data:`OUT`) and text."""
    return {OUT / rel: render(keys, rel.split("/")[0]) for rel, keys in table().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    wanted = texts()
    if args.check:
        present = set(OUT.rglob("*.yaml"))
        bad = sorted(str(p) for p in present ^ set(wanted))
        bad += sorted(str(p) for p in wanted if p.exists() and p.read_text() != wanted[p])
        for path in bad:
            print(f"differs: {path}", file=sys.stderr)
        return 1 if bad else 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(wanted)} files under {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
