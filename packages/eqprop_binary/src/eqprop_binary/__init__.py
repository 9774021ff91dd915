"""Binary Equilibrium Propagation (Laydevant, Ernoult, Querlioz, Grollier, CVPRW 2021).

Dynamical networks with binary weights (and optionally binary activations) trained by
Equilibrium Propagation and a flip optimizer; fully connected and convolutional.
Command line: ``python -m eqprop_binary.main`` (the reference's flags); figures:
``python -m eqprop_binary.plot RUN_DIR...``. In Python::

    from eqprop_binary import build_parser, settings_from_args, train

    cfg = settings_from_args(build_parser().parse_args(["--dataset", "digits", ...]))
    final = train(cfg, out_dir="runs/eqprop_binary")
"""

from .activations import ACTIVATIONS, Activation
from .dynamics import EPNetwork, State
from .experiment import EqPropExperiment, train
from .flags import build_parser, settings_from_args
from .network import (
    NETWORKS,
    NetworkConvBinW,
    NetworkConvBinWN,
    NetworkFcBinW,
    NetworkFcBinWN,
    build_network,
)
from .settings import Settings
from .tools import METHODS, bptt_step, ep_step, one_hot

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "EPNetwork",
    "EqPropExperiment",
    "METHODS",
    "NETWORKS",
    "NetworkConvBinW",
    "NetworkConvBinWN",
    "NetworkFcBinW",
    "NetworkFcBinWN",
    "Settings",
    "State",
    "bptt_step",
    "build_network",
    "build_parser",
    "ep_step",
    "one_hot",
    "settings_from_args",
    "train",
]
__version__ = "0.1.0"
