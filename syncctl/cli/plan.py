"""``syncctl plan``, ``apply``, ``show`` and ``status``: parse options, call the engine, render.

Everything of substance lives in ``syncctl.engine``; this module decides what goes to stdout
(the plan, outcomes), stderr (progress on a terminal, the prompt's context) and the exit code.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from syncctl.cli.common import format_option, load, source_progress
from syncctl.errors import EXIT_CHANGES, ApplyFailed, PlanFileError, SyncctlError
from syncctl.plan.model import Plan

PROMPT = "Apply these changes? Only 'yes' is accepted:"
FAILURES_LISTED = 10

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Duration(click.ParamType[float, Any]):
    """``30``, ``30s``, ``5m``, ``1h`` (Terraform's -lock-timeout spelling) -> seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a duration (e.g. 30s, 5m, 1h)", param, ctx)
        return float(match[1]) * _UNIT_SECONDS[match[2]]


def _lock_timeout_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--lock-timeout",
        type=Duration(),
        default="0s",
        show_default=True,
        help="How long to wait for another run of the same policy to finish (e.g. 30s, 5m).",
    )(func)


def _no_color_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--no-color", is_flag=True, help="Never colour the output.")(func)


def _use_color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def _render(document: dict[str, Any], output_format: str, color: bool) -> str:
    if output_format == "json":
        from syncctl.render import json as render_json

        return render_json.render(document)
    if output_format == "markdown":
        from syncctl.render import markdown as render_markdown

        return render_markdown.render(document)
    from syncctl.render import text as render_text

    return render_text.render(document, color=color)


def _echo_block(text: str) -> None:
    click.echo(text, nl=not text.endswith("\n"))


# -- plan --------------------------------------------------------------------------------


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan.")
@format_option("text", "json", "markdown")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to change, 2 when there are changes.",
)
@_no_color_option
@_lock_timeout_option
@click.pass_context
def plan(
    ctx: click.Context,
    *,
    paths: tuple[Path, ...],
    out: Path | None,
    output_format: str,
    detailed_exitcode: bool,
    no_color: bool,
    lock_timeout: float,
) -> None:
    """Show what apply would change (PATHS: policy files or directories; default policies/).

    A plan refused by a safety check (mass deletion) is shown, saved with -o if asked, and
    exits 3.
    """
    from syncctl.engine import check_refusals, open_session
    from syncctl.fileio import write_text_atomic
    from syncctl.plan.planfile import dumps_dict, plan_to_dict

    policies = load(paths)
    with open_session(policies, operation="plan", lock_timeout=lock_timeout) as session:
        with source_progress() as progress:
            live = session.plan(progress=progress)
        session.record_plan(live)
    document = plan_to_dict(live)
    if out is not None:
        try:
            write_text_atomic(out, dumps_dict(document))
        except OSError as exc:
            raise PlanFileError(f"{out}: cannot write the plan: {exc.strerror}") from None
    _echo_block(_render(document, output_format, _use_color(no_color)))
    if out is not None and output_format == "text":
        click.echo(f"Saved the plan to {out}. Apply exactly this plan with: syncctl apply {out}")
    check_refusals(live, allow_mass_delete=False)
    if detailed_exitcode and not live.is_empty:
        ctx.exit(EXIT_CHANGES)


# -- apply -------------------------------------------------------------------------------


def _is_plan_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() not in (".yaml", ".yml")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option(
    "--allow-mass-delete",
    is_flag=True,
    help="Apply even when the plan exceeds max_deletes / max_disables.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1, max=64),
    default=8,
    show_default=True,
    help="Batches written at once, for targets that allow it.",
)
@format_option("text", "json")
@_no_color_option
@_lock_timeout_option
def apply(
    *,
    paths: tuple[Path, ...],
    auto_approve: bool,
    allow_mass_delete: bool,
    parallelism: int,
    output_format: str,
    no_color: bool,
    lock_timeout: float,
) -> None:
    """Make the targets match the policies.

    With a saved plan file (from plan -o) as the first PATH, apply exactly that plan after
    checking it is not stale; the policies it names are looked up in the remaining PATHS
    (default policies/). Otherwise plan PATHS, show the plan and ask for confirmation.
    """
    from syncctl.engine import (
        check_refusals,
        open_session,
        saved_policies,
        select_saved,
    )
    from syncctl.plan.planfile import loads, plan_to_dict

    color = _use_color(no_color)
    saved: dict[str, Any] | None = None
    if paths and _is_plan_file(paths[0]):
        saved = _read_plan_file(paths[0], loads)
        check_refusals(saved, allow_mass_delete=allow_mass_delete)
        policies = saved_policies(saved, load(paths[1:]))
    else:
        policies = load(paths)

    with open_session(policies, operation="apply", lock_timeout=lock_timeout) as session:
        with source_progress() as progress:
            live = session.plan(progress=progress)
        selection = None
        if saved is not None:
            selection = select_saved(saved, live)
        else:
            document = plan_to_dict(live)
            if output_format == "text":
                _echo_block(_render(document, "text", color))
            check_refusals(live, allow_mass_delete=allow_mass_delete)
            if live.is_empty:
                session.record_plan(live)
                _report_nothing(output_format, document)
                return
            if not auto_approve:
                _confirm()
        result = session.apply(
            live, selection=selection, parallelism=parallelism, progress=_apply_progress()
        )
    if output_format == "json":
        click.echo(json.dumps(_result_document(result, live), indent=2, sort_keys=True))
    else:
        _print_outcomes(result, color)
    if result.failed:
        raise ApplyFailed(_failure_summary(result))


def _read_plan_file(path: Path, loads: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SyncctlError(f"{path}: cannot read plan file: {exc}") from None
    try:
        return loads(text)
    except SyncctlError as exc:
        raise SyncctlError(f"{path}: {exc}") from None


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise SyncctlError(
            "refusing to ask for confirmation without a terminal: review the plan and re-run "
            "with --auto-approve, or save it with plan -o FILE and apply that file"
        )
    answer = click.prompt(PROMPT, default="", show_default=False, prompt_suffix=" ", err=True)
    if answer.strip() != "yes":
        raise SyncctlError("Apply cancelled: only 'yes' is accepted")


def _apply_progress() -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rapplying: {done}/{total} changes{end}")
        sys.stderr.flush()

    return show


def _report_nothing(output_format: str, document: dict[str, Any]) -> None:
    if output_format == "json":
        click.echo(
            json.dumps(
                {"format_version": "1", "kind": "syncctl-apply", "policies": [], "plan": document},
                indent=2,
                sort_keys=True,
            )
        )
    else:
        click.echo("Nothing to apply.")


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


def _print_outcomes(result: Any, color: bool) -> None:
    from syncctl.targets.base import OutcomeStatus

    paint: dict[OutcomeStatus, str] = {
        OutcomeStatus.APPLIED: "\x1b[32m",
        OutcomeStatus.UNCHANGED: "",
        OutcomeStatus.FAILED: "\x1b[31m",
        OutcomeStatus.STALE: "\x1b[31m",
    }
    totals = {s.value: 0 for s in OutcomeStatus}
    for report in result.reports:
        for item in report.results:
            status = item.outcome.status
            totals[status.value] += 1
            action = item.change.action.value
            if status is OutcomeStatus.APPLIED:
                word = _PAST[action]
            elif status is OutcomeStatus.UNCHANGED:
                word = f"already {_PAST[action]}"
            else:
                word = f"{status.value} ({action}): {item.outcome.message or 'no detail'}"
            line = f"{report.policy}: {item.change.address}: {word}"
            if color and paint[status]:
                line = f"{paint[status]}{line}\x1b[0m"
            click.echo(line)
    click.echo(
        f"\nApply complete: {totals['applied']} applied, {totals['unchanged']} already in "
        f"place, {totals['failed']} failed, {totals['stale']} stale."
    )


def _result_document(result: Any, live: Plan) -> dict[str, Any]:
    policies = []
    totals: dict[str, int] = {}
    for report in result.reports:
        for status, n in report.counts.items():
            totals[status] = totals.get(status, 0) + n
        policies.append(
            {
                "name": report.policy,
                "aborted": report.aborted,
                "counts": report.counts,
                "outcomes": [
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
        "created_at": live.created_at,
        "policies": policies,
        "summary": {k: totals[k] for k in sorted(totals)},
    }


def _failure_summary(result: Any) -> str:
    failed = [(r.change.address, r.outcome.message) for rep in result.reports for r in rep.failed]
    shown = "; ".join(f"{address}: {message}" for address, message in failed[:FAILURES_LISTED])
    more = f"; and {len(failed) - FAILURES_LISTED} more" if len(failed) > FAILURES_LISTED else ""
    total = sum(len(rep.results) for rep in result.reports)
    return f"{len(failed)} of {total} changes failed: {shown}{more}"


# -- show --------------------------------------------------------------------------------


@click.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@format_option("text", "json", "markdown")
@_no_color_option
def show(planfile: Path, output_format: str, no_color: bool) -> None:
    """Render a saved plan file."""
    from syncctl.plan.planfile import loads

    document = _read_plan_file(planfile, loads)
    _echo_block(_render(document, output_format, _use_color(no_color)))


# -- status ------------------------------------------------------------------------------


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@format_option("text", "json")
def status(paths: tuple[Path, ...], output_format: str) -> None:
    """The last run of each policy: when, what, outcome, counts, error; and who holds its lock."""
    from syncctl.state import load_state, lock_path_for, read_lock

    rows = []
    for policy in sorted(load(paths), key=lambda p: p.name):
        state = load_state(policy.state.path, policy.name)
        holder = read_lock(lock_path_for(policy.state.path))
        rows.append(
            {
                "policy": policy.name,
                "state": str(policy.state.path),
                "managed": len(state.managed),
                "last_run": None if state.last_run is None else state.last_run.to_dict(),
                "last_apply": None if state.last_apply is None else state.last_apply.to_dict(),
                "locked_by": None if holder is None else holder.to_dict(),
            }
        )
    if output_format == "json":
        click.echo(json.dumps({"policies": rows}, indent=2, sort_keys=True))
        return
    for row in rows:
        click.echo(_status_line(row))


def _status_line(row: dict[str, Any]) -> str:
    run, applied = row["last_run"], row["last_apply"]
    if run is None:
        text = f'policy "{row["policy"]}": never run'
    else:
        text = f'policy "{row["policy"]}": last {_run_text(run)}'
        if applied is not None and applied != run:
            text += f"; last {_run_text(applied)}"
    text += f"; {row['managed']} managed objects"
    if row["locked_by"] is not None:
        lock = row["locked_by"]
        text += f"; locked by {lock['holder']} (pid {lock['pid']}, {lock['operation']})"
    return text


def _run_text(run: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(run["counts"].items()) if v)
    text = f"{run['operation']} {run['finished_at']}: {run['outcome']}"
    if counts:
        text += f" ({counts})"
    if run["error"]:
        text += f", error: {run['error']}"
    return text
