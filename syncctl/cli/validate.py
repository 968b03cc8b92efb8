"""``syncctl validate``: check policies offline and show what is in force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from syncctl.cli.common import format_option
from syncctl.connectivity import check_online
from syncctl.errors import EXIT_ERROR, Diagnostic
from syncctl.policy import CheckResult, check_policies, explain


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--explain",
    "show_effective",
    is_flag=True,
    help="Print the effective policy: defaults filled in, paths resolved, secrets as references.",
)
@format_option("text", "json")
@click.option(
    "--online",
    is_flag=True,
    help="Also sign in to Entra (or load the snapshot) and check that each target answers "
    "and accepts its credentials.",
)
@click.pass_context
def validate(
    ctx: click.Context,
    paths: tuple[Path, ...],
    show_effective: bool,
    output_format: str,
    online: bool,
) -> None:
    """Check policy files (default: policies/) without touching the network or any secret.

    PATHS are policy files or directories of *.yaml / *.yml files (not recursive). Every
    problem of every file is reported as FILE:LINE:COLUMN: error: message. With --online,
    valid policies are then checked against Entra and their targets (secrets are read).
    """
    result = check_policies(list(paths) or [Path("policies")])
    if output_format == "json":
        click.echo(json.dumps(_as_json(result, show_effective), indent=2, sort_keys=True))
    else:
        _print_text(result, show_effective)
    if result.errors:
        ctx.exit(EXIT_ERROR)
    if online:
        failures = check_online([loaded.policy for loaded in result.policies])
        for name, message in failures:
            click.echo(f"error: policy {name}: {message}", err=True)
        if failures:
            ctx.exit(EXIT_ERROR)


def _print_text(result: CheckResult, show_effective: bool) -> None:
    for diagnostic in result.diagnostics:
        click.echo(str(diagnostic), err=True)
    for loaded in sorted(result.policies, key=lambda loaded: loaded.file):
        click.echo(f"ok: {loaded.file} (policy {loaded.policy.name})")
    if show_effective:
        for loaded in result.policies:
            effective = yaml.safe_dump(
                explain(loaded.policy), sort_keys=False, allow_unicode=True, width=100
            )
            click.echo(f"---\n# effective policy of {loaded.file}\n{effective}", nl=False)


def _as_json(result: CheckResult, show_effective: bool) -> dict[str, Any]:
    policies: list[dict[str, Any]] = []
    for loaded in result.policies:
        entry: dict[str, Any] = {"file": loaded.file, "name": loaded.policy.name}
        if show_effective:
            entry["effective"] = explain(loaded.policy)
        policies.append(entry)
    return {
        "valid": not result.errors,
        "policies": policies,
        "diagnostics": [_diagnostic(d) for d in result.diagnostics],
    }


def _diagnostic(diagnostic: Diagnostic) -> dict[str, Any]:
    location = diagnostic.location
    return {
        "file": location.file,
        "line": location.line,
        "column": location.column,
        "severity": diagnostic.severity,
        "message": diagnostic.message,
    }
