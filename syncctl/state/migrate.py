"""``syncctl state migrate``: copy a policy's state from one backend into another.

Both locks are held while copying, so no run writes either side meanwhile. The copy never
replaces a newer state: when the destination already holds state for the policy, its last
run must not be later than the source's (a destination that has been used since is the one
to keep). The source is left as it was: it is removed by hand once the policy file that
names the new backend is merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from syncctl.state.backend import StateBackend
from syncctl.state.store import State, StateError


@dataclass(frozen=True, slots=True)
class Migration:
    state: State
    already_there: bool  # the destination held exactly this state


def _last_activity(state: State) -> str:
    return "" if state.last_run is None else state.last_run.finished_at  # ISO 8601 sorts


def migrate_state(
    source: StateBackend, destination: StateBackend, *, policy: str, ttl: timedelta
) -> Migration:
    if source.location == destination.location:
        raise StateError(f'policy "{policy}": both policies keep their state at {source.location}')
    held = [source.lock(operation="migrate", timeout=0.0, ttl=ttl)]
    try:
        held.append(destination.lock(operation="migrate", timeout=0.0, ttl=ttl))
        state = source.load()
        if state is None:
            raise StateError(f'policy "{policy}": no state at {source.location}: nothing to copy')
        existing = destination.load()
        if existing is not None and existing.to_dict() == state.to_dict():
            return Migration(state, already_there=True)
        if existing is not None and _last_activity(existing) > _last_activity(state):
            raise StateError(
                f'policy "{policy}": {destination.location} already holds a newer state '
                f"(last run {_last_activity(existing)}, the source's "
                f"{_last_activity(state) or 'never'}); not overwriting it"
            )
        destination.save(state)
        return Migration(state, already_there=False)
    finally:
        for lock in reversed(held):
            lock.release()
