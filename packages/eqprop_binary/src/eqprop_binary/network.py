"""The four networks of binary Equilibrium Propagation, by architecture and binary setting.

``build_network(cfg, input_shape)`` picks the class registered under
``<archi>_<binary_settings>`` in :data:`NETWORKS` (``fc_bin_W``, ``fc_bin_W_N``,
``conv_bin_W``, ``conv_bin_W_N``; the reference's class names are aliases). The networks
themselves live in :mod:`.fc` and :mod:`.conv`, what they share in :mod:`.dynamics`, the
activations in :mod:`.activations`; this module exports all of them, as the reference's
``network.py`` did.
"""

from __future__ import annotations

from bnn_shared.registry import Registry

from .activations import ACTIVATIONS
from .conv import ConvNetwork, NetworkConvBinW, NetworkConvBinWN
from .dynamics import Context, EPNetwork, State
from .fc import FCNetwork, NetworkFcBinW, NetworkFcBinWN
from .settings import Settings

__all__ = [
    "ACTIVATIONS",
    "NETWORKS",
    "State",
    "Context",
    "EPNetwork",
    "NetworkFcBinW",
    "NetworkFcBinWN",
    "NetworkConvBinW",
    "NetworkConvBinWN",
    "build_network",
]

#: ``<archi>_<binary_settings>`` -> network class (aliases: the reference's class names)
NETWORKS: Registry[type[FCNetwork] | type[ConvNetwork]] = Registry("network")
NETWORKS.register("fc_bin_W", NetworkFcBinW, aliases=("Network_fc_bin_W",))
NETWORKS.register("fc_bin_W_N", NetworkFcBinWN, aliases=("Network_fc_bin_W_N",))
NETWORKS.register("conv_bin_W", NetworkConvBinW, aliases=("Network_conv_bin_W",))
NETWORKS.register("conv_bin_W_N", NetworkConvBinWN, aliases=("Network_conv_bin_W_N",))

# the reference's class names
Network_fc_bin_W = NetworkFcBinW
Network_fc_bin_W_N = NetworkFcBinWN
Network_conv_bin_W = NetworkConvBinW
Network_conv_bin_W_N = NetworkConvBinWN


def build_network(cfg: Settings, input_shape: tuple[int, ...]) -> EPNetwork:
    """The network for ``cfg`` and one input of shape ``input_shape``
    (``(features,)`` or ``(channels, height, width)``; fc nets flatten it).

    Raises:
        ShapeError: the input does not fit ``--layersList`` (fc) or ``--convList`` (conv),
            or the images are too small for the conv layers.
    """
    cls = NETWORKS.get(f"{cfg.archi}_{cfg.binary_settings}")
    return cls.from_input(cfg, tuple(input_shape))
