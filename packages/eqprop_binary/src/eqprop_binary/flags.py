"""The reference's command-line flags, and the :class:`~eqprop_binary.settings.Settings`
they give.

:func:`build_parser` has every flag of the reference ``main.py`` (names, aliases such as
``-convList``, defaults, list orders), this implementation's options, ``--config FILE`` (a
YAML file whose keys are the flag names) and the core's run flags (``--out-dir``,
``--resume``, ``--set KEY=VALUE``, ...). :func:`settings_from_args` fills one validated
:class:`Settings` from the file, the flags typed and the ``--set`` overrides.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

from bnn_shared.cli import add_common_arguments
from bnn_shared.config import apply_overrides, from_dict, load_yaml

from .settings import Settings

__all__ = ["build_parser", "settings_from_args"]

DEFAULTS = Settings()


class _Given(argparse.Action):
    """Store the value and remember that the flag was typed (it then overrides --config)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = [*getattr(namespace, "given", []), self.dest]


def _float(text: str) -> float:
    """A float; ``8e-8--conv_threshold`` (a README typo) gets a pointed message."""
    try:
        return float(text)
    except ValueError:
        head, sep, tail = text.partition("--")
        if sep and tail:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number: a space is missing before '--{tail}'"
            ) from None
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def build_parser() -> argparse.ArgumentParser:
    """The reference's flags, this implementation's options and the core's run flags."""
    parser = argparse.ArgumentParser(
        prog="python -m eqprop_binary.main",
        description="Binary Equilibrium Propagation (Laydevant et al., CVPRW 2021).",
    )
    _add_reference_flags(parser)
    _add_implementation_flags(parser.add_argument_group("options of this implementation"))
    add_common_arguments(parser, out_dir="runs/eqprop_binary")
    return parser


def _add_reference_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of the reference ``main.py``: names, aliases, defaults, meaning, order."""
    add = functools.partial(parser.add_argument, action=_Given)
    _add_network_flags(add)
    _add_learning_flags(add)


def _add_network_flags(add: Callable[..., Any]) -> None:
    """The device, the architecture and the dynamics."""
    d = DEFAULTS
    add("--device", default=d.device, help="-1: CPU, N: cuda:N; also cpu, cuda, auto")
    add("--archi", default=d.archi, help="fc or conv (default: %(default)s)")
    add(
        "--layersList",
        "--layerList",
        nargs="+",
        type=int,
        default=d.layersList,
        help="fc layer sizes, input first (conv: the classifier layers)",
    )
    add(
        "--convList",
        "-convList",
        nargs="+",
        type=int,
        default=d.convList,
        help="conv channels, top conv layer first, input channels last",
    )
    add("--padding", type=int, default=d.padding, metavar="P", help="convolution padding")
    add("--kernelSize", type=int, default=d.kernelSize, metavar="KSize", help="kernel size")
    add("--Fpool", type=int, default=d.Fpool, metavar="Fp", help="pooling size and stride")
    add("--optim", default=d.optim, help="ep or bptt (default: %(default)s)")
    add("--activationFun", default=d.activationFun, help="hardsigm or heaviside")
    add("--T", type=int, default=d.T, metavar="T", help="free-phase steps")
    add("--Kmax", type=int, default=d.Kmax, metavar="Kmax", help="nudged-phase steps")
    add("--gamma_neur", type=_float, default=d.gamma_neur, help="leaky-integrator rate")
    add("--beta", type=_float, default=d.beta, help="nudging strength")
    add("--random_beta", type=int, default=d.random_beta, help="1: random sign per batch")
    add("--binary_settings", default=d.binary_settings, help="bin_W or bin_W_N")


def _add_learning_flags(add: Callable[..., Any]) -> None:
    """The flip optimizer, the readout, the data, biases, scaling factors and epochs."""
    d = DEFAULTS
    for name, text in (
        ("gamma", "fc momentum rates, output layer first"),
        ("classi_gamma", "classifier momentum rates (conv)"),
        ("conv_gamma", "conv momentum rates, top conv first"),
        ("gradThreshold", "fc flip thresholds, output layer first"),
        ("classi_threshold", "classifier flip thresholds (conv)"),
        ("conv_threshold", "conv flip thresholds, top conv first"),
    ):
        add(f"--{name}", nargs="+", type=_float, default=getattr(d, name), help=text)
    add("--rho_threshold", type=_float, default=d.rho_threshold, help="theta of H(s - theta)")
    add("--expand_output", type=int, default=d.expand_output, help="output neurons per class")
    add("--dataset", default=d.dataset, help="mnist, cifar10, digits, fashion_mnist")
    add(
        "--lrBias",
        nargs="+",
        type=_float,
        default=d.lrBias,
        help="bias learning rates (fc output first; conv nets: classifier, then conv top first)",
    )
    add("--batchSize", type=int, default=d.batchSize, help="training batch size")
    add("--test_batchSize", type=int, default=d.test_batchSize, help="test batch size")
    add("--epochs", type=int, default=d.epochs, metavar="N", help="training epochs")
    add("--learnAlpha", type=int, default=d.learnAlpha, help="1: learn the scaling factors")
    add(
        "--lrAlpha",
        nargs="+",
        type=_float,
        default=d.lrAlpha,
        help="scaling-factor learning rates (same layout as --lrBias)",
    )
    add(
        "--decayLrAlpha",
        type=_float,
        default=d.decayLrAlpha,
        help="divide the --lrAlpha rates by this ...",
    )
    add(
        "--epochDecayLrAlpha",
        type=int,
        default=d.epochDecayLrAlpha,
        help="... from this epoch on (1-based)",
    )


def _add_implementation_flags(group: Any) -> None:
    d = DEFAULTS
    group.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file of settings (keys: the flag names); flags typed override it",
    )
    group.add_argument(
        "--nudge",
        action=_Given,
        default=d.nudge,
        choices=["current", "free"],
        help="output nudge beta*(y - s_out) with the current output (default) or with the "
        "free-phase output held fixed, as the reference code does for bin_W_N networks",
    )
    group.add_argument(
        "--clamp_output",
        action=_Given,
        type=int,
        default=d.clamp_output,
        help="conv bin_W: 1 clamps the nudged output to [0, 1] (the reference does not)",
    )
    group.add_argument(
        "--flip_rule",
        action=_Given,
        default=d.flip_rule,
        choices=["auto", ">", ">="],
        help="flip test; auto: '>' for fc and '>=' for conv nets, as in the reference",
    )
    group.add_argument(
        "--seed",
        action=_Given,
        type=int,
        default=d.seed,
        help="seed of the weights, data order and beta signs (default: %(default)s)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The validated :class:`Settings` of parsed flags: the ``--config`` file's values, then
    the flags typed (without ``--config``: every flag, defaults included), then ``--set``.

    Raises:
        ConfigError: one line naming the flag (or key) and what is wrong.
    """
    path = getattr(args, "config", None)
    data = load_yaml(path) if path else {}
    typed = getattr(args, "given", []) if path else Settings.model_fields
    data.update({key: getattr(args, key) for key in typed if key in Settings.model_fields})
    overrides = list(getattr(args, "overrides", None) or [])
    source = str(path) if path else "the command line"
    if path and (len(typed) or overrides):
        source += " (with command-line values)"
    return from_dict(Settings, apply_overrides(data, overrides), source=source)
