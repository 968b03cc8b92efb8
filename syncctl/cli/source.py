"""``syncctl export`` and ``syncctl search``: reading Entra for people writing policies."""

from __future__ import annotations

import json
from pathlib import Path

import click

from syncctl.cli.common import format_option, load, source_progress
from syncctl.source.search import DirectoryEntry

COLUMNS = ("Name", "Type", "Department", "Description", "Object id")


@click.command()
@click.argument("path", type=click.Path(exists=True), default="policies")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="Snapshot file to write (JSON, schemas/snapshot.schema.json).",
)
def export(path: str, output: str) -> None:
    """Write the policy's slice of Entra (users, groups, memberships) as a snapshot file that
    a policy can read offline with `tenant.snapshot`."""
    from syncctl.source import read_tenant_slice, write_snapshot

    policies = load([Path(path)])
    if len(policies) > 1:
        names = ", ".join(p.name for p in policies)
        raise click.UsageError(f"{path} holds {len(policies)} policies ({names}); name one file")
    with source_progress() as progress:
        # Raises on any incomplete read: then no file is written (nor an old one replaced).
        tenant_slice = read_tenant_slice(policies[0], progress=progress)
    snapshot = tenant_slice.snapshot
    write_snapshot(snapshot, Path(output), tenant_id=tenant_slice.tenant_id)
    click.echo(
        f"Wrote {output}: {len(snapshot.users)} users, {len(snapshot.groups)} groups "
        f"(policy {policies[0].name}).",
        err=True,
    )


@click.command()
@click.argument("path", type=click.Path(exists=True), default="policies")
@click.argument("term", default="")
@format_option("text", "json")
def search(path: str, term: str, output_format: str) -> None:
    """List Entra users and groups whose name matches TERM (empty: all), to find the names
    and object ids for scope_groups and groups."""
    from syncctl.source.search import search_policy

    seen: set[tuple[str, str]] = set()
    results: list[tuple[str, list[DirectoryEntry]]] = []
    for policy in load([Path(path)]):
        # Policies reading the same tenant the same way would print the same rows.
        key = (policy.tenant.id, str(policy.tenant.snapshot or ""))
        if key in seen:
            continue
        seen.add(key)
        with source_progress() as progress:
            results.append((policy.tenant.id, search_policy(policy, term, progress=progress)))
    if output_format == "json":
        rows = [{"tenant": t, **e.as_json()} for t, entries in results for e in entries]
        click.echo(json.dumps(rows, indent=2, sort_keys=True, ensure_ascii=False))
        return
    for index, (tenant, entries) in enumerate(results):
        if len(results) > 1:
            click.echo(("\n" if index else "") + f"# tenant {tenant}")
        click.echo(render_table(entries))


def render_table(entries: list[DirectoryEntry]) -> str:
    rows = [COLUMNS] + [(e.name, e.type, e.department, e.description, e.id) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    if not entries:
        lines.append("(no matches)")
    return "\n".join(lines)
