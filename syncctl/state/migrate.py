"""``syncctl state migrate``: copy a policy's state from one backend into another.

Both locks are held while copying, so no run writes either side meanwhile. The copy never
replaces a newer state: when the destination already holds state for the policy, its last
run must not be later than the source's (a destination that has been used since is the one
to keep). The blobs the state names are copied first and the state last, so the destination
never names a blob it lacks; a blob the source lacks is skipped (the engine then reads Graph
in full). The source is left as it was: it is removed by hand once the policy file that
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
    blobs_copied: tuple[str, ...] = ()
    blobs_missing: tuple[str, ...] = ()  # named by the state, not in the source: skipped


def _last_activity(state: State) -> str:
    return "" if state.last_run is None else state.last_run.finished_at  # ISO 8601 sorts


def _copy_blobs(
    source: StateBackend, destination: StateBackend, state: State
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    copied: list[str] = []
    missing: list[str] = []
    for name in dict.fromkeys(state.blob_names()):
        try:
            data = source.load_blob(name)
        except ValueError:
            data = None  # a name no backend can hold (a hand-edited state): nothing to copy
        if data is None:
            missing.append(name)
            continue
        destination.save_blob(name, data)
        copied.append(name)
    return tuple(copied), tuple(missing)


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
        same = existing is not None and existing.to_dict() == state.to_dict()
        if existing is not None and not same and _last_activity(existing) > _last_activity(state):
            raise StateError(
                f'policy "{policy}": {destination.location} already holds a newer state '
                f"(last run {_last_activity(existing)}, the source's "
                f"{_last_activity(state) or 'never'}); not overwriting it"
            )
        # Even when the state is there already: an earlier copy may have lacked its blobs.
        copied, missing = _copy_blobs(source, destination, state)
        if not same:
            destination.save(state)
        # The destination's older state named other blobs, which nothing needs any more.
        destination.prune_blobs(state.blob_names())
        return Migration(state, already_there=same, blobs_copied=copied, blobs_missing=missing)
    finally:
        for lock in reversed(held):
            lock.release()
