"""``syncctl force-unlock``: remove a policy's lock whose holder is gone (Terraform's spelling).

Automatic recovery only frees locks whose holder is provably dead on this host, or older
than ``state.lock_ttl``; a run on another machine that vanished leaves a lock nobody here can
check. The person who knows it is gone removes it by naming the policy and the lock's id (as
printed by the refused run and by ``syncctl status``), so a lock taken by a new run since
they looked is never the one removed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from syncctl.cli.common import load
from syncctl.errors import SyncctlError
from syncctl.policy.model import Policy

PROMPT = "Remove this lock? Only 'yes' is accepted:"


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


@click.command("force-unlock")
@click.argument("policy")
@click.argument("lock_id")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
def force_unlock(policy: str, lock_id: str, paths: tuple[Path, ...], force: bool) -> None:
    """Remove the lock of POLICY (a name found in PATHS, default policies/, or a policy
    file) when its id is LOCK_ID. Only for a run that is gone, e.g. on a machine that
    vanished: the lock is what keeps two runs from writing the same target at once."""
    from syncctl.state import Holder, held_lock, holder_status
    from syncctl.state import force_unlock as remove_lock

    found = _find(policy, paths)
    try:
        holder = held_lock(found.state.path, lock_id)
    except SyncctlError as exc:
        raise SyncctlError(f'policy "{found.name}": {exc}') from None
    if not force:
        if not sys.stdin.isatty():
            raise SyncctlError(
                "refusing to ask for confirmation without a terminal: re-run with --force"
            )
        running = holder_status(holder) is Holder.RUNNING
        click.echo(
            f'policy "{found.name}" is locked by {holder.describe()}'
            + ("; that process is still running on this host" if running else ""),
            err=True,
        )
        answer = click.prompt(PROMPT, default="", show_default=False, prompt_suffix=" ", err=True)
        if answer.strip() != "yes":
            raise SyncctlError("force-unlock cancelled: only 'yes' is accepted")
    removed = remove_lock(found.state.path, lock_id)
    click.echo(f'Removed the lock of policy "{found.name}" held by {removed.describe()}.')
