"""``syncctl plan`` and ``show``: plan every policy (each its own unit of work), render, save.

What goes where: the plan on stdout, one line per failed policy on stderr (starting with the
policy's name), a per-policy summary table when several policies ran, and the exit code
that is the worst of the per-policy outcomes.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from syncctl.cli.common import format_option, load
from syncctl.cli.options import (
    MetricsOutput,
    PolicyProgress,
    echo_block,
    no_color_option,
    render,
    run_options,
)
from syncctl.cli.options import use_color as _use_color
from syncctl.errors import PlanFileError, SyncctlError
from syncctl.outcomes import Outcome, PolicyResult, exit_code, summary_row
from syncctl.plan.model import Plan, PolicyPlan
from syncctl.policy.model import Policy


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan.")
@format_option("text", "json", "markdown")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to change, 2 when there are changes.",
)
@click.option(
    "--trusted",
    type=click.Path(file_okay=False, path_type=Path),
    help="A checkout of the protected base branch: credentials are only used for policies "
    "whose credential-bearing fields match their copy there (pull-request plans).",
)
@run_options
@click.pass_context
def plan(
    ctx: click.Context,
    *,
    paths: tuple[Path, ...],
    out: Path | None,
    output_format: str,
    detailed_exitcode: bool,
    trusted: Path | None,
    no_color: bool,
    lock_timeout: float,
    concurrency: int,
    timeout: float,
    refresh: bool,
    metrics_file: Path | None,
) -> None:
    """Show what apply would change (PATHS: policy files or directories; default policies/).

    Each policy is planned on its own: one that fails (sign-in, Graph, target, lock) is
    reported and the others are planned. Exit 1 when any policy failed or has objects that
    could not be planned, 3 when one was refused (mass deletion, lock held), else 0 (2 with
    --detailed-exitcode when there are changes).
    """
    from syncctl import deadline
    from syncctl.batch import open_batch
    from syncctl.engine import PolicyRun, utc_now

    deadline.set_deadline(timeout)
    policies = load(paths)
    metrics = MetricsOutput(metrics_file, "plan")
    refused, policies = _check_trusted(policies, trusted)
    now = utc_now()
    runs = [PolicyRun(p, operation="plan", refresh=refresh) for p in policies]
    progress = PolicyProgress(len(runs), concurrency)

    def plan_one(run: PolicyRun) -> None:
        run.open(lock_timeout=lock_timeout, on_wait=progress.waiting(run.name, lock_timeout))
        try:
            run.make_plan(now=now, progress=progress.reading)
        finally:
            progress.notes(run.name, run.notes)
        result = run.finish_plan()
        progress.done(run.name, _planned_text(result))

    try:
        with open_batch(runs, concurrency=concurrency) as batch:
            try:
                batch.step(plan_one)
            finally:
                metrics.write([*batch.ended(), *refused])
    finally:
        progress.close()
    results = sorted([*batch.results(), *refused], key=lambda r: r.policy)
    debug_traces(ctx, batch.traces)
    live = planned((r.plan for r in results if r.outcome is not Outcome.FAILED), now)
    document = plan_document(live, policies, out)
    if out is not None and live.policies:
        _save(out, document)
    echo_block(render(document, output_format, _use_color(no_color)))
    report_failures(results)
    if len(results) > 1 and output_format != "json":
        echo_block(_summary(results, output_format))
    if out is not None and output_format == "text":
        click.echo(_saved_hint(out, live, results))
    ctx.exit(exit_code(results, detailed=detailed_exitcode))


def _planned_text(result: PolicyResult) -> str:
    if result.plan is None:
        return result.outcome.value
    changes = len(result.plan.changes)
    return f"planned, {changes} change{'s' if changes != 1 else ''} ({result.outcome.value})"


def _check_trusted(
    policies: list[Policy], trusted: Path | None
) -> tuple[list[PolicyResult], list[Policy]]:
    """Policies whose credential-bearing fields differ from the trusted copy are refused
    before any credential, secret or target is touched."""
    if trusted is None:
        return [], policies
    from syncctl.policy.trust import NO_TRUSTED_COPY, load_trusted, untrusted_fields

    vouched = load_trusted(trusted)
    refused: list[PolicyResult] = []
    allowed: list[Policy] = []
    for policy in policies:
        fields = untrusted_fields(policy, vouched)
        if not fields:
            allowed.append(policy)
            continue
        if fields == [NO_TRUSTED_COPY]:
            reason = f"there is no trusted copy of this policy in {trusted}"
        else:
            reason = f"{', '.join(fields)} differ(s) from the trusted copy in {trusted}"
        refused.append(
            PolicyResult(
                policy=policy.name,
                outcome=Outcome.REFUSED,
                error=f"refusing to use credentials: {reason}; plan this change after it is merged",
            )
        )
    return refused, allowed


def planned(plans: Iterable[PolicyPlan | None], now: datetime) -> Plan:
    """One plan document of the policies that got as far as a plan (refused ones included)."""
    from syncctl import __version__
    from syncctl.state.store import iso

    return Plan(
        policies=tuple(p for p in plans if p is not None),
        syncctl_version=__version__,
        created_at=iso(now),
    )


def plan_document(live: Plan, policies: Sequence[Policy], out: Path | None) -> dict[str, Any]:
    """The plan JSON; saved plans also record where each policy file is, relative to the
    plan file (and absolute as a fallback), so ``apply FILE`` works from any directory."""
    from syncctl.plan.planfile import plan_to_dict

    document = plan_to_dict(live)
    if out is None:
        return document
    files = {p.name: p.path for p in policies}
    plan_dir = Path(os.path.abspath(out)).parent
    for entry in document["policies"]:
        path = files.get(entry["name"])
        if path is not None:
            absolute = Path(os.path.abspath(path))
            entry["policy_file"] = {
                "relative": os.path.relpath(absolute, plan_dir),
                "absolute": str(absolute),
            }
    return document


def _save(out: Path, document: dict[str, Any]) -> None:
    from syncctl.fileio import write_text_atomic
    from syncctl.plan.planfile import dumps_dict

    try:
        write_text_atomic(out, dumps_dict(document))
    except OSError as exc:
        raise PlanFileError(f"{out}: cannot write the plan: {exc.strerror}") from None


def _saved_hint(out: Path, live: Plan, results: Sequence[PolicyResult]) -> str:
    if not live.policies:
        return f"Nothing was saved to {out}: no policy could be planned."
    command = f"syncctl apply {shlex.quote(str(out))}"
    errors = sum(r.object_errors for r in results)
    note = f" ({errors} objects with errors are not in it)" if errors else ""
    if live.refused:
        return (
            f"Saved the plan to {out}{note}. A safety check refused it: review every deletion "
            f"and disable, then apply it with:\n{command} --allow-mass-delete"
        )
    return f"Saved the plan to {out}{note}. Apply exactly this plan with:\n{command}"


def _summary(results: Sequence[PolicyResult], output_format: str) -> str:
    from syncctl.render import summary

    rows = [summary_row(r) for r in results]
    return summary.markdown(rows) if output_format == "markdown" else "\n" + summary.text(rows)


def report_failures(results: Sequence[PolicyResult]) -> None:
    """One stderr line per policy that did not end cleanly, starting with its name."""
    for result in results:
        if result.error is None:
            continue
        word = "refused" if result.outcome is Outcome.REFUSED else "error"
        click.echo(f"{result.policy}: {word}: {result.error}", err=True)


def debug_traces(ctx: click.Context, traces: dict[str, str]) -> None:
    """Tracebacks of unexpected errors in policy threads, with --debug only."""
    if not traces:
        return
    root = ctx.find_root()
    if (root.obj or {}).get("debug"):
        for name in sorted(traces):
            click.echo(f"{name}: {traces[name]}", err=True)


# -- show --------------------------------------------------------------------------------


@click.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@format_option("text", "json", "markdown")
@no_color_option
def show(planfile: Path, output_format: str, no_color: bool) -> None:
    """Render a saved plan file."""
    document = read_plan_file(planfile)
    echo_block(render(document, output_format, _use_color(no_color)))


def read_plan_file(path: Path) -> dict[str, Any]:
    from syncctl.plan.planfile import loads

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"{path}: cannot read plan file: {exc}") from None
    try:
        return loads(text)
    except SyncctlError as exc:
        located = SyncctlError(f"{path}: {exc}")
        located.exit_code = exc.exit_code  # a modified plan stays a refusal (3)
        raise located from None
