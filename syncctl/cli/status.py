"""``syncctl status``: the last run of each policy, its outcome and errors, and its lock; with
``--check``, whether each policy can reach Entra and its target right now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from syncctl.cli.common import format_option
from syncctl.errors import EXIT_ERROR, EXIT_OK


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@format_option("text", "json")
@click.option(
    "--check",
    "check",
    is_flag=True,
    help="Also sign in to Entra and reach each target, and say per policy: connected, "
    "unauthorized, forbidden or unreachable. Exit 1 unless all are connected.",
)
@click.pass_context
def status(ctx: click.Context, paths: tuple[Path, ...], output_format: str, check: bool) -> None:
    """The last run of each policy: when, what, outcome, counts, error; and who holds its lock.

    Reads only the state (no sign-in) unless --check is given. PATHS are policy files or
    directories (default: policies/)."""
    from syncctl.cli.state import read_states

    found_states = read_states(paths)
    rows = []
    for found in found_states:
        state = found.state
        rows.append(
            {
                **found.common_fields(),
                "state": found.location,
                "managed": 0 if state is None else len(state.managed),
                "last_run": None
                if state is None or state.last_run is None
                else state.last_run.to_dict(),
                "last_apply": None
                if state is None or state.last_apply is None
                else state.last_apply.to_dict(),
            }
        )
    checks = None
    if check:
        from syncctl.connectivity import check_connections

        checks = check_connections([found.policy for found in found_states])
        for row, result in zip(rows, checks, strict=True):
            row["connection"] = result.as_dict()
    if output_format == "json":
        click.echo(json.dumps({"policies": rows}, indent=2, sort_keys=True))
    else:
        for row in rows:
            click.echo(_status_line(row))
    if checks is not None:
        ctx.exit(EXIT_OK if all(result.connected for result in checks) else EXIT_ERROR)


def _status_line(row: dict[str, Any]) -> str:
    run, applied = row["last_run"], row["last_apply"]
    text = f'policy "{row["policy"]}": '
    if "connection" in row:
        text += _connection_text(row["connection"]) + "; "
    if run is None:
        text += "never run"
    else:
        text += f"last {_run_text(run)}"
        if applied is not None and applied != run:
            text += f"; last {_run_text(applied)}"
    text += f"; {row['managed']} managed objects"
    if row["locked_by"] is not None:
        lock = row["locked_by"]
        text += (
            f"; locked by {lock['holder']} (pid {lock['pid']}, {lock['operation']} since "
            f"{lock['created']}, id {lock['id']})"
        )
    return text


def _run_text(run: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(run["counts"].items()) if v)
    text = f"{run['operation']} {run['finished_at']}: {run['outcome']}"
    if counts:
        text += f" ({counts})"
    if run.get("errors"):
        text += f", {run['errors']} errors"
    if run["error"]:
        text += f", error: {run['error']}"
    return text


def _connection_text(connection: dict[str, Any]) -> str:
    """``connected``, or the status with the side at fault and why (the other side too when
    both failed); a connected policy shows only what could not be checked."""
    sides = [(name, connection[name]) for name in ("source", "target")]
    if connection["status"] == "connected":
        unchecked = connection["unchecked"]
        return f"connected ({'; '.join(unchecked)})" if unchecked else "connected"
    failed = [f"{name}: {side['detail']}" for name, side in sides if name == connection["side"]]
    failed += [
        f"{name} {side['status']}: {side['detail']}"
        for name, side in sides
        if name != connection["side"] and side["status"] != "connected"
    ]
    return f"{connection['status']}: " + "; ".join(failed)
