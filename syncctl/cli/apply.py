"""``syncctl apply``: plan and apply every policy, each its own unit of work.

With a saved plan file, apply exactly that plan, policy by policy: each is re-planned under
its lock, its saved changes must still be what a fresh plan would do (else it is stale), and
the safety checks run on exactly the changes about to be applied.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from syncctl.cli.common import format_option, load
from syncctl.cli.options import (
    MetricsOutput,
    PolicyProgress,
    audit_log_option,
    echo_block,
    open_audit,
    render,
    run_options,
    use_color,
    write_options,
)
from syncctl.cli.plan import debug_traces, planned, read_plan_file, report_failures
from syncctl.engine import PolicyRun, utc_now
from syncctl.errors import EXIT_REFUSED, SyncctlError
from syncctl.outcomes import Outcome, PolicyResult, exit_code, refusal_text, summary_row
from syncctl.plan.model import Change
from syncctl.policy.model import Policy

if TYPE_CHECKING:
    from syncctl.audit import AuditLog

PROMPT = "Apply these changes? Only 'yes' is accepted:"

_PAST = {
    "create": "created",
    "update": "updated",
    "disable": "disabled",
    "enable": "enabled",
    "delete": "deleted",
    "adopt": "adopted",
    "add": "added",
    "remove": "removed",
}


def _is_plan_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() not in (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class ApplySettings:
    """How ``apply`` and each cycle of ``watch`` run."""

    allow_mass_delete: bool = False
    parallelism: int = 8
    lock_timeout: float = 0.0
    concurrency: int = 4
    refresh: bool = False


# Called once every policy is planned, before anything is applied: show the plan, confirm.
Review = Callable[[Sequence[PolicyRun], datetime], None]


@dataclass(frozen=True, slots=True)
class ApplyRun:
    results: list[PolicyResult]  # per policy, sorted by name
    traces: dict[str, str]  # policy -> traceback of an unexpected error (--debug)


def apply_policies(
    policies: Sequence[Policy],
    settings: ApplySettings,
    *,
    audit: AuditLog,
    metrics: MetricsOutput,
    saved: Mapping[str, Any] | None = None,
    early: Sequence[PolicyResult] = (),
    review: Review | None = None,
) -> ApplyRun:
    """Plan every policy under its lock, refuse what the safety checks refuse (unless
    allowed), then apply the rest, each policy its own unit of work. With ``saved``, apply
    exactly those changes (after checking they are not stale). Metrics are written however
    the run ends; audit lines as each phase is journalled."""
    from syncctl.batch import open_batch

    runs = [PolicyRun(p, operation="apply", refresh=settings.refresh) for p in policies]
    progress = PolicyProgress(len(runs), settings.concurrency)
    now = utc_now()
    selected: dict[str, tuple[Change, ...]] = {}

    def plan_one(run: PolicyRun) -> None:
        run.open(
            lock_timeout=settings.lock_timeout,
            on_wait=progress.waiting(run.name, settings.lock_timeout),
        )
        try:
            run.make_plan(now=now, progress=progress.reading)
        finally:
            progress.notes(run.name, run.notes)
        assert run.plan is not None
        progress.done(run.name, "planned")
        if saved is None:
            selected[run.name] = run.plan.changes
            refusal = run.plan.refused
        else:
            from syncctl.saved import select_saved_changes, selection_refusal

            entry = _entry(saved, run.name)
            selected[run.name] = select_saved_changes(entry, run.plan)
            refusal = selection_refusal(run.policy, run.plan, selected[run.name])
        if refusal is not None and not settings.allow_mass_delete:
            run.finish(Outcome.REFUSED, refusal_text(refusal.message))
        elif not selected[run.name]:
            run.finish_apply()

    def apply_one(run: PolicyRun) -> None:
        run.apply(
            selected[run.name],
            parallelism=settings.parallelism,
            progress=_apply_progress(len(runs)),
            should_stop=batch.should_stop,
            on_results=audit.recorder(run.policy),
        )
        if batch.stopping.is_set():
            run.finish(Outcome.INTERRUPTED, batch.stop_reason)
        else:
            run.finish_apply()

    try:
        with open_batch(runs, concurrency=settings.concurrency) as batch:
            try:
                batch.step(plan_one)
                progress.close()
                if review is not None:
                    review(batch.runs, now)
                batch.step(apply_one, writes=True)
            finally:
                metrics.write([*batch.ended(), *early])
    finally:
        progress.close()
    results = sorted([*batch.results(), *early], key=lambda r: r.policy)
    return ApplyRun(results, dict(batch.traces))


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@write_options
@audit_log_option
@format_option("text", "json", "jsonl")
@run_options
@click.pass_context
def apply(
    ctx: click.Context,
    *,
    paths: tuple[Path, ...],
    auto_approve: bool,
    allow_mass_delete: bool,
    parallelism: int,
    audit_log: Path | None,
    output_format: str,
    no_color: bool,
    lock_timeout: float,
    concurrency: int,
    timeout: float,
    refresh: bool,
    metrics_file: Path | None,
) -> None:
    """Make the targets match the policies.

    With a saved plan file (from plan -o) as the first PATH, apply exactly that plan after
    checking it is not stale; its policies are found where the plan recorded them, or in the
    remaining PATHS when given. Otherwise plan PATHS (default policies/), show the plan and
    ask for confirmation. Every valid change is applied; exit 1 when any policy failed or any
    object or change had an error, 3 when a policy was refused. --format jsonl prints the
    audit lines (one JSON line per change attempted) on stdout instead of the text.
    """
    from syncctl import deadline

    deadline.set_deadline(timeout)
    color = use_color(no_color)
    saved: dict[str, Any] | None = None
    early: list[PolicyResult] = []
    if paths and _is_plan_file(paths[0]):
        saved = read_plan_file(paths[0])
        early, policies = _saved_policies(saved, paths[0], paths[1:])
    else:
        policies = load(paths)
    metrics = MetricsOutput(metrics_file, "apply")
    audit = open_audit(policies, audit_log, to_stdout=output_format == "jsonl")

    def review(runs: Sequence[PolicyRun], now: datetime) -> None:
        asking = saved is None and not auto_approve and any(r.result is None for r in runs)
        if saved is None and (output_format == "text" or asking):
            # The plan goes where a person reads it: stdout for text, stderr otherwise.
            echo_block(render(_document(runs, now), "text", color), err=output_format != "text")
        if asking:
            _confirm()
            deadline.set_deadline(timeout)  # the time a person took to answer is not the run's

    settings = ApplySettings(
        allow_mass_delete=allow_mass_delete,
        parallelism=parallelism,
        lock_timeout=lock_timeout,
        concurrency=concurrency,
        refresh=refresh,
    )
    try:
        done = apply_policies(
            policies,
            settings,
            audit=audit,
            metrics=metrics,
            saved=saved,
            early=early,
            review=review,
        )
    finally:
        audit.close()
    results = done.results
    debug_traces(ctx, done.traces)
    if output_format == "json":
        click.echo(json.dumps(_result_document(results, utc_now()), indent=2, sort_keys=True))
    elif output_format == "text":
        _print_outcomes(results, color)
    report_failures(results)
    if len(results) > 1 and output_format == "text":
        from syncctl.render import summary

        echo_block("\n" + summary.text([summary_row(r) for r in results]))
    ctx.exit(exit_code(results))


def _document(runs: Sequence[PolicyRun], now: datetime) -> dict[str, Any]:
    from syncctl.plan.planfile import plan_to_dict

    return plan_to_dict(planned((r.plan for r in runs), now))


def _entry(saved: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for entry in saved.get("policies", []):
        if entry.get("name") == name:
            return dict(entry)
    raise SyncctlError(f'the saved plan has no policy "{name}"')


def _saved_policies(
    saved: Mapping[str, Any], plan_file: Path, paths: Sequence[Path]
) -> tuple[list[PolicyResult], list[Policy]]:
    """The policies a saved plan names. One that cannot be found, or whose file changed,
    ends right here (failed or refused); the others go on."""
    from syncctl.saved import saved_policy

    given = {p.name: p for p in load(paths)} if paths else None
    ended: list[PolicyResult] = []
    chosen: list[Policy] = []
    for entry in saved.get("policies", []):
        name = str(entry.get("name"))
        try:
            chosen.append(saved_policy(entry, given=given, plan_file=plan_file))
        except SyncctlError as exc:
            outcome = Outcome.REFUSED if exc.exit_code == EXIT_REFUSED else Outcome.FAILED
            ended.append(PolicyResult(name, outcome, error=str(exc).replace("\n", "; ")))
    return ended, chosen


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise SyncctlError(
            "refusing to ask for confirmation without a terminal: review the plan and re-run "
            "with --auto-approve, or save it with plan -o FILE and apply that file"
        )
    answer = click.prompt(PROMPT, default="", show_default=False, prompt_suffix=" ", err=True)
    if answer.strip() != "yes":
        raise SyncctlError("Apply cancelled: only 'yes' is accepted")


def _apply_progress(policies: int) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty() or policies > 1:
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rapplying: {done}/{total} changes{end}")
        sys.stderr.flush()

    return show


def _print_outcomes(results: Sequence[PolicyResult], color: bool) -> None:
    from syncctl.targets.base import OutcomeStatus

    paint: dict[OutcomeStatus, str] = {
        OutcomeStatus.APPLIED: "\x1b[32m",
        OutcomeStatus.UNCHANGED: "",
        OutcomeStatus.FAILED: "\x1b[31m",
        OutcomeStatus.STALE: "\x1b[31m",
    }
    totals = {s.value: 0 for s in OutcomeStatus}
    for result in results:
        if result.report is None:
            continue
        for item in result.report.results:
            status = item.outcome.status
            totals[status.value] += 1
            action = item.change.action.value
            if status is OutcomeStatus.APPLIED:
                word = _PAST[action]
            elif status is OutcomeStatus.UNCHANGED:
                word = f"already {_PAST[action]}"
            else:
                word = f"{status.value} ({action}): {item.outcome.message or 'no detail'}"
            line = f"{result.policy}: {item.change.address}: {word}"
            if color and paint[status]:
                line = f"{paint[status]}{line}\x1b[0m"
            click.echo(line)
    if not any(r.report is not None and r.report.results for r in results):
        click.echo("Nothing to apply.")
        return
    click.echo(
        f"\nApply complete: {totals['applied']} applied, {totals['unchanged']} already in "
        f"place, {totals['failed']} failed, {totals['stale']} stale."
    )


def _result_document(results: Sequence[PolicyResult], now: Any) -> dict[str, Any]:
    from syncctl.state.store import iso

    policies = []
    totals: dict[str, int] = {}
    for result in results:
        report = result.report
        counts = report.counts if report is not None else {}
        for status, n in counts.items():
            totals[status] = totals.get(status, 0) + n
        policies.append(
            {
                **summary_row(result),
                "name": result.policy,
                "aborted": None if report is None else report.aborted,
                "counts": counts,
                "outcomes": []
                if report is None
                else [
                    {
                        "address": r.change.address,
                        "kind": r.change.kind.value,
                        "action": r.change.action.value,
                        "status": r.outcome.status.value,
                        "target_id": r.outcome.target_id,
                        "message": r.outcome.message,
                    }
                    for r in report.results
                ],
            }
        )
    return {
        "format_version": "1",
        "kind": "syncctl-apply",
        "created_at": iso(now),
        "policies": policies,
        "summary": {k: totals[k] for k in sorted(totals)},
    }
