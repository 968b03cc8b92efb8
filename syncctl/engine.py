"""The typed library the CLI calls: for each policy, load -> lock -> read target -> read source
-> plan -> (confirm, in the CLI) -> apply -> record.

A ``PolicyRun`` is one policy's unit of work: its lock, state and open target live as long as
the run, so the plan a person confirms is applied under the same lock it was made under.
``syncctl.batch`` runs many of them concurrently, each isolated from the others' failures;
``syncctl.session`` runs them one after another for library users and tests; saved plans are
checked against a fresh plan by ``syncctl.saved``. Library code
never prints: progress goes to callbacks, results come back as data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from syncctl.apply import DEFAULT_PARALLELISM, ApplyReport, StateJournal, apply_changes
from syncctl.apply.applier import ProgressFn, ResultsFn, StopFn
from syncctl.errors import EXIT_REFUSED, LockHeldError, LostStateError, SyncctlError
from syncctl.model import SourceSnapshot, TargetObject, TargetSnapshot
from syncctl.outcomes import Outcome, PolicyResult, apply_outcome, plan_outcome
from syncctl.ownership import (
    Claim,
    candidates,
    lost_state_message,
    managed_on_target,
    only_managed,
    proven_claims,
)
from syncctl.plan.model import Action, Change, PolicyPlan
from syncctl.policy.model import Policy
from syncctl.redaction import mask
from syncctl.source.progress import Progress

if TYPE_CHECKING:
    from syncctl.plan.writeback import EntraAccount
    from syncctl.source.incremental import SourceSync, SyncedSlice
from syncctl import source_state
from syncctl.state import LastRun, State
from syncctl.state.backend import HeldLock, StateBackend, open_backend
from syncctl.state.store import iso
from syncctl.targets.base import Target, change_marker, open_target
from syncctl.writeback_run import entra_writer, read_password_accounts, sets_passwords

Clock = Callable[[], datetime]
SourceReader = Callable[..., SourceSnapshot]
TargetFactory = Callable[[Policy], Target]


def utc_now() -> datetime:
    return datetime.now(UTC)


class PolicyRun:
    """One policy's unit of work in one run: lock, state, target, plan, apply, record."""

    def __init__(
        self,
        policy: Policy,
        *,
        operation: str,
        clock: Clock = utc_now,
        target_factory: TargetFactory = open_target,
        read_source: SourceReader | None = None,
        refresh: bool = False,
    ) -> None:
        self.policy = policy
        self.operation = operation
        self._clock = clock
        self._target_factory = target_factory
        self._read_source = read_source
        self._refresh = refresh  # read Graph in full, not by delta
        self._started = clock()
        self._synced: SyncedSlice | None = None  # this run's Graph read, when cached
        self._sync_session: SourceSync | None = None  # counts this run's Graph requests
        self._accounts: list[EntraAccount] = []  # the users of writeback.passwords, as read
        self.backend: StateBackend | None = None
        self.lock: HeldLock | None = None
        self.state: State | None = None
        self.target: Target | None = None
        self.plan: PolicyPlan | None = None
        self.report: ApplyReport | None = None
        self.result: PolicyResult | None = None  # set once the run has ended, whatever way
        self._ending = threading.Lock()  # a run ends once, even when a signal races a worker

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def graph_requests(self) -> int:
        """Requests sent to Microsoft Graph so far (0 for snapshot files)."""
        return 0 if self._sync_session is None else self._sync_session.graph.requests_sent

    @property
    def notes(self) -> list[str]:
        """What the run wants said: why Graph was read in full, warnings."""
        return [] if self._synced is None else list(self._synced.notes)

    # -- steps -----------------------------------------------------------------------------

    def open(
        self,
        *,
        lock_timeout: float = 0.0,
        on_wait: Callable[[LockHeldError], None] | None = None,
    ) -> None:
        """Take the policy's lock and load its state. When another run holds the lock and
        ``lock_timeout`` allows waiting, ``on_wait`` hears who holds it before the wait (a
        CI or pod log that says nothing for ten minutes looks hung)."""
        self.backend = open_backend(self.policy)
        ttl = self.policy.state.lock_ttl
        try:
            self.lock = self.backend.lock(operation=self.operation, timeout=0.0, ttl=ttl)
        except LockHeldError as held:
            if lock_timeout <= 0:
                raise
            if on_wait is not None:
                on_wait(held)
            self.lock = self.backend.lock(operation=self.operation, timeout=lock_timeout, ttl=ttl)
        loaded = self.backend.load()
        self.state = loaded or State(policy=self.name, tenant=self.policy.tenant.id)

    def make_plan(self, *, now: datetime | None = None, progress: Progress | None = None) -> None:
        """Read the target, then the source, and plan (``self.plan``). Refuses (exit 3)
        when the state is missing or empty but the target holds objects this policy owns.
        With a Graph source the slice is read by delta and kept for the next run; when
        nothing the plan depends on changed since the last empty plan, that plan is taken
        again without reading the target (``syncctl.source_state``)."""
        now = now or self._clock()
        if self._cached_source():
            self._plan_from_cache(now, progress)
            return
        snapshot, source, claims = self._read(progress)
        self._refuse_lost(claims)
        self.plan = self._planned(source, snapshot, now)

    def _plan_from_cache(self, now: datetime, progress: Progress | None) -> None:
        from syncctl.source.incremental import source_sync

        state = self._state()
        with source_sync(self.policy, progress) as sync:
            synced = self._sync(sync, now)
            # A password secret can change without any input here changing: always plan those.
            marker = None if sets_passwords(self.policy) else change_marker(self._target())
            inputs, hashed = None, None
            if marker is not None:
                kept = self._keep(synced, now, save=False)  # the run's end saves it
                inputs = source_state.quiet_inputs(self.policy, kept, marker)
                hashed = kept.blob_names()
                quiet = source_state.quiet_plan(self._backend(), kept, inputs, now)
                if quiet is not None:
                    self.plan = quiet
                    return
            snapshot = self._target().read(self.name, sorted(state.managed))
            on_target = managed_on_target(snapshot, self.name)
            found = self._lost_candidates(snapshot, state)
            managed_ids = state.managed | on_target
            source = sync.evaluate(synced, sorted(managed_ids | found.keys()))
            self._refuse_lost(self._claims(found, source))
            source = only_managed(source, managed_ids)
            self._accounts = read_password_accounts(self.policy, sync.graph)
            kept = self._keep(synced, now)
            if marker is None or not on_target <= state.managed:
                inputs = None  # read for ids the state lacks: not the state's plan to reuse
            elif kept.blob_names() != hashed:
                # The evaluation added to the slice (answers about unknown ids): new inputs.
                inputs = source_state.quiet_inputs(self.policy, kept, marker)
        self.plan = self._planned(source, snapshot, now)
        self.state = source_state.store_quiet(
            self._backend(), self.policy, self._state(), self.plan, inputs
        )
        self._save(self.state)

    def _refuse_lost(self, claims: list[Claim]) -> None:
        """Exit 3 when the state is missing or empty but the target holds objects this
        policy owns: planning from it would create them all again."""
        if claims and self._state().is_empty:
            raise LostStateError(
                lost_state_message(str(self.policy.path), self._backend().location, claims)
            )

    def _planned(self, source: SourceSnapshot, target: TargetSnapshot, now: datetime) -> PolicyPlan:
        from syncctl.plan.planner import plan_policy

        state = self._state()
        return plan_policy(
            self.policy,
            source,
            target,
            disabled_at=state.disabled_at,
            synced=state.synced,
            now=now,
            accounts=self._accounts,
            passwords=state.passwords,
        )

    def _sync(self, sync: SourceSync, now: datetime) -> SyncedSlice:
        """This run's slice: by delta from the stored one, or in full."""
        self._sync_session = sync
        state = self._state()
        stored = source_state.stored_slice(self._backend(), state)
        reason = source_state.full_read_reason(self.policy, state, now, refresh=self._refresh)
        self._synced = sync.read(
            stored, dict(state.delta_links), full_reason=reason, managed=sorted(state.managed)
        )
        return self._synced

    def _keep(self, synced: SyncedSlice, now: datetime, *, save: bool = True) -> State:
        """Keep the slice and its links in the state, saved at once unless ``save`` is
        False (they mirror Entra, so whatever the plan or the apply does next, they are
        right). The slice's blob is written when it changed, before the state names it."""
        self.state = source_state.store_slice(self._backend(), self._state(), synced, now)
        synced.changed = False  # its blob is written: keeping it again writes nothing
        if save:
            self._save(self.state)
            self._backend().prune_blobs(self.state.blob_names())
        return self.state

    def recover(self, *, progress: Progress | None = None) -> list[Claim]:
        """``syncctl state recover``: claim the target objects this policy owns that its
        state does not record, and save the state; returns what was claimed."""
        state = self._state()
        _, _, claims = self._read(progress, look_for_lost=True)
        new = [c for c in claims if c.entra_id not in state.managed]
        self.state = state.with_managed(c.entra_id for c in new).for_tenant(self.policy.tenant.id)
        self._backend().save(self.state)
        return new

    def _read(
        self, progress: Progress | None, *, look_for_lost: bool = False
    ) -> tuple[TargetSnapshot, SourceSnapshot, list[Claim]]:
        """Target snapshot, source snapshot (with removal reasons for every managed id), and,
        when the state is empty (or asked), the objects the policy owns that it lacks."""
        state = self._state()
        target = self._target()
        snapshot = target.read(self.name, sorted(state.managed))
        managed_ids = state.managed | managed_on_target(snapshot, self.name)
        found = self._lost_candidates(snapshot, state, look_for_lost=look_for_lost)
        if self._cached_source():
            from syncctl.source.incremental import source_sync

            with source_sync(self.policy, progress) as sync:
                synced = self._sync(sync, self._clock())
                source = sync.evaluate(synced, sorted(managed_ids | found.keys()))
                self._keep(synced, self._clock())
        else:
            reader = self._source_reader()
            source = reader(self.policy, sorted(managed_ids | found.keys()), progress=progress)
        return snapshot, only_managed(source, managed_ids), self._claims(found, source)

    def _lost_candidates(
        self, snapshot: TargetSnapshot, state: State, *, look_for_lost: bool = False
    ) -> dict[str, TargetObject]:
        """When the state is empty (or asked): target objects this policy seems to own."""
        if not (state.is_empty or look_for_lost):
            return {}
        others = {
            entra_id
            for other in self._backend().list_states()
            if other.policy != self.name
            for entra_id in other.managed
        }
        marks = self._target().capabilities().marks_ownership
        return candidates(snapshot, self.name, marks_ownership=marks, claimed_elsewhere=others)

    def _claims(self, found: dict[str, TargetObject], source: SourceSnapshot) -> list[Claim]:
        marks = self._target().capabilities().marks_ownership
        return proven_claims(found, source, marks_ownership=marks) if found else []

    def _cached_source(self) -> bool:
        """Graph is read by delta with a cached slice; not for snapshot files, nor when a
        caller passed its own reader."""
        return self._read_source is None and self.policy.tenant.snapshot is None

    def apply(
        self,
        changes: Sequence[Change],
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        on_results: ResultsFn | None = None,
    ) -> ApplyReport:
        """Write ``changes`` to the target, journalling ownership and timers in the state;
        ``on_results`` hears each phase's results once they are journalled (audit log).
        Writeback changes go to Entra through Graph; ``report`` ones are never written."""
        changes = [c for c in changes if c.action is not Action.REPORT]
        journal = StateJournal(self._save, self._state())
        with entra_writer(self.policy, self._accounts, changes) as writer:
            try:
                self.report = apply_changes(
                    changes,
                    self._target(),
                    owner=self.name,
                    journal=journal,
                    clock=self._clock,
                    parallelism=parallelism,
                    progress=progress,
                    should_stop=should_stop,
                    on_results=on_results,
                    writeback=writer,
                )
            finally:
                self.state = journal.state
                if writer is not None and writer.password_records:
                    self.state = self.state.with_passwords(dict(writer.password_records))
                    self._save(self.state)
        return self.report

    # -- endings ---------------------------------------------------------------------------

    def finish_plan(self) -> PolicyResult:
        """End a plan-only run: refused, partial (object errors), changes or none."""
        assert self.plan is not None
        outcome, error = plan_outcome(self.plan)
        return self.finish(outcome, error)

    def finish_apply(self) -> PolicyResult:
        """End an apply: success only when every object was planned and every change held."""
        outcome, error = apply_outcome(self.plan, self.report)
        return self.finish(outcome, error)

    def fail(self, exc: BaseException) -> PolicyResult:
        """End the run on an error: refused (exit 3 errors) or failed."""
        refused = isinstance(exc, SyncctlError) and exc.exit_code == EXIT_REFUSED
        return self.finish(Outcome.REFUSED if refused else Outcome.FAILED, str(exc))

    def finish(self, outcome: Outcome, error: str | None) -> PolicyResult:
        """Record how the run ended in the state (``syncctl status``) and keep it."""
        with self._ending:
            if self.result is None:
                self._record(outcome, error)
            assert self.result is not None
            return self.result

    def _record(self, outcome: Outcome, error: str | None) -> None:
        error = None if error is None else mask(error)
        finished = self._clock()
        self.result = self._result(outcome, error, finished)
        if self.state is not None and self.lock is not None:
            errors = (0 if self.plan is None else len(self.plan.errors)) + (
                0 if self.report is None else len(self.report.failed)
            )
            last = LastRun(
                operation=self.operation,
                started_at=iso(self._started),
                finished_at=iso(finished),
                outcome=outcome.value,
                counts=self._counts(),
                error=error,
                errors=errors,
            )
            self.state = self.state.with_last_run(last)
            try:
                self._save(self.state)
            except SyncctlError as exc:
                self.result = self._result(Outcome.FAILED, mask(str(exc)), finished)

    def _result(self, outcome: Outcome, error: str | None, finished: datetime) -> PolicyResult:
        return PolicyResult(
            policy=self.name,
            outcome=outcome,
            error=error,
            plan=self.plan,
            report=self.report,
            started_at=self._started,
            finished_at=finished,
            graph_requests=self.graph_requests,
        )

    def _counts(self) -> dict[str, int]:
        if self.report is not None:
            return self.report.counts
        if self.plan is not None:
            return self.plan.summary
        return {}

    def close(self) -> None:
        """Close the target, release the lock and close the backend (idempotent)."""
        try:
            if self.target is not None:
                self.target.close()
                self.target = None
        finally:
            try:
                if self.lock is not None:
                    self.lock.release()
                    self.lock = None
            finally:
                if self.backend is not None:
                    self.backend.close()
                    self.backend = None

    # -- internals -------------------------------------------------------------------------

    def _state(self) -> State:
        if self.state is None:
            raise SyncctlError(f'policy "{self.name}": the run was not opened (no lock taken)')
        return self.state

    def _backend(self) -> StateBackend:
        if self.backend is None:
            raise SyncctlError(f'policy "{self.name}": the run was not opened (no lock taken)')
        return self.backend

    def _save(self, state: State) -> None:
        """Save, but only while this run still holds the lock (a lost lease stops writes)."""
        if self.lock is not None:
            self.lock.check()
        self._backend().save(state)

    def _target(self) -> Target:
        if self.target is None:
            self.target = self._target_factory(self.policy)
        return self.target

    def _source_reader(self) -> SourceReader:
        if self._read_source is None:
            from syncctl.source import read_source

            self._read_source = read_source
        return self._read_source
