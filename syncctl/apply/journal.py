"""The applier's journal backed by the policy's state (whatever backend holds it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from syncctl.plan.diff import synced_digest
from syncctl.plan.model import Action, Change, ChangeKind
from syncctl.state.store import State
from syncctl.targets.base import Outcome, OutcomeStatus

_DONE = (OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED)


class StateJournal:
    """Keeps ``state`` current and saved while an apply runs."""

    def __init__(self, save: Callable[[State], None], state: State) -> None:
        self._save = save
        self.state = state

    def owned(self, entra_ids: Sequence[str]) -> None:
        new = self.state.with_managed(entra_ids)
        if new != self.state:
            self.state = new
            self._save(self.state)

    def applied(self, results: Sequence[tuple[Change, Outcome]], when: datetime) -> None:
        disabled: list[str] = []
        enabled: list[str] = []
        deleted: list[str] = []
        synced: dict[str, str] = {}
        for change, outcome in results:
            if outcome.status not in _DONE or change.source_id is None:
                continue
            if change.kind is ChangeKind.MEMBERSHIP:
                continue
            if change.synced is not None:
                synced[change.source_id] = synced_digest(change.synced)
            if change.action is Action.DISABLE:
                disabled.append(change.source_id)
            elif change.action in (Action.ENABLE, Action.CREATE, Action.ADOPT):
                enabled.append(change.source_id)
            elif change.action is Action.DELETE:
                deleted.append(change.source_id)
        new = (
            self.state.with_disabled(disabled, when)
            .with_enabled(enabled)
            .with_synced(synced)
            .without_managed(deleted)
        )
        if new != self.state:
            self.state = new
            self._save(self.state)
