"""Build hook: how this package names the core, ``bnn-shared``.

Inside the Hatch workspace (``BNN_WORKSPACE=1``, set by the root pyproject's environments)
the core is an editable workspace member, so the plain name is required. Everywhere else,
e.g. ``pip install ./packages/dwn`` from the repository root, the name becomes a direct
reference to the repository's ``shared/``, so that no package index is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from hatchling.metadata.plugin.interface import MetadataHookInterface


class CoreDependencyHook(MetadataHookInterface):
    def update(self, metadata: dict) -> None:
        core = Path(self.root).resolve().parent.parent / "shared"
        requirement = "bnn-shared"
        if os.environ.get("BNN_WORKSPACE") != "1" and (core / "pyproject.toml").exists():
            requirement = f"bnn-shared @ {core.as_uri()}"
        metadata["dependencies"] = [requirement, *self.config.get("dependencies", [])]
