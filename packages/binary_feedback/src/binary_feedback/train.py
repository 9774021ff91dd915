"""``python -m binary_feedback.train``: both studies' command lines in one.

Study A (ACM SAC 2023, binary MLPs) and study B (arXiv 2408.04460, the extension) each keep
their flags; the family of flags used selects the study's regime (``--study A|B``, or a
``study`` key in the ``--config`` file, forces one): any of ``--model --binary-act
--binary-weights --unsat --remove-skips --wd --opt --augment --bs --test-set --hsic-gamma
--hsic-mode --bw-init --no-wandb ...`` (:data:`STUDY_B_FLAGS`), or a ``model`` key in the
config file, means study B, otherwise study A. Study A: MSE on a tanh output against +-1
targets, batch-summed gradients, plain SGD, U(-1, 1) feedback, raw one-hot DRTP targets,
every Linear clipped to ``--weight-clipping`` when given, inputs scaled to [-1, 1]. Study B:
cross-entropy, Adam (``--opt``) with weight decay, N(0, 1) feedback, centred one-hot, first
and last layers full precision, binarised layers clipped to [-1, 1], early stopping.

The flags, then a ``--config`` YAML file (keys are flag names, dashes or underscores) under
them, then ``--set KEY=VALUE`` over both fill the study's schema
(:class:`~binary_feedback.config.StudyAConfig` or
:class:`~binary_feedback.config.StudyBConfig`); a flag of the other study is an error.
This module only parses; :func:`binary_feedback.experiment.train_model` trains.

Examples::

    python -m binary_feedback.train --method drtp                       # study A, MNIST
    python -m binary_feedback.train --dataset digits --method DFA --bn --binarize \\
        --hidden-act signsat --init 1e-3 --lr 1e-4 --epochs 20
    python -m binary_feedback.train --method dfa --model SmallCNN --dataset mnist \\
        --binary-act --binary-weights --lr 1e-3 --bs 64 --epochs 2
    python -m binary_feedback.train --config configs/binary_feedback/mnist_bn_binary_tanh_dfa.yaml

Every run writes ``config.yaml``, ``metrics.csv`` (per epoch: train and test loss, accuracy,
macro F1, macro precision), ``confusion.csv`` and ``checkpoint.pt`` (``--resume``) under
``--out-dir``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bnn_shared.cli import add_common_arguments, run_cli, run_settings
from bnn_shared.config import apply_overrides, from_dict, load_yaml
from bnn_shared.errors import ConfigError
from bnn_shared.runner import RunSettings

from .config import DATASETS, STUDIES, STUDY_A_METHODS, StudyAConfig, StudyBConfig, StudyConfig
from .experiment import DEFAULT_OUT_DIR, build, train_model
from .training import RULES

__all__ = [
    "STUDY_B_FLAGS",
    "build",
    "build_parser",
    "config_from_mapping",
    "main",
    "parse",
    "resolve",
]


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _own_keys(schema: type[StudyConfig]) -> list[str]:
    return [key for key in schema.model_fields if key not in StudyConfig.model_fields]


#: Flags that exist only in study B's command line; using one selects study B.
STUDY_B_FLAGS = [_flag(key) for key in _own_keys(StudyBConfig)]
#: The study-specific keys of each study.
_STUDY_KEYS = {"A": set(_own_keys(StudyAConfig)), "B": set(_own_keys(StudyBConfig))}
#: Keys a --config file may hold that are run settings rather than config keys.
_RUN_KEYS = frozenset(RunSettings.model_fields)
#: The runner's record in a run's config.yaml; left out when that file is passed to --config.
_RUN_RECORD = "run"


class _OneLineParser(argparse.ArgumentParser):
    """A flag argparse refuses (a value of the wrong type, a choice it does not know, an
    unknown flag) is one ``error:`` line with exit code 2, as the schema's errors are."""

    def error(self, message: str):
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """Both studies' flags; a flag not given is absent from the parsed namespace, so that
    a config file's values and the schema's defaults fill the rest."""
    parser = _OneLineParser(
        prog="python -m binary_feedback.train",
        description="Train binary networks by BP, DFA, DRTP, HSIC or SigpropTL "
        "(both studies' flags; the flags used select the study).",
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument
    add("--config", help="YAML file whose keys are flag names (dashes or underscores)")
    add("--study", choices=["auto", "A", "B"], help="regime (default: auto, by the flags used)")
    add(
        "-m",
        "--method",
        help="GD|BP|DFA|DRTP (study A, any case, default GD), bp|dfa|drtp|hsic|pepita|sigprop "
        "(B, bp)",
    )
    add(
        "-d",
        "--dataset",
        help="MNIST (default), fashion_mnist, cifar (cifar10, cifar-10), imagenette, digits",
    )
    add("-e", "--epochs", type=int, help="epochs (study A 5, study B 80)")
    add("--lr", type=float, help="learning rate (study A 1e-3, study B 1e-3)")
    _add_study_a_flags(parser)
    _add_study_b_flags(parser)
    _add_study_b_method_flags(parser)
    _add_dataset_switches(parser)
    add_common_arguments(parser, out_dir=DEFAULT_OUT_DIR, seed=None)
    return parser


def _add_study_a_flags(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument_group("study A (binary MLPs, SAC 2023)")
    a.add_argument("--bn", action="store_true", help="batch norm after each hidden Linear")
    a.add_argument("--sn", action="store_true", help="Scaler after each hidden Linear: x / fan-in")
    a.add_argument("--init", type=float, help="weights U(-init, init) (default 0.1)")
    a.add_argument("--hidden-act", help="tanh (default), sign, signsat, signtanh, id (any case)")
    a.add_argument("--last-act", help="output activation (default tanh)")
    a.add_argument(
        "-b", "--batchsize", "--batch-size", dest="batch_size", type=int,
        help="batch size (default 128)",
    )  # fmt: skip
    a.add_argument("--hidden", help="hidden sizes, comma-separated (default 700,500)")
    a.add_argument("--binarize", action="store_true", help="binary weights but the last layer")
    a.add_argument(
        "--binarize_last", "--binarize-last", dest="binarize_last", action="store_true",
        help="binary output weights (identity STE; works without --binarize)",
    )  # fmt: skip
    a.add_argument("--weight-ste", choices=["identity", "sat", "tanh"])
    a.add_argument(
        "--weight-clipping", type=float, help="clip |W| to this (default: none; <= 0: none)"
    )
    a.add_argument(
        "-v", "--verbose", action="count",
        help="-v: a line per epoch, -vv: also a line per batch",
    )  # fmt: skip
    a.add_argument(
        "--monitor",
        action="store_true",
        help="log saturation and normalised HSIC per layer at each epoch end (2,000 samples)",
    )
    a.add_argument(
        "--run-name",
        help="run name; auto: '<METHOD> <binarised|continuous> <hidden act>' (W&B name)",
    )
    a.add_argument(
        "--dtype", choices=["float32", "float64"],
        help="parameters and inputs (default float32; the study's NumPy code is float64)",
    )  # fmt: skip
    a.add_argument(
        "--wandb-project",
        help="W&B project (default '<dataset as typed, lower-cased> custom', as the study)",
    )
    a.add_argument(
        "--no-batch-stats", dest="batch_stats", action="store_false",
        help="skip the per-batch statistics (batches.csv; about 15 %% of a CPU step)",
    )  # fmt: skip


def _add_study_b_flags(parser: argparse.ArgumentParser) -> None:
    b = parser.add_argument_group("study B (extension, arXiv 2408.04460)")
    b.add_argument(
        "--model",
        help="MobileNetV2 (default), vgg16, vgg19, MLPMixer, FullyConnected (alias MLP), "
        "SmallCNN; with --reconstruction vgg11, vgg13, vgg16, vgg19",
    )
    b.add_argument("--binary-act", action="store_true", help="sign activations")
    b.add_argument("--binary-weights", action="store_true", help="sign weights")
    b.add_argument("--unsat", action="store_true", help="identity STE instead of saturated")
    b.add_argument("--remove-skips", action="store_true", help="drop skip connections")
    b.add_argument("--wd", type=float, help="weight decay (L2 in the gradient; default 0)")
    b.add_argument("--opt", help="any torch.optim class name (default Adam)")
    b.add_argument("--augment", action="store_true", help="training augmentation")
    b.add_argument("--bs", type=int, help="batch size (default 10)")
    b.add_argument("--test-set", action="store_true", help="train on all, select on test")
    b.add_argument("--train-fraction", type=float, help="train share (no --test-set; 0.9)")
    b.add_argument("--early-stopping-delta", type=float, help="default 1e-3")
    b.add_argument("--hsic-gamma", type=float, help="default 2")
    b.add_argument("--hsic-mode", choices=["biased", "plausible"])
    b.add_argument("--bw-init", help="normal (default), kaiming_uniform, kaiming_normal")
    b.add_argument("--pepita-gain", type=float, help="SigpropTL gain (see README; default 1)")
    b.add_argument(
        "--pepita-gain-mode",
        choices=["reference", "fixed"],
        help="reference (default): the gain has no effect (published runs); fixed: F is "
        "scaled by it",
    )
    b.add_argument(
        "--image-size",
        type=int,
        help="resize inputs (default: 224 for torchvision "
        "models and MLPMixer, native for MLP and SmallCNN)",
    )
    b.add_argument("--no-wandb", action="store_true", help="no W&B logging (the default here)")
    b.add_argument("--mlp-mixer-layers", type=int, help="MLPMixer depth (default 12)")
    b.add_argument("--mlp-mixer-dim", type=int, help="MLPMixer width, even (default 512)")
    b.add_argument(
        "--fc-batchnorm", action="store_true", help="FullyConnected: BatchNorm1d per layer"
    )
    b.add_argument(
        "--reconstruction",
        action="store_true",
        help="train a VGG autoencoder (--model vgg11|vgg13|vgg16|vgg19; --method bp|dfa) on MSE",
    )
    b.add_argument(
        "--reconstruction-target",
        choices=["image", "normalized"],
        help="image (default): the [0, 1] image; normalized: the normalised input (reference)",
    )
    b.add_argument("--num-workers", type=int, help="data-loader workers (default 4; stored)")
    b.add_argument("--save", action="store_true", help="write model.bnn at the end of the run")
    b.add_argument(
        "--autosave", action="store_true", help="write model.bnn after every epoch (and --save)"
    )
    b.add_argument("--tags", nargs="+", help="W&B run tags (stored in config.yaml)")


#: Study B's dataset switches, first = highest precedence (``--mnist`` > ``--fashion-mnist``
#: > ``--cifar10`` > ``--dogs`` > ``--indoor``; none: the default, ImageNette).
DATASET_SWITCHES = {
    "--mnist": "mnist",
    "--fashion-mnist": "fashion_mnist",
    "--cifar10": "cifar10",
    "--dogs": "stanford_dogs",
    "--indoor": "mit_indoor",
}


class _SwitchedDataset(str):
    """The parsed ``dataset`` once a switch was typed: the chosen name, with the switches
    and the ``--dataset`` value seen so far (to check that they agree)."""

    switches: tuple[str, ...] = ()
    explicit: str | None = None

    @classmethod
    def of(cls, switches: tuple[str, ...], explicit: str | None) -> _SwitchedDataset:
        chosen = DATASET_SWITCHES[min(switches, key=list(DATASET_SWITCHES).index)]
        if explicit is not None and DATASETS.get(explicit) != chosen:
            flags = " ".join(sorted(set(switches), key=list(DATASET_SWITCHES).index))
            raise ConfigError(
                f"--dataset {explicit} and {flags} name different datasets; give one of them"
            )
        value = cls(chosen)
        value.switches, value.explicit = switches, explicit
        return value


class _DatasetSwitch(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        current = getattr(namespace, "dataset", None)
        switches = (*getattr(current, "switches", ()), option_string)
        explicit = getattr(current, "explicit", None) if current is not None else None
        if current is not None and not isinstance(current, _SwitchedDataset):
            explicit = current  # --dataset came first
        namespace.dataset = _SwitchedDataset.of(switches, explicit)


class _DatasetFlag(argparse._StoreAction):
    """``--dataset`` after a switch: checked against it."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        current = getattr(namespace, "dataset", None)
        if isinstance(current, _SwitchedDataset):
            values = _SwitchedDataset.of(current.switches, values)
        namespace.dataset = values


def _add_study_b_method_flags(parser: argparse.ArgumentParser) -> None:
    m = parser.add_argument_group("study B's extra training rules, Biprop and Bi-Real")
    m.add_argument("--mut-prob", type=float, help="ls: flip probability per entry (0.1)")
    m.add_argument("--ls-accuracy", action="store_true", help="ls: fitness is the accuracy")
    m.add_argument("--spsa-c", type=float, help="spsa, spsah, spsag: perturbation size (1e-3)")
    m.add_argument("--spsa-g-pert", choices=["drtp", "hebbian"], help="spsag direction (drtp)")
    m.add_argument(
        "--biprop",
        nargs="?",
        const=0.2,
        type=float,
        metavar="P",
        help="Biprop: random weights, learned top-P mask (P: share kept; 0.2 if no value)",
    )
    m.add_argument(
        "--bireal-act", action="store_true", help="Bi-Real activations (not with --binary-act)"
    )
    m.add_argument("--slow-drtp", action="store_true", help="with --method drtp: the hook variant")


def _add_dataset_switches(parser: argparse.ArgumentParser) -> None:
    """Study B's ``--mnist --fashion-mnist --cifar10 --dogs --indoor`` (they set ``dataset``;
    with a ``--dataset`` naming another dataset: an error) and ``--val-train-transforms``."""
    b = parser.add_argument_group("study B datasets (default ImageNette)")
    for flag, name in DATASET_SWITCHES.items():
        b.add_argument(flag, action=_DatasetSwitch, dest="dataset", help=f"--dataset {name}")
    for action in parser._actions:
        if action.dest == "dataset" and type(action) is argparse._StoreAction:
            action.__class__ = _DatasetFlag
    b.add_argument(
        "--val-train-transforms",
        action="store_true",
        help="the validation split gets the training flip/augmentation, drawn once (the "
        "reference; default: the test transform)",
    )


STUDY_B_FLAGS.extend(DATASET_SWITCHES)  # a switch selects study B like the other flags


def parse(argv: Sequence[str] | None = None) -> tuple[StudyConfig, RunSettings]:
    """The validated config of the study the flags select, and the run settings."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    path = getattr(args, "config", None)
    file = _read_config_file(path) if path else {}
    run_keys = {key: file.pop(key) for key in list(file) if key in _RUN_KEYS}
    if run_keys:  # a config file's run settings are defaults under the flags
        parser.set_defaults(**run_keys)
        args = parser.parse_args(argv)
    flags = {
        key: value
        for key, value in vars(args).items()
        if key not in _RUN_KEYS and key not in ("config", "overrides", "seed")
    }
    if args.seed is not None:
        flags["seed"] = args.seed
    study = _select_study(flags, file, argv)
    source = str(path) if path else "the command line"
    if path and (flags or args.overrides):
        source += " (with command-line values)"
    file = _without_other_study_defaults(file, study)
    data = apply_overrides({**file, **flags, "study": study}, args.overrides)
    _check_study_keys(data, study, source)
    config = from_dict(STUDIES.get(study), data, source=source)
    settings = run_settings(args)
    if settings.wandb and getattr(config, "no_wandb", False):
        raise ConfigError("--wandb and --no-wandb contradict each other")
    return config, settings


def resolve(argv: Sequence[str] | None = None) -> StudyConfig:
    """The validated config of ``argv`` (the study's schema; see :func:`parse`)."""
    return parse(argv)[0]


def _read_config_file(path: str) -> dict[str, Any]:
    """A ``--config`` file's keys as schema keys (``--hidden-act`` -> ``hidden_act``)."""
    return _schema_keys(load_yaml(path))


def _schema_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    data = {str(key).lstrip("-").replace("-", "_"): value for key, value in mapping.items()}
    data.pop(_RUN_RECORD, None)
    return data


def config_from_mapping(mapping: Mapping[str, Any], source: str = "config.yaml") -> StudyConfig:
    """The validated study config of a run's ``config.yaml`` (already parsed), as
    ``--config`` would read it without flags: run settings and the runner's ``run`` record are
    left out, the study is chosen as :func:`parse` does (its ``study`` key, else a ``model``
    key means B), keys of the other study that hold its defaults are ignored.

    Raises:
        ConfigError: a value the schema rejects or a key of the other study (naming ``source``).
    """
    file = {key: value for key, value in _schema_keys(mapping).items() if key not in _RUN_KEYS}
    study = _select_study({}, file, [])
    data = {**_without_other_study_defaults(file, study), "study": study}
    _check_study_keys(data, study, source)
    return from_dict(STUDIES.get(study), data, source=source)


def _select_study(flags: dict[str, Any], file: dict[str, Any], argv: list[str]) -> str:
    """``--study``, else the file's ``study``, else auto: B when a study-B flag was typed, a
    model is named or the method is study B's own (hsic, sigprop, ls, spsa...), A otherwise."""
    study = str(flags.get("study", file.get("study", "auto")))
    if study.lower() != "auto":
        return study.upper()
    used_b = any(arg.split("=")[0] in STUDY_B_FLAGS for arg in argv)
    method = flags.get("method", file.get("method"))
    method_b = (
        method is not None
        and str(method) in RULES
        and (RULES.canonical(str(method)) not in STUDY_A_METHODS)
    )
    return "B" if used_b or method_b or flags.get("model", file.get("model")) is not None else "A"


def _without_other_study_defaults(file: dict[str, Any], study: str) -> dict[str, Any]:
    """A config file's keys of the other study that hold that study's default (or nothing)
    are left out: they carry no setting (a ``config.yaml`` written before each study had its
    own schema lists every flag of both). Any other value of the other study stays, and is
    an error."""
    other = {"A": "B", "B": "A"}.get(study)
    if other is None:
        return file
    fields = STUDIES.get(other).model_fields
    return {
        key: value
        for key, value in file.items()
        if not (
            key in _STUDY_KEYS[other]
            and (value is None or value == fields[key].default or value in _EARLIER.get(key, ()))
        )
    }


#: Defaults of the other study's keys in records written before they changed (left out too):
#: study B's model was MLP before it became the study code's MobileNetV2.
_EARLIER: dict[str, tuple[Any, ...]] = {"model": ("MLP",)}


def _check_study_keys(data: dict[str, Any], study: str, source: str) -> None:
    """A key of the other study is an error (it would have no effect)."""
    if study not in _STUDY_KEYS:
        STUDIES.canonical(study)  # the one message for an unknown study
    other = "B" if study == "A" else "A"
    stray = sorted(key for key in data if key in _STUDY_KEYS[other])
    if stray:
        flags = ", ".join(_flag(key) for key in stray)
        raise ConfigError(
            f"{source}: {flags} belong{'s' if len(stray) == 1 else ''} to study {other}, but "
            f"this run is study {study}; drop {'it' if len(stray) == 1 else 'them'} or choose "
            f"--study {other}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    config, settings = parse(argv)
    train_model(config, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
