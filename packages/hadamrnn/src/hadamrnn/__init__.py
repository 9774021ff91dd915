"""HadamRNN: binary and sparse-ternary Hadamard orthogonal RNNs (Foucault, Malgouyres, Mamalet,
ICLR 2025, arXiv 2502.00047), with a fast linear-recurrence engine.

The public API: the config schema (:class:`Config`, :func:`load`), the training function
(:func:`run_training`) and its :class:`HadamRNNExperiment` for the core runner, the model
builders and registries (the paper's models, the reference's QRNN / QSSM family in
:mod:`hadamrnn.qmodels`), the layers and activations, the engines and the scoped matmul hook
(:func:`use_arithmetic`) for emulating another arithmetic.
"""

from .arithmetic import Arithmetic, current_arithmetic, use_arithmetic
from .config import Config, DatasetConfig, ModelConfig, TrainConfig, load
from .dataset_tools import DATASETS, Splits, load_splits
from .engines import ENGINES
from .extra_layers import ACTIVATIONS, ModReLU, StatsQuantizer
from .getters import (
    LOSSES,
    METRICS,
    MODELS,
    OPTIMIZERS,
    get_loss,
    get_metric,
    get_model,
    get_optimizer,
    get_scheduler,
)
from .models import LinearRNN, LSTMModel
from .qmodels import QRNN, QSSM, QSSMwithEmbeddings, SpectralQSSM
from .quantized_layers import (
    HadamardRecurrent,
    OrthogonalRecurrent,
    QLinear,
    QuantizedOrthogonalRecurrent,
    hadamard_matrix,
)
from .training import HadamRNNExperiment, evaluate, run_training, train_epoch

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "ENGINES",
    "LOSSES",
    "METRICS",
    "MODELS",
    "OPTIMIZERS",
    "Arithmetic",
    "Config",
    "DatasetConfig",
    "HadamRNNExperiment",
    "HadamardRecurrent",
    "LSTMModel",
    "LinearRNN",
    "ModReLU",
    "ModelConfig",
    "OrthogonalRecurrent",
    "QLinear",
    "QRNN",
    "QSSM",
    "QSSMwithEmbeddings",
    "QuantizedOrthogonalRecurrent",
    "SpectralQSSM",
    "Splits",
    "StatsQuantizer",
    "TrainConfig",
    "current_arithmetic",
    "evaluate",
    "get_loss",
    "get_metric",
    "get_model",
    "get_optimizer",
    "get_scheduler",
    "hadamard_matrix",
    "load",
    "load_splits",
    "run_training",
    "train_epoch",
    "use_arithmetic",
]
