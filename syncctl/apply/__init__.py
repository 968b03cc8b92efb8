"""The applier: ordered, bounded-concurrency, idempotent execution of a plan's changes."""

from __future__ import annotations

from syncctl.apply.applier import (
    DEFAULT_PARALLELISM,
    PHASES,
    ApplyReport,
    ChangeResult,
    Journal,
    apply_changes,
    phase_of,
    resolve_deferred,
)
from syncctl.apply.journal import StateJournal

__all__ = [
    "DEFAULT_PARALLELISM",
    "PHASES",
    "ApplyReport",
    "ChangeResult",
    "Journal",
    "StateJournal",
    "apply_changes",
    "phase_of",
    "resolve_deferred",
]
