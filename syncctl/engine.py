"""The typed library the CLI calls: load -> lock -> read target -> read source -> plan ->
(confirm, in the CLI) -> apply -> save state.

A ``Session`` holds, for each policy of one run, its lock, state and open target for as long
as the run lasts, so the plan a person confirms is applied under the same lock it was made
under. Library code never prints: progress goes to callbacks, results come back as data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncctl import __version__
from syncctl.apply import DEFAULT_PARALLELISM, ApplyReport, StateJournal, apply_changes
from syncctl.apply.applier import ProgressFn
from syncctl.errors import SafetyError, StalePlanError, SyncctlError
from syncctl.model import SourceSnapshot, TargetSnapshot
from syncctl.plan.model import Change, Plan, PolicyPlan
from syncctl.policy.model import Policy
from syncctl.source.progress import Progress
from syncctl.state import LastRun, PolicyLock, State, acquire, load_state, save_state
from syncctl.state.store import iso
from syncctl.targets.base import Target, open_target

STALE_LIST_LIMIT = 10

Clock = Callable[[], datetime]
SourceReader = Callable[..., SourceSnapshot]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _PolicyRun:
    policy: Policy
    lock: PolicyLock
    state: State
    target: Target | None = None


@dataclass(frozen=True, slots=True)
class SavedSelection:
    """The changes of a saved plan, taken from the fresh plan (real values), per policy."""

    changes: Mapping[str, tuple[Change, ...]]


@dataclass(frozen=True, slots=True)
class RunResult:
    reports: tuple[ApplyReport, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in self.reports)


class Session:
    """Locks, states and targets of the policies of one run. Use ``open_session``."""

    def __init__(
        self,
        runs: Sequence[_PolicyRun],
        *,
        operation: str,
        clock: Clock,
        target_factory: Callable[[Policy], Target],
        read_source: SourceReader | None,
    ) -> None:
        self._runs = {r.policy.name: r for r in runs}
        self._operation = operation
        self._clock = clock
        self._target_factory = target_factory
        self._read_source = read_source
        self._started = clock()

    @property
    def policies(self) -> list[Policy]:
        return [self._runs[name].policy for name in sorted(self._runs)]

    # -- plan ------------------------------------------------------------------------------

    def plan(self, *, progress: Progress | None = None) -> Plan:
        """Read every target and source and plan; records a failed read in the state."""
        now = self._clock()
        plans = [self._plan_one(self._runs[name], now, progress) for name in sorted(self._runs)]
        return Plan(policies=tuple(plans), syncctl_version=__version__, created_at=iso(now))

    def _plan_one(self, run: _PolicyRun, now: datetime, progress: Progress | None) -> PolicyPlan:
        from syncctl.plan.planner import plan_policy

        policy = run.policy
        try:
            target = self._target(run)
            snapshot = target.read(policy.name, sorted(run.state.managed))
            managed_ids = run.state.managed | _managed_on_target(snapshot, policy.name)
            source = self._source_reader()(policy, sorted(managed_ids), progress=progress)
            return plan_policy(policy, source, snapshot, disabled_at=run.state.disabled_at, now=now)
        except SyncctlError as exc:
            self._record(run, "error", {}, str(exc))
            raise

    def record_plan(self, plan: Plan) -> None:
        """Remember a finished plan as the policies' last run (``syncctl status``)."""
        for policy_plan in plan.policies:
            run = self._runs[policy_plan.name]
            if policy_plan.refused is not None:
                outcome = "refused"
            else:
                outcome = "no_changes" if policy_plan.is_empty else "changes_pending"
            self._record(run, outcome, policy_plan.summary, None)

    # -- apply -----------------------------------------------------------------------------

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
            if not changes:
                self._record(run, "no_changes", {}, None)
                continue
            journal = StateJournal(run.policy.state.path, run.state)
            try:
                report = apply_changes(
                    changes,
                    self._target(run),
                    owner=run.policy.name,
                    journal=journal,
                    clock=self._clock,
                    parallelism=parallelism,
                    progress=progress,
                )
            except SyncctlError as exc:
                run.state = journal.state
                self._record(run, "error", {}, str(exc))
                raise
            run.state = journal.state
            error = report.aborted or (
                f"{len(report.failed)} of {len(report.results)} changes failed"
                if report.failed
                else None
            )
            self._record(run, "failed" if error else "success", report.counts, error)
            reports.append(report)
        return RunResult(tuple(reports))

    # -- internals -------------------------------------------------------------------------

    def _target(self, run: _PolicyRun) -> Target:
        if run.target is None:
            run.target = self._target_factory(run.policy)
        return run.target

    def _source_reader(self) -> SourceReader:
        if self._read_source is None:
            from syncctl.source import read_source

            self._read_source = read_source
        return self._read_source

    def _record(
        self, run: _PolicyRun, outcome: str, counts: Mapping[str, int], error: str | None
    ) -> None:
        last = LastRun(
            operation=self._operation,
            started_at=iso(self._started),
            finished_at=iso(self._clock()),
            outcome=outcome,
            counts=dict(counts),
            error=error,
        )
        run.state = run.state.with_last_run(last)
        save_state(run.policy.state.path, run.state)

    def close(self) -> None:
        for run in self._runs.values():
            if run.target is not None:
                run.target.close()
                run.target = None


def _managed_on_target(snapshot: TargetSnapshot, owner: str) -> frozenset[str]:
    return frozenset(
        o.external_id
        for o in (*snapshot.users, *snapshot.groups)
        if o.managed_by == owner and o.external_id is not None
    )


@contextmanager
def open_session(
    policies: Sequence[Policy],
    *,
    operation: str,
    lock_timeout: float = 0.0,
    clock: Clock = utc_now,
    target_factory: Callable[[Policy], Target] = open_target,
    read_source: SourceReader | None = None,
) -> Iterator[Session]:
    """Lock every policy (in name order, so two runs cannot deadlock), load its state, and
    release everything on exit, whatever happens."""
    with ExitStack() as stack:
        runs = []
        for policy in sorted(policies, key=lambda p: p.name):
            lock = acquire(
                policy.state.path,
                policy=policy.name,
                operation=operation,
                timeout=lock_timeout,
                clock=clock,
            )
            stack.callback(lock.release)
            runs.append(_PolicyRun(policy, lock, load_state(policy.state.path, policy.name)))
        session = Session(
            runs,
            operation=operation,
            clock=clock,
            target_factory=target_factory,
            read_source=read_source,
        )
        stack.callback(session.close)
        yield session


def make_plan(policies: Sequence[Policy], *, lock_timeout: float = 0.0) -> Plan:
    """Plan without applying (a convenience for library users)."""
    with open_session(policies, operation="plan", lock_timeout=lock_timeout) as session:
        plan = session.plan()
        session.record_plan(plan)
        return plan


def check_refusals(plan: Plan | Mapping[str, Any], *, allow_mass_delete: bool) -> None:
    """Raise SafetyError when a safety check refused the plan and the user did not override."""
    if allow_mass_delete:
        return
    refusals = (
        [(p.name, p.refused.message) for p in plan.policies if p.refused is not None]
        if isinstance(plan, Plan)
        else [
            (str(p["name"]), str(p["refused"].get("message") or p["refused"].get("check")))
            for p in plan.get("policies", [])
            if p.get("refused")
        ]
    )
    if refusals:
        details = "; ".join(f'policy "{name}": {message}' for name, message in refusals)
        raise SafetyError(f"Plan refused by a safety check: {details} (--allow-mass-delete)")


def saved_policies(saved: Mapping[str, Any], policies: Sequence[Policy]) -> list[Policy]:
    """The policies a saved plan was made of, refusing it when any policy file changed."""
    by_name = {p.name: p for p in policies}
    chosen = []
    for saved_policy in saved.get("policies", []):
        name = str(saved_policy.get("name"))
        policy = by_name.get(name)
        if policy is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise SyncctlError(
                f'the saved plan is for policy "{name}", which is not among the policies '
                f"given (found: {known}); pass its policy file or directory after the plan"
            )
        if saved_policy.get("policy_sha256") != policy.sha256:
            raise StalePlanError(
                f"Saved plan is stale: policy file {policy.path} changed since the plan was "
                "made; run plan again"
            )
        chosen.append(policy)
    return chosen


def select_saved(saved: Mapping[str, Any], fresh: Plan) -> SavedSelection:
    """The saved plan's changes, taken from ``fresh`` (which holds the real redacted and
    deferred values), after checking that each is still exactly what a fresh plan would do.

    Stale (StalePlanError, exit 3) when any saved change is gone or differs from the fresh
    plan's change at the same address (action, attributes, before values, target version):
    the target or the source moved on since planning. Both sides are compared as the plan
    file spells them, so redacted values compare as "(redacted)".
    """
    from syncctl.plan.planfile import dumps_dict, plan_to_dict

    fresh_dict = json.loads(dumps_dict(plan_to_dict(fresh)))
    fresh_changes = {
        str(p["name"]): _by_address(p.get("changes", [])) for p in fresh_dict["policies"]
    }
    fresh_objects = {p.name: {c.address: c for c in p.changes} for p in fresh.policies}
    selected: dict[str, tuple[Change, ...]] = {}
    stale: list[str] = []
    for saved_policy in saved.get("policies", []):
        name = str(saved_policy["name"])
        now_changes = fresh_changes.get(name, {})
        chosen = []
        for address, change in _by_address(saved_policy.get("changes", [])).items():
            if now_changes.get(address) != change:
                stale.append(address)
            else:
                chosen.append(fresh_objects[name][address])
        selected[name] = tuple(chosen)
    if stale:
        shown = ", ".join(stale[:STALE_LIST_LIMIT])
        more = f" and {len(stale) - STALE_LIST_LIMIT} more" if len(stale) > STALE_LIST_LIMIT else ""
        raise StalePlanError(
            f"Saved plan is stale: {len(stale)} planned change(s) no longer match the source "
            f"or target ({shown}{more}); run plan again"
        )
    return SavedSelection(selected)


def _by_address(changes: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c["address"]): c for c in changes}
