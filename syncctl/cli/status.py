"""``syncctl status``: the last run of each policy, its outcome and errors, and its lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from syncctl.cli.common import format_option


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@format_option("text", "json")
def status(paths: tuple[Path, ...], output_format: str) -> None:
    """The last run of each policy: when, what, outcome, counts, error; and who holds its lock."""
    from syncctl.cli.state import read_states

    rows = []
    for found in read_states(paths):
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
