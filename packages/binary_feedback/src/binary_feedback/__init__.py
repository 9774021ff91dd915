"""Backprop alternatives for binary neural networks (Crulis, Serres, de Runz, Venturini).

Re-implements two studies: BP vs DFA vs DRTP on binary MLPs (ACM SAC 2023, "study A") and its
extension to MLP-Mixer, MobileNetV2 and VGG-19 on ImageNette with the HSIC bottleneck and
SigpropTL added (arXiv 2408.04460, "study B"). Layout as in the reference code:
``commons`` (sign activations with straight-through estimators, binary layers, study-A batch
norm), ``utils.binary`` (binarisation of any model), ``models`` (the studies' networks),
``training`` (one module per rule); then ``config`` (one schema per study), ``data``,
``evaluation``, ``experiment`` (the runner's hooks, :func:`train_model`) and ``train`` (the
command line, ``python -m binary_feedback.train``).

Example (a notebook's study-A run on the bundled digits)::

    from binary_feedback import StudyAConfig, train_model
    from bnn_shared.runner import RunSettings

    config = StudyAConfig(dataset="digits", method="DRTP", bn=True, binarize=True,
                          hidden_act="signsat", hidden=[256, 128], init=1e-3, epochs=5, seed=0)
    final = train_model(config, RunSettings(out_dir="runs/drtp", device="cpu"))
    final["test/best_accuracy"]
"""

from .commons.activations import ACTIVATIONS
from .config import DATASETS, STUDIES, StudyAConfig, StudyBConfig, StudyConfig
from .experiment import (
    BinaryFeedbackExperiment,
    StudyAExperiment,
    StudyBExperiment,
    build,
    experiment_for,
    train_model,
)
from .models import MLP, MODELS, BuiltModel, build_model
from .training import RULES, Rule, get_rule

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "MLP",
    "MODELS",
    "RULES",
    "STUDIES",
    "BinaryFeedbackExperiment",
    "BuiltModel",
    "Rule",
    "StudyAConfig",
    "StudyAExperiment",
    "StudyBConfig",
    "StudyBExperiment",
    "StudyConfig",
    "build",
    "build_model",
    "experiment_for",
    "get_rule",
    "train_model",
]
