"""What happened to each policy of a run, and the exit code that says so.

Each policy is its own unit of work: its result is one of a few outcomes, and the command's
exit code is the worst of them. The ranking follows Terraform: an error anywhere wins (1),
then a refusal (3: safety check, stale saved plan, lock held), then pending changes (2, only
with ``--detailed-exitcode``), then success (0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from syncctl.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, EXIT_REFUSED

if TYPE_CHECKING:
    from syncctl.apply.applier import ApplyReport
    from syncctl.plan.model import PolicyPlan


class Outcome(StrEnum):
    """Recorded in the state (``syncctl status``) and shown in the summary table."""

    NO_CHANGES = "no_changes"  # the target already matches
    CHANGES_PENDING = "changes_pending"  # plan: changes to apply, no errors
    SUCCESS = "success"  # apply: every change applied, no object had an error
    PARTIAL = "partial"  # some objects synced, some had errors or failed changes
    FAILED = "failed"  # nothing could be synced (read, sign-in, target, every change failed)
    REFUSED = "refused"  # a safety check, a stale saved plan or a lock held by another run
    INTERRUPTED = "interrupted"  # SIGTERM or Ctrl-C stopped the run


_EXIT = {
    Outcome.NO_CHANGES: EXIT_OK,
    Outcome.CHANGES_PENDING: EXIT_OK,
    Outcome.SUCCESS: EXIT_OK,
    Outcome.PARTIAL: EXIT_ERROR,
    Outcome.FAILED: EXIT_ERROR,
    Outcome.REFUSED: EXIT_REFUSED,
    Outcome.INTERRUPTED: EXIT_ERROR,
}
FAILURES_NAMED = 3  # failed changes named in a policy's one-line error
# Worst first: an error anywhere gives 1, even next to a refusal.
_SEVERITY = (EXIT_ERROR, EXIT_REFUSED, EXIT_CHANGES, EXIT_OK)


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One policy's part of a run: what it planned, applied, and how it ended."""

    policy: str
    outcome: Outcome
    error: str | None = None  # one line, secrets masked; None for a clean outcome
    plan: PolicyPlan | None = None
    report: ApplyReport | None = None
    # How the run went, for metrics: None / 0 for a policy that ended before it started.
    started_at: datetime | None = None
    finished_at: datetime | None = None
    graph_requests: int = 0

    @property
    def succeeded(self) -> bool:
        return _EXIT[self.outcome] == EXIT_OK

    @property
    def duration_seconds(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    @property
    def error_count(self) -> int:
        """Objects not planned plus changes failed; a run that failed as a whole counts one."""
        count = self.object_errors + self.failed_changes
        return count or int(not self.succeeded and self.outcome is not Outcome.REFUSED)

    @property
    def object_errors(self) -> int:
        return 0 if self.plan is None else len(self.plan.errors)

    @property
    def failed_changes(self) -> int:
        return 0 if self.report is None else len(self.report.failed)

    def exit_code(self, *, detailed: bool = False) -> int:
        if (
            detailed
            and self.outcome is Outcome.CHANGES_PENDING
            and self.plan is not None
            and not self.plan.is_empty
        ):
            return EXIT_CHANGES
        return _EXIT[self.outcome]


def exit_code(results: list[PolicyResult], *, detailed: bool = False) -> int:
    """The worst per-policy exit code (0 for no policies)."""
    codes = {r.exit_code(detailed=detailed) for r in results}
    return next((code for code in _SEVERITY if code in codes), EXIT_OK)


def plan_outcome(plan: PolicyPlan) -> tuple[Outcome, str | None]:
    """How a finished plan ends: refused, with errors (partial), with changes, or none."""
    if plan.refused is not None:
        return Outcome.REFUSED, refusal_text(plan.refused.message)
    if plan.errors:
        return Outcome.PARTIAL, objects_not_planned(len(plan.errors))
    return (Outcome.NO_CHANGES if plan.is_empty else Outcome.CHANGES_PENDING), None


def apply_outcome(
    plan: PolicyPlan | None, report: ApplyReport | None
) -> tuple[Outcome, str | None]:
    """How an apply ends: success only when every object was planned and every change held."""
    problems: list[str] = []
    if plan is not None and plan.errors:
        problems.append(objects_not_planned(len(plan.errors)))
    applied = 0
    if report is not None:
        if report.aborted:
            problems.append(report.aborted)
        failed = report.failed
        applied = len(report.results) - len(failed)
        if failed:
            shown = "; ".join(
                f"{r.change.address}: {r.outcome.message or r.outcome.status.value}"
                for r in failed[:FAILURES_NAMED]
            )
            more = (
                f"; and {len(failed) - FAILURES_NAMED} more" if len(failed) > FAILURES_NAMED else ""
            )
            problems.append(f"{len(failed)} of {len(report.results)} changes failed: {shown}{more}")
    if not problems:
        if report is None or not report.results:
            return Outcome.NO_CHANGES, None
        return Outcome.SUCCESS, None
    return (Outcome.PARTIAL if applied else Outcome.FAILED), "; ".join(problems)


def refusal_text(message: str) -> str:
    return (
        f"Plan refused by a safety check: {message} (review the plan, then apply with "
        "--allow-mass-delete)"
    )


def objects_not_planned(count: int) -> str:
    noun = "object" if count == 1 else "objects"
    return f"{count} {noun} could not be planned and are not synced"


def summary_row(result: PolicyResult) -> dict[str, Any]:
    """One policy's line of the run summary, as plain data (JSON, text and markdown)."""
    counts: dict[str, int]
    if result.report is not None:
        counts = {k: v for k, v in result.report.counts.items() if v}
    elif result.plan is not None:
        counts = {k: v for k, v in result.plan.summary.items() if v}
    else:
        counts = {}
    return {
        "policy": result.policy,
        "outcome": result.outcome.value,
        "counts": counts,
        "errors": result.object_errors + result.failed_changes,
        "error": result.error,
    }
