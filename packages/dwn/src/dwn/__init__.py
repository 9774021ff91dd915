"""dwn: Differentiable Weightless Neural Networks (Bacellar et al., ICML 2024).

Networks of n-input lookup tables trained end to end with the Extended Finite Difference
(EFD) gradient, API-compatible with torch-dwn (``import dwn`` in place of
``import torch_dwn as dwn``), on CPU and GPU, with a bit-exact export:

* :mod:`~dwn.binarization`: ``Thermometer``, ``GaussianThermometer``,
  ``DistributiveThermometer`` input encoders;
* :mod:`~dwn.lut_layer`: ``LUTLayer`` and ``EFDFunction`` (backends "torch", "cpp", "cuda");
* :mod:`~dwn.mapping`: ``layer_mapping`` (random/arange wiring) and ``LearnableMapping``;
* :mod:`~dwn.utils`: ``GroupSum``, ``STE`` (torch-dwn's name for the core's
  ``quantizers.SteHeaviside(clip_value=None)``);
* :mod:`~dwn.export` / :mod:`~dwn.compiled`: ``export(model, encoder, path)`` and
  ``load_compiled(path)``, an integer-and-bits-only runner with identical predictions;
* :mod:`~dwn.exporting`: the ``bnn_shared.models`` entry point, so that
  ``python -m bnn_shared.export RUN_DIR`` ships the thermometer and the LUT network as the
  core's bit-packed file (1-bit tables, ``ceil(log2(I))``-bit wiring) and
  ``bnn_shared.export.load`` rebuilds it;
* :mod:`~dwn.config`, :mod:`~dwn.datasets`, :mod:`~dwn.experiment`: ``TrainConfig``, the
  ``jsc`` dataset (registered with the core), ``DWNExperiment`` and ``train_model(cfg, ...)``,
  trained by the core runner; :mod:`~dwn.train` is the command line
  ``python -m dwn.train --config configs/dwn/mnist.yaml``.
"""

from .binarization import ENCODERS, DistributiveThermometer, GaussianThermometer, Thermometer
from .compiled import CompiledDWN
from .config import TrainConfig
from .datasets import load_arrays
from .experiment import DWNExperiment, build_model, evaluate_model, make_encoder, train_model
from .export import compile_model, export, load_compiled, save_compiled
from .lut_layer import EFDFunction, LUTLayer
from .mapping import LearnableMapping, LearnableMappingFunction, layer_mapping
from .utils import STE, GroupSum, pad_if_needed

__version__ = "0.1.0"

__all__ = [
    "ENCODERS",
    "CompiledDWN",
    "DWNExperiment",
    "DistributiveThermometer",
    "EFDFunction",
    "GaussianThermometer",
    "GroupSum",
    "LUTLayer",
    "LearnableMapping",
    "LearnableMappingFunction",
    "STE",
    "Thermometer",
    "TrainConfig",
    "build_model",
    "compile_model",
    "evaluate_model",
    "export",
    "layer_mapping",
    "load_arrays",
    "load_compiled",
    "make_encoder",
    "pad_if_needed",
    "save_compiled",
    "train_model",
]
