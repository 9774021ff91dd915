"""Training rules: how a step's gradients are obtained, one module per rule, found by name.

``get_rule("dfa", regime="study_a", num_classes=10)`` builds a rule; ``rule.step(model, x,
y, optimizer)`` runs one training step on any model of Linear/Conv1d/Conv2d layers. Names are
case-insensitive; ``gd`` is an alias of ``bp`` and ``pepita`` of ``sigprop``. Adding a rule is
adding a :class:`~binary_feedback.training.base.Rule` subclass and registering it in
:data:`RULES`. The studies' regimes (loss, feedback init, DRTP target) are in :mod:`.regimes`.

===========  ======================================================  ====================
name         rule                                                    module
===========  ======================================================  ====================
bp (gd)      backpropagation through the STEs                        :mod:`.bp`
dfa          direct feedback alignment, ``dL/dh := e @ B``           :mod:`.dfa`
drtp         direct random target projection, ``dL/dh := s @ P``     :mod:`.drtp`
             (``slow=True``: the hook variant, ``--slow-drtp``)
hsic         HSIC bottleneck, layer-local                            :mod:`.hsic`
sigprop      SigpropTL ("pepita"), two forward passes                :mod:`.sigprop`
ls           local search: random sign flips of one layer, kept if   :mod:`.local_search`
             the batch loss falls (no optimizer step)
spsa         SPSA on one module's parameters (zeroth order)          :mod:`.spsa`
spsah        SPSA on one module's output (node perturbation)         :mod:`.spsa`
spsag        as spsah, along a fixed direction (DRTP or Hebbian)     :mod:`.spsa`
===========  ======================================================  ====================

The last four are study B's unreported extras; they draw from torch's global generator at
every step (which module, which flips or perturbation), unlike the others.
"""

from __future__ import annotations

from typing import Any

from bnn_shared.errors import ConfigError
from bnn_shared.registry import Registry

from .base import LocalRule, Rule, local_blocks, output_layer, weight_layers
from .bp import BP
from .dfa import DFA
from .drtp import DRTP
from .hsic import HSIC, cosine_kernel, hsic, normalized_hsic
from .local_search import LocalSearch
from .regimes import REGIMES, STUDY_A, STUDY_B, Regime, get_regime
from .sigprop import SigpropTL
from .spsa import SPSA, SPSAG, SPSAH

__all__ = [
    "RULES",
    "get_rule",
    "available_rules",
    "Regime",
    "STUDY_A",
    "STUDY_B",
    "REGIMES",
    "get_regime",
    "Rule",
    "LocalRule",
    "BP",
    "DFA",
    "DRTP",
    "HSIC",
    "SigpropTL",
    "LocalSearch",
    "SPSA",
    "SPSAH",
    "SPSAG",
    "cosine_kernel",
    "hsic",
    "normalized_hsic",
    "weight_layers",
    "output_layer",
    "local_blocks",
]

#: Rule name -> class; aliases: study A's "GD" for BP, study B's code name "pepita".
RULES: Registry[type[Rule]] = Registry("training method", flag="--method")
RULES.register("bp", BP, aliases=("gd",))
RULES.register("dfa", DFA)
RULES.register("drtp", DRTP)
RULES.register("hsic", HSIC)
RULES.register("sigprop", SigpropTL, aliases=("pepita",))
RULES.register("ls", LocalSearch)
RULES.register("spsa", SPSA)
RULES.register("spsah", SPSAH)
RULES.register("spsag", SPSAG)


def available_rules() -> list[str]:
    """Every accepted rule name (registered names and aliases), sorted."""
    return sorted([*RULES.names(), *RULES.aliases()])


def get_rule(name: str, **options: Any) -> Rule:
    """Build the rule called ``name`` (any case, aliases included).

    Args:
        name: a name of :func:`available_rules`.
        **options: ``regime`` (a :class:`Regime` or ``"study_a"`` / ``"study_b"``),
            ``num_classes``, and the rule's own keyword options (e.g. ``bw_init`` for DFA,
            ``gamma`` and ``mode`` for HSIC); an unknown option is a ConfigError.
    """
    key = RULES.canonical(name)
    cls = RULES.get(key)
    missing = sorted({"regime", "num_classes"} - set(options))
    if missing:
        raise ConfigError(f"training method {key!r} needs the option {missing[0]!r}")
    allowed = {"regime", "num_classes", *cls.option_names()}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"training method {key!r} has no option {unknown[0]!r}; it accepts {sorted(allowed)}"
        )
    return cls(**options)
