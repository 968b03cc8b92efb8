"""``syncctl login`` and ``syncctl logout``: the administrator's sign-in for policies whose
``tenant.credential`` is ``interactive``, cached per (tenant, client id) and shared by every
policy naming that pair; other commands use it silently and never prompt."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from syncctl.cli.common import load
from syncctl.cli.options import Duration
from syncctl.policy.model import InteractiveCredential, Policy


def _interactive_groups(paths: Sequence[Path]) -> dict[tuple[str, str], list[Policy]]:
    """The interactive policies of PATHS by (tenant, client id), in the order found; every
    other policy is named as skipped, on stderr."""
    groups: dict[tuple[str, str], list[Policy]] = {}
    for policy in load(paths):
        credential = policy.tenant.credential
        if not isinstance(credential, InteractiveCredential):
            kind = (
                "snapshot (offline)"
                if policy.tenant.snapshot is not None and credential is None
                else type(credential).__name__.removesuffix("Credential").lower()
            )
            click.echo(
                f'skipping policy "{policy.name}": it signs in with {kind}, not interactively',
                err=True,
            )
            continue
        assert policy.tenant.client_id is not None  # required by the loader for interactive
        groups.setdefault((policy.tenant.id, policy.tenant.client_id), []).append(policy)
    if not groups:
        raise click.UsageError(
            "no policy there signs in interactively (tenant.credential: {interactive: {}})"
        )
    return groups


def _names(policies: Sequence[Policy]) -> str:
    label = "policy" if len(policies) == 1 else "policies"
    return f"{label} {', '.join(p.name for p in policies)}"


def _say(line: str) -> None:
    # At once, whether stderr is a terminal, a pipe or a CI log: the person is waiting on it.
    click.echo(line, err=True)
    sys.stderr.flush()


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--browser",
    is_flag=True,
    help="Sign in with a browser on this machine (authorization code with PKCE and a "
    "localhost redirect) instead of a device code.",
)
@click.option(
    "--timeout",
    type=Duration(),
    default="15m",
    show_default=True,
    help="How long to wait for the sign-in to be completed.",
)
def login(paths: tuple[Path, ...], browser: bool, timeout: float) -> None:
    """Sign in as yourself for the interactive policies in PATHS (default policies/): shows
    a code to enter at Microsoft's device login page (works over SSH and in containers), or
    opens a browser with --browser. The sign-in is cached for later runs."""
    from syncctl.source import permissions
    from syncctl.source.interactive import sign_in

    for (tenant_id, _client), policies in _interactive_groups(paths).items():
        scopes = dict.fromkeys(s for p in policies for s in permissions.delegated_scopes(p))
        signed_in = sign_in(
            policies[0].tenant, browser=browser, say=_say, scopes=tuple(scopes), timeout=timeout
        )
        click.echo(
            f"signed in as {signed_in.username} to tenant {tenant_id} for {_names(policies)}; "
            f"cached in {signed_in.cache} ({signed_in.protection})"
        )


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def logout(paths: tuple[Path, ...]) -> None:
    """Forget the cached sign-in of the interactive policies in PATHS (default policies/)."""
    from syncctl.source.interactive import logout as sign_out

    for (tenant_id, _client), policies in _interactive_groups(paths).items():
        signed_out = sign_out(policies[0].tenant)
        if not signed_out.removed:
            click.echo(f"not signed in to tenant {tenant_id} ({_names(policies)}): nothing removed")
            continue
        who = f" {', '.join(signed_out.usernames)}" if signed_out.usernames else ""
        files = ", ".join(str(path) for path in signed_out.removed)
        click.echo(f"signed out{who} from tenant {tenant_id} ({_names(policies)}); removed {files}")
