"""The sequential library interface: the policies of one run, one after another.

The CLI uses ``syncctl.batch`` instead, which isolates policies from each other's failures
and runs them concurrently; this is for library users and tests that want one call per step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from syncctl import __version__
from syncctl.apply import DEFAULT_PARALLELISM, ApplyReport
from syncctl.apply.applier import ProgressFn
from syncctl.engine import Clock, PolicyRun, SourceReader, TargetFactory, utc_now
from syncctl.errors import SyncctlError
from syncctl.plan.model import Plan
from syncctl.policy.model import Policy
from syncctl.saved import SavedSelection
from syncctl.source.progress import Progress
from syncctl.state.store import iso
from syncctl.targets.base import open_target


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
