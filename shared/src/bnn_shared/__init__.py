"""bnn_shared: the core every paper package of this project stands on.

Modules (one noun each, imported on first use so that ``import bnn_shared`` is cheap and
never needs a compiler or a GPU):

* :mod:`~bnn_shared.quantizers`: quantizers with pseudo-gradients, by name;
* :mod:`~bnn_shared.layers`: ``QuantLinear`` / ``QuantConv2d`` over latent float weights;
* :mod:`~bnn_shared.summary`: bit-aware model summary;
* :mod:`~bnn_shared.export`: bit-packed save and load of quantized weights;
* :mod:`~bnn_shared.data`: dataset registry (``load_dataset``);
* :mod:`~bnn_shared.tracking`: run directories, atomic metrics and checkpoints, resume;
* :mod:`~bnn_shared.config`: pydantic schemas of every package's settings;
* :mod:`~bnn_shared.registry`: the one name-to-implementation table type;
* :mod:`~bnn_shared.runner`: the one training loop (:func:`~bnn_shared.runner.fit`), with
  :mod:`~bnn_shared.context` (what the hooks get) and :mod:`~bnn_shared.distributed`
  (torchrun);
* :mod:`~bnn_shared.cli`: common command-line flags and clean error exits;
* :mod:`~bnn_shared.ext`: loader of the compiled kernels (C++ and CUDA) with fallbacks;
* :mod:`~bnn_shared.utils`: seeding and device parsing;
* :mod:`~bnn_shared.demo`: the offline demo behind ``hatch run demo``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import BnnError

__version__ = "0.1.0"

_SUBMODULES = (
    "cli",
    "config",
    "context",
    "data",
    "demo",
    "distributed",
    "errors",
    "export",
    "ext",
    "layers",
    "quantizers",
    "registry",
    "runner",
    "summary",
    "tracking",
    "utils",
)
# Names re-exported at the top level, by the module that defines them.
_EXPORTS = {
    "load_dataset": "data",
    "save_binary": "export",
    "load_binary": "export",
    "binary_state_dict": "export",
    "QuantLinear": "layers",
    "QuantConv2d": "layers",
    "seed_everything": "utils",
    "parse_device": "utils",
}

__all__ = ["BnnError", "__version__", *_SUBMODULES, *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'bnn_shared' has no attribute {name!r}")
