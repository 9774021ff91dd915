"""Binary Equilibrium Propagation (Laydevant, Ernoult, Querlioz, Grollier, CVPRW 2021).

Dynamical networks with binary weights (and optionally binary activations) trained by
Equilibrium Propagation and a flip optimizer; fully connected and convolutional.
Command line: ``python -m eqprop_binary.main`` (the reference's flags); figures:
``python -m eqprop_binary.plot RUN_DIR...``.
"""

from .network import (
    NetworkConvBinW,
    NetworkConvBinWN,
    NetworkFcBinW,
    NetworkFcBinWN,
    build_network,
)
from .settings import Settings

__all__ = [
    "NetworkConvBinW",
    "NetworkConvBinWN",
    "NetworkFcBinW",
    "NetworkFcBinWN",
    "Settings",
    "build_network",
]
__version__ = "0.1.0"
