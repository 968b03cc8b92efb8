"""The typed library the CLI calls: for each policy, load -> lock -> read target -> read source
-> plan -> (confirm, in the CLI) -> apply -> record.

A ``PolicyRun`` is one policy's unit of work: its lock, state and open target live as long as
the run, so the plan a person confirms is applied under the same lock it was made under.
``syncctl.batch`` runs many of them concurrently, each isolated from the others' failures.
``Session`` is the simple sequential interface for library users and tests; saved plans are
checked against a fresh plan by ``syncctl.saved``. Library code
never prints: progress goes to callbacks, results come back as data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from syncctl import __version__
from syncctl.apply import DEFAULT_PARALLELISM, ApplyReport, StateJournal, apply_changes
from syncctl.apply.applier import ProgressFn, StopFn
from syncctl.errors import EXIT_REFUSED, SyncctlError
from syncctl.model import SourceSnapshot, TargetSnapshot
from syncctl.outcomes import Outcome, PolicyResult, apply_outcome, plan_outcome
from syncctl.plan.model import Change, Plan, PolicyPlan
from syncctl.policy.model import Policy
from syncctl.redaction import mask
from syncctl.saved import SavedSelection
from syncctl.source.progress import Progress
from syncctl.state import LastRun, PolicyLock, State, acquire, load_state, save_state
from syncctl.state.store import iso
from syncctl.targets.base import Target, open_target

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
    ) -> None:
        self.policy = policy
        self.operation = operation
        self._clock = clock
        self._target_factory = target_factory
        self._read_source = read_source
        self._started = clock()
        self.lock: PolicyLock | None = None
        self.state: State | None = None
        self.target: Target | None = None
        self.plan: PolicyPlan | None = None
        self.report: ApplyReport | None = None
        self.result: PolicyResult | None = None  # set once the run has ended, whatever way
        self._ending = threading.Lock()  # a run ends once, even when a signal races a worker

    @property
    def name(self) -> str:
        return self.policy.name

    # -- steps -----------------------------------------------------------------------------

    def open(self, *, lock_timeout: float = 0.0) -> None:
        """Take the policy's lock and load its state."""
        self.lock = acquire(
            self.policy.state.path,
            policy=self.name,
            operation=self.operation,
            timeout=lock_timeout,
            ttl=self.policy.state.lock_ttl,
            clock=self._clock,
        )
        self.state = load_state(self.policy.state.path, self.name)

    def make_plan(self, *, now: datetime | None = None, progress: Progress | None = None) -> None:
        """Read the target, then the source, and plan (``self.plan``)."""
        from syncctl.plan.planner import plan_policy

        state = self._state()
        target = self._target()
        snapshot = target.read(self.name, sorted(state.managed))
        managed_ids = state.managed | _managed_on_target(snapshot, self.name)
        reader = self._source_reader()
        source = reader(self.policy, sorted(managed_ids), progress=progress)
        self.plan = plan_policy(
            self.policy,
            source,
            snapshot,
            disabled_at=state.disabled_at,
            synced=state.synced,
            now=now or self._clock(),
        )

    def apply(
        self,
        changes: Sequence[Change],
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> ApplyReport:
        """Write ``changes`` to the target, journalling ownership and timers in the state."""
        journal = StateJournal(self.policy.state.path, self._state())
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
            )
        finally:
            self.state = journal.state
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
        self.result = PolicyResult(
            policy=self.name, outcome=outcome, error=error, plan=self.plan, report=self.report
        )
        if self.state is not None and self.lock is not None:
            errors = (0 if self.plan is None else len(self.plan.errors)) + (
                0 if self.report is None else len(self.report.failed)
            )
            last = LastRun(
                operation=self.operation,
                started_at=iso(self._started),
                finished_at=iso(self._clock()),
                outcome=outcome.value,
                counts=self._counts(),
                error=error,
                errors=errors,
            )
            self.state = self.state.with_last_run(last)
            try:
                save_state(self.policy.state.path, self.state)
            except SyncctlError as exc:
                self.result = PolicyResult(
                    policy=self.name,
                    outcome=Outcome.FAILED,
                    error=mask(str(exc)),
                    plan=self.plan,
                    report=self.report,
                )

    def _counts(self) -> dict[str, int]:
        if self.report is not None:
            return self.report.counts
        if self.plan is not None:
            return self.plan.summary
        return {}

    def close(self) -> None:
        """Close the target and release the lock (idempotent)."""
        try:
            if self.target is not None:
                self.target.close()
                self.target = None
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    # -- internals -------------------------------------------------------------------------

    def _state(self) -> State:
        if self.state is None:
            raise SyncctlError(f'policy "{self.name}": the run was not opened (no lock taken)')
        return self.state

    def _target(self) -> Target:
        if self.target is None:
            self.target = self._target_factory(self.policy)
        return self.target

    def _source_reader(self) -> SourceReader:
        if self._read_source is None:
            from syncctl.source import read_source

            self._read_source = read_source
        return self._read_source


def _managed_on_target(snapshot: TargetSnapshot, owner: str) -> frozenset[str]:
    return frozenset(
        o.external_id
        for o in (*snapshot.users, *snapshot.groups)
        if o.managed_by == owner and o.external_id is not None
    )


# -- the sequential library interface --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunResult:
    reports: tuple[ApplyReport, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in self.reports)


class Session:
    """The policies of one run, one after another; the first error is raised (after being
    recorded). Use ``open_session``. The CLI uses ``syncctl.batch`` instead, which isolates
    policies from each other's failures and runs them concurrently."""

    def __init__(self, runs: Sequence[PolicyRun], *, clock: Clock) -> None:
        self._runs = {r.name: r for r in runs}
        self._clock = clock

    @property
    def policies(self) -> list[Policy]:
        return [self._runs[name].policy for name in sorted(self._runs)]

    def plan(self, *, progress: Progress | None = None) -> Plan:
        """Read every target and source and plan; a failed read is recorded, then raised."""
        now = self._clock()
        plans = []
        for name in sorted(self._runs):
            run = self._runs[name]
            try:
                run.make_plan(now=now, progress=progress)
            except SyncctlError as exc:
                run.fail(exc)
                raise
            assert run.plan is not None
            plans.append(run.plan)
        return Plan(policies=tuple(plans), syncctl_version=__version__, created_at=iso(now))

    def record_plan(self, plan: Plan) -> None:
        """Remember a finished plan as the policies' last run (``syncctl status``)."""
        for policy_plan in plan.policies:
            self._runs[policy_plan.name].finish_plan()

    def apply(
        self,
        plan: Plan,
        *,
        selection: SavedSelection | None = None,
        parallelism: int = DEFAULT_PARALLELISM,
        progress: ProgressFn | None = None,
    ) -> RunResult:
        """Apply ``plan`` (or, with ``selection``, exactly a saved plan's changes)."""
        reports = []
        for policy_plan in plan.policies:
            run = self._runs[policy_plan.name]
            changes = (
                policy_plan.changes
                if selection is None
                else selection.changes.get(policy_plan.name, ())
            )
            if changes:
                try:
                    reports.append(run.apply(changes, parallelism=parallelism, progress=progress))
                except SyncctlError as exc:
                    run.fail(exc)
                    raise
            run.finish_apply()
        return RunResult(tuple(reports))


@contextmanager
def open_session(
    policies: Sequence[Policy],
    *,
    operation: str,
    lock_timeout: float = 0.0,
    clock: Clock = utc_now,
    target_factory: TargetFactory = open_target,
    read_source: SourceReader | None = None,
) -> Iterator[Session]:
    """Lock every policy (in name order, so two runs cannot deadlock), load its state, and
    release everything on exit, whatever happens."""
    with ExitStack() as stack:
        runs = []
        for policy in sorted(policies, key=lambda p: p.name):
            run = PolicyRun(
                policy,
                operation=operation,
                clock=clock,
                target_factory=target_factory,
                read_source=read_source,
            )
            stack.callback(run.close)
            run.open(lock_timeout=lock_timeout)
            runs.append(run)
        yield Session(runs, clock=clock)


def make_plan(policies: Sequence[Policy], *, lock_timeout: float = 0.0) -> Plan:
    """Plan without applying (a convenience for library users)."""
    with open_session(policies, operation="plan", lock_timeout=lock_timeout) as session:
        plan = session.plan()
        session.record_plan(plan)
        return plan
