"""``syncctl state show|list|migrate|recover`` and ``syncctl force-unlock`` (Terraform's
spelling), on every state backend. None of them prompts: they run in pipelines and pods.

``force-unlock`` is for a run that is gone, e.g. on a machine that vanished: automatic
recovery frees only locks whose holder is provably dead (a dead pid here, an ended database
session, an expired lease). The person who knows removes it by naming the policy and the
lock's id (as printed by the refused run and by ``syncctl status``), so a lock a new run took
since they looked is never the one removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from syncctl.cli.common import format_option, load
from syncctl.errors import SyncctlError
from syncctl.policy.model import Policy
from syncctl.state.backend import StateBackend
from syncctl.state.lock import LockInfo
from syncctl.state.store import State


def _find(policy: str, paths: tuple[Path, ...]) -> Policy:
    """POLICY is a policy name among PATHS (default policies/), or a policy file."""
    as_file = Path(policy)
    if as_file.suffix.lower() in (".yaml", ".yml"):
        if paths:
            raise click.UsageError("give POLICY as a name to look it up in PATHS, or as a file")
        found = load([as_file])
    else:
        found = [p for p in load(paths) if p.name == policy]
    if len(found) != 1:
        where = ", ".join(str(p) for p in paths) or "policies/"
        raise SyncctlError(f'no policy named "{policy}" in {where}')
    return found[0]


@contextmanager
def _backend(policy: Policy) -> Iterator[StateBackend]:
    from syncctl.state.backend import open_backend

    backend = open_backend(policy)
    try:
        yield backend
    finally:
        backend.close()


@dataclass(frozen=True, slots=True)
class StoredState:
    """What ``status`` and ``state list`` show of one policy."""

    policy: Policy
    backend: str
    location: str
    state: State | None  # None: the backend holds no state for it
    holder: LockInfo | None

    def common_fields(self) -> dict[str, Any]:
        return {
            "policy": self.policy.name,
            "locked_by": None if self.holder is None else self.holder.to_dict(),
        }


def read_states(paths: tuple[Path, ...]) -> list[StoredState]:
    """The state and lock holder of every policy in PATHS, in name order."""
    found = []
    for policy in sorted(load(paths), key=lambda p: p.name):
        with _backend(policy) as backend:
            found.append(
                StoredState(
                    policy, backend.kind, backend.location, backend.load(), backend.read_lock()
                )
            )
    return found


@click.group()
def state() -> None:
    """Inspect and manage the state syncctl keeps per policy, in any backend."""


@state.command("show")
@click.argument("policy", type=click.Path(path_type=Path))
def show(policy: Path) -> None:
    """Print the state document of POLICY (a policy file) as its backend holds it."""
    from syncctl.state.store import render_state

    found = _find(str(policy), ())
    with _backend(found) as backend:
        current = backend.load()
        if current is None:
            raise SyncctlError(f'policy "{found.name}": no state at {backend.location}')
        click.echo(render_state(current), nl=False)


@state.command("list")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@format_option("text", "json")
def list_states(paths: tuple[Path, ...], output_format: str) -> None:
    """Each policy in PATHS (default policies/): its backend, where the state is, how many
    objects it manages, its last run and who holds its lock."""
    rows = [
        {
            **found.common_fields(),
            "backend": found.backend,
            "location": found.location,
            "exists": found.state is not None,
            "managed": 0 if found.state is None else len(found.state.managed),
            "last_run": None
            if found.state is None or found.state.last_run is None
            else found.state.last_run.finished_at,
        }
        for found in read_states(paths)
    ]
    if output_format == "json":
        click.echo(json.dumps({"policies": rows}, indent=2, sort_keys=True))
        return
    for row in rows:
        click.echo(_list_line(row))


def _list_line(row: dict[str, Any]) -> str:
    if not row["exists"]:
        text = f"{row['policy']}: {row['backend']} {row['location']}: no state yet"
    else:
        text = (
            f"{row['policy']}: {row['backend']} {row['location']}: {row['managed']} managed, "
            f"last run {row['last_run'] or 'never'}"
        )
    if row["locked_by"] is not None:
        text += f"; locked by {row['locked_by']['holder']} (id {row['locked_by']['id']})"
    return text


@state.command("migrate")
@click.argument("policy", type=click.Path(path_type=Path))
@click.option(
    "--to-backend-of",
    "edited",
    required=True,
    type=click.Path(path_type=Path),
    help="The edited policy file that names the new backend (same name and tenant).",
)
def migrate(policy: Path, edited: Path) -> None:
    """Copy the state of POLICY (a policy file) into the backend that the edited policy file
    names, never over a newer state there. Run it before merging the edited policy."""
    from syncctl.state.migrate import migrate_state

    old, new = _find(str(policy), ()), _find(str(edited), ())
    if (old.name, old.tenant.id) != (new.name, new.tenant.id):
        raise SyncctlError(
            f'{edited}: names policy "{new.name}" of tenant {new.tenant.id}, not "{old.name}" '
            f"of tenant {old.tenant.id}: state is keyed by both"
        )
    with _backend(old) as source, _backend(new) as destination:
        done = migrate_state(source, destination, policy=old.name, ttl=old.state.lock_ttl)
        if done.already_there:
            click.echo(f'{destination.location} already holds this state of policy "{old.name}".')
            return
        click.echo(
            f'Copied the state of policy "{old.name}" ({len(done.state.managed)} managed '
            f"objects) from {source.location} to {destination.location}. The source is "
            "unchanged: remove it once the edited policy is merged."
        )


@state.command("recover")
@click.argument("policy", type=click.Path(path_type=Path))
def recover(policy: Path) -> None:
    """Re-claim the target objects of POLICY (a policy file) after its state was lost: those
    whose externalId is an object id of this tenant that no other policy's state claims (for
    SQLite: rows whose managed_by names this policy). Prints each and writes the state."""
    from syncctl.engine import PolicyRun

    found = _find(str(policy), ())
    run = PolicyRun(found, operation="recover")
    try:
        run.open()
        claims = run.recover()
    finally:
        run.close()
    for claim in claims:
        click.echo(f"claimed {claim.describe()}")
    click.echo(
        f'Policy "{found.name}": claimed {len(claims)} objects; the state now records '
        f"{len(run.state.managed) if run.state else 0} managed objects."
    )


@click.command("force-unlock")
@click.argument("policy")
@click.argument("lock_id")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, hidden=True, help="Accepted for compatibility.")
def force_unlock(policy: str, lock_id: str, paths: tuple[Path, ...], force: bool) -> None:
    """Remove the lock of POLICY (a name found in PATHS, default policies/, or a policy
    file) when its id is LOCK_ID. Only for a run that is gone, e.g. on a machine that
    vanished: the lock is what keeps two runs from writing the same target at once."""
    found = _find(policy, paths)
    with _backend(found) as backend:
        try:
            removed = backend.force_unlock(lock_id)
        except SyncctlError as exc:
            raise SyncctlError(f'policy "{found.name}": {exc}') from None
    click.echo(f'Removed the lock of policy "{found.name}" held by {removed.describe()}.')
