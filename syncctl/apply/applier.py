"""The applier: carries out a policy's changes on its target, in a safe order.

Order (each phase finishes before the next starts, so dependencies exist when needed and
access is taken away before objects disappear):

    0 group creates / adopts / updates
    1 user creates / adopts / updates / enables
    2 membership removes
    3 membership adds
    4 user disables
    5 user deletes
    6 group deletes
    7 Entra user updates (writeback), through Graph rather than the target

Inside a phase the changes go to the target in batches of ``Capabilities.max_batch``; batches
run concurrently (up to ``parallelism``) only when the target says it is ``parallel_safe``.
A failed change is reported and the run goes on; a failure of the whole target (unreachable,
auth) stops the run and the changes not attempted are reported as failed.

State is journalled around the writes: Entra ids are recorded as managed *before* they are
created or adopted (write-ahead), disable times after each phase, deleted ids after deletion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from syncctl.errors import SyncctlError, TargetError
from syncctl.plan.model import Action, Change, ChangeKind
from syncctl.plan.values import is_deferred
from syncctl.targets.base import Outcome, OutcomeStatus, Target

DEFAULT_PARALLELISM = 8
ENTRA_PHASE = 7

PHASES: tuple[str, ...] = (
    "group writes",
    "user writes",
    "membership removes",
    "membership adds",
    "user disables",
    "user deletes",
    "group deletes",
    "entra updates",
)


def phase_of(change: Change) -> int:
    if change.kind is ChangeKind.ENTRA_USER:
        return ENTRA_PHASE  # last: Entra is written only once the target's own changes are done
    if change.kind is ChangeKind.MEMBERSHIP:
        return 2 if change.action is Action.REMOVE else 3
    if change.kind is ChangeKind.GROUP:
        return 6 if change.action in (Action.DELETE, Action.DISABLE) else 0
    if change.action is Action.DISABLE:
        return 4
    if change.action is Action.DELETE:
        return 5
    return 1


class Journal(Protocol):
    """Where the applier records ownership and timers (the state store)."""

    def owned(self, entra_ids: Sequence[str]) -> None:
        """Called before the creates/adopts of these ids are attempted."""

    def applied(self, results: Sequence[tuple[Change, Outcome]], when: datetime) -> None:
        """Called after each phase with what happened."""


ProgressFn = Callable[[int, int], None]  # (changes done, total)
# Asked before each batch is started: a reason to stop (SIGTERM, the run's deadline) or None.
# Batches already written are journalled; the rest are reported as not attempted.
StopFn = Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class ChangeResult:
    change: Change
    outcome: Outcome
    attempted: bool = True  # False: the run stopped (or the target failed) before this batch

    @property
    def ok(self) -> bool:
        return self.outcome.status in (OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED)


# Told after each phase what happened and when (the audit log), after the journal recorded it.
ResultsFn = Callable[[Sequence[ChangeResult], datetime], None]


@dataclass(frozen=True, slots=True)
class ApplyReport:
    policy: str
    results: tuple[ChangeResult, ...]  # in the order the changes were applied
    aborted: str | None = None  # the whole target failed: why

    @property
    def failed(self) -> tuple[ChangeResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in OutcomeStatus}
        for result in self.results:
            counts[result.outcome.status.value] += 1
        return counts


def resolve_deferred(change: Change) -> Change:
    """Replace apply-time values (Guid(), Now(), RandomString() on create) by real ones."""
    if not any(is_deferred(a.after) for a in change.attributes):
        return change
    resolved = tuple(
        replace(a, after=a.after.resolve()) if is_deferred(a.after) else a
        for a in change.attributes
    )
    return replace(change, attributes=resolved)


def apply_changes(
    changes: Sequence[Change],
    target: Target,
    *,
    owner: str,
    journal: Journal,
    clock: Callable[[], datetime],
    parallelism: int = DEFAULT_PARALLELISM,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    on_results: ResultsFn | None = None,
    writeback: Target | None = None,
) -> ApplyReport:
    """``writeback`` writes the ``entra_user`` changes (Graph); the rest go to ``target``."""
    caps = target.capabilities()
    batch_size = max(1, caps.max_batch)
    workers = max(1, parallelism) if caps.parallel_safe else 1
    phases: list[list[Change]] = [[] for _ in PHASES]
    for change in changes:
        phases[phase_of(change)].append(change)
    total = len(changes)
    results: list[ChangeResult] = []
    aborted: str | None = None

    owned = sorted(
        {
            c.source_id
            for c in changes
            if c.action in (Action.CREATE, Action.ADOPT) and c.source_id is not None
        }
    )
    if owned:
        journal.owned(owned)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="syncctl-apply") as pool:
        for number, phase in enumerate(phases):
            if not phase:
                continue
            if aborted is not None:
                results.extend(_not_attempted(phase, aborted))
                continue
            writer = writeback if number == ENTRA_PHASE else target
            if writer is None:
                raise TargetError("writeback changes to apply, but no Entra writer was given")
            batches = [phase[i : i + batch_size] for i in range(0, len(phase), batch_size)]
            phase_results: list[ChangeResult] = []

            def run(batch: list[Change], writer: Target = writer) -> list[ChangeResult]:
                stop = should_stop() if should_stop is not None else None
                if stop is not None:
                    raise _Stopped(stop)
                prepared = [resolve_deferred(c) for c in batch]
                outcomes = writer.apply(prepared, owner)
                if len(outcomes) != len(batch):
                    raise TargetError(
                        f"target returned {len(outcomes)} outcomes for {len(batch)} changes"
                    )
                return [ChangeResult(c, o) for c, o in zip(batch, outcomes, strict=True)]

            futures = [pool.submit(run, batch) for batch in batches]
            try:
                for batch, future in zip(batches, futures, strict=True):
                    try:
                        done = future.result()
                    except _Stopped as stop:
                        aborted = aborted or stop.reason
                        done = _not_attempted(batch, aborted)
                    except SyncctlError as exc:  # the target, or the run's deadline
                        aborted = aborted or str(exc)
                        done = _not_attempted(batch, aborted)
                    phase_results.extend(done)
                    if progress is not None:
                        progress(len(results) + len(phase_results), total)
            finally:
                # Also on SIGTERM / Ctrl-C: what was committed is journalled before we unwind.
                for future in futures:
                    future.cancel()
                when = clock()
                journal.applied([(r.change, r.outcome) for r in phase_results], when)
                if on_results is not None:
                    on_results(phase_results, when)
            results.extend(phase_results)
    return ApplyReport(policy=owner, results=tuple(results), aborted=aborted)


class _Stopped(Exception):
    """Internal: a batch was not started because the run is stopping."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _not_attempted(changes: Sequence[Change], why: str) -> list[ChangeResult]:
    return [
        ChangeResult(
            c,
            Outcome(c.address, OutcomeStatus.FAILED, c.target_id, f"not attempted: {why}"),
            attempted=False,
        )
        for c in changes
    ]
