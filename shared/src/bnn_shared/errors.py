"""User-facing errors: each one is printed as a single clear message, never a traceback.

Every error a user can cause (a missing dataset, an unknown config key, an impossible
shape, a missing checkpoint) raises a subclass of :class:`BnnError`. Command-line entry
points wrap their ``main`` with :func:`bnn_shared.cli.run_cli`, which prints
``error: <message>`` on stderr and exits with :attr:`BnnError.exit_code` (2).
"""

from __future__ import annotations


class BnnError(Exception):
    """Base class of the errors a user can fix; the message says how."""

    exit_code: int = 2


class DatasetNotFoundError(BnnError, FileNotFoundError):
    """Dataset files are missing and were not (or could not be) downloaded."""


class MissingDependencyError(BnnError, ImportError):
    """An optional dependency (an extra such as ``wandb`` or ``nlp``) is not installed."""


class ConfigError(BnnError, ValueError):
    """A configuration key is unknown, missing or of the wrong type."""


class ShapeError(BnnError, ValueError):
    """Tensor or model shapes that cannot work together."""


class CheckpointError(BnnError, RuntimeError):
    """A checkpoint is missing, broken or belongs to another run."""
