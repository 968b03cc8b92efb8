"""Targets: the Protocol and registry (``base``), the built-in SQLite and SCIM directories, and
plugins registered under the ``syncctl.targets`` entry point group."""

from __future__ import annotations

from syncctl.targets.base import (
    Capabilities,
    Outcome,
    OutcomeStatus,
    Target,
    TargetFactory,
    available_targets,
    open_target,
)

__all__ = [
    "Capabilities",
    "Outcome",
    "OutcomeStatus",
    "Target",
    "TargetFactory",
    "available_targets",
    "open_target",
]
