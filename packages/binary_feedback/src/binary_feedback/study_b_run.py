"""Study B's run parts beyond the training loop (spec A.5, A.6, quirk 31), mixed into
:class:`~binary_feedback.experiment.StudyBExperiment`: the registered model's options
(``--fc-batchnorm``, ``--mlp-mixer-layers``, ``--mlp-mixer-dim``), per-layer monitoring
(``--monitor``, :mod:`.monitoring`), ``--save`` / ``--autosave`` (:data:`MODEL_FILE`) and the
W&B ``--tags``.
"""

from __future__ import annotations

from typing import Any

from bnn_shared.config import to_dict
from bnn_shared.export import save_binary
from bnn_shared.runner import Context

from .models import MODELS, BuiltModel, build_model
from .monitoring import LayerMonitor

__all__ = ["MODEL_FILE", "StudyBRunParts"]

#: Study B's ``--save`` / ``--autosave`` file in the run directory (packed 1-bit weights).
MODEL_FILE = "model.bnn"


class StudyBRunParts:
    """Hooks of a study-B experiment (put before the experiment base in the class bases)."""

    def model_options(self) -> dict[str, Any]:
        """The registered model's options from the config (``--fc-batchnorm``, mixer size)."""
        config = self.config
        name = MODELS.canonical(config.model)
        if name == "mlp":
            return {"bn": config.fc_batchnorm}
        if name == "mlpmixer":
            return {"depth": config.mlp_mixer_layers, "dim": config.mlp_mixer_dim}
        return {}

    def network(self, in_shape: tuple[int, ...], num_classes: int) -> BuiltModel:
        """The model before binarisation, its full-precision layers and output layer."""
        return build_model(self.config.model, num_classes, in_shape, **self.model_options())

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.layer_monitor = None
        if self.config.monitor:
            example = self.prepare(self.x_train[:1].to(ctx.device))
            self.layer_monitor = LayerMonitor(self.model, example)

    def train_epoch(self, epoch: int, ctx: Context) -> dict[str, Any]:
        wandb_run = ctx.run.wandb_run if ctx.run is not None else None
        if wandb_run is not None and self.config.tags:
            wandb_run.tags = tuple(self.config.tags)
        self._monitored: dict[str, float] = {}
        if self.layer_monitor is not None:
            self.layer_monitor.start()
        row = super().train_epoch(epoch, ctx)
        return {**row, **self._monitored}

    def after_step(self, step: int, ctx: Context) -> None:
        if step == 0 and self.layer_monitor is not None:
            self._monitored = self.layer_monitor.read()

    def end_epoch(self, epoch: int, row: dict[str, Any], ctx: Context) -> None:
        """Study B's monitoring is read in the epoch (:meth:`after_step`); ``autosave`` writes
        the model of every epoch."""
        if self.config.autosave and ctx.is_main:
            self.save_model(ctx)
        if self.config.verbose and not ctx.quiet and ctx.is_main:
            print(f"epoch {epoch}: " + " | ".join(f"{k} {v:.4f}" for k, v in row.items()))

    def finish(self, ctx: Context) -> dict[str, Any]:
        if self.config.save and ctx.is_main:
            self.save_model(ctx)
        return super().finish(ctx)

    def save_model(self, ctx: Context) -> None:
        """Write the model, 1-bit weights packed, to ``MODEL_FILE`` in the run directory
        (``bnn_shared.export.load`` rebuilds it)."""
        config = {
            "study_config": to_dict(self.config),
            "in_shape": list(self.in_shape),
            "num_classes": self.num_classes,
            "dtype": "float32",
        }
        save_binary(
            self.model, ctx.out_dir / MODEL_FILE, package="binary_feedback",
            model_class="study_b", config=config,
        )  # fmt: skip
