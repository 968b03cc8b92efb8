"""``syncctl validate``: check policies offline and show what is in force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from syncctl.cli.common import format_option
from syncctl.connectivity import OnlineCheck, check_online
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
@click.option(
    "--each-directory",
    is_flag=True,
    help="Check the whole directory of each PATH, each directory as its own run, as `plan DIR` "
    "runs it (the pre-commit hook, which passes only the changed files).",
)
@click.pass_context
def validate(
    ctx: click.Context,
    *,
    paths: tuple[Path, ...],
    show_effective: bool,
    output_format: str,
    online: bool,
    each_directory: bool,
) -> None:
    """Check policy files (default: policies/) without touching the network or any secret.

    PATHS are policy files or directories of *.yaml / *.yml files (not recursive). Every
    problem of every file is reported as FILE:LINE:COLUMN: error: message. With --online,
    valid policies are then checked against Entra and their targets (secrets are read).
    """
    if each_directory and online:
        raise click.UsageError("--each-directory checks offline only; drop --online")
    given = list(paths) or [Path("policies")]
    result = _check_each_directory(given) if each_directory else check_policies(given)
    # Online checks only for a clean run (an invalid policy set is fixed offline first), and
    # before printing: a policy is reported "ok" only for what actually passed.
    checks: dict[str, OnlineCheck] | None = None
    if online and not result.errors:
        policies = [loaded.policy for loaded in result.policies]
        checks = {check.policy.name: check for check in check_online(policies)}
    if output_format == "json":
        click.echo(json.dumps(_as_json(result, show_effective, checks), indent=2, sort_keys=True))
    else:
        _print_text(result, show_effective, checks)
    if result.errors or (checks is not None and not all(c.ok for c in checks.values())):
        ctx.exit(EXIT_ERROR)


def _check_each_directory(paths: list[Path]) -> CheckResult:
    """Policy names are unique per run, and a run is one directory: a hook that passed only
    the changed files would miss a new policy reusing the name of an unchanged neighbour, and
    would refuse two directories (staging/, production/) that rightly share names."""
    directories = dict.fromkeys(path if path.is_dir() else path.parent for path in paths)
    merged = CheckResult()
    for directory in directories:
        result = check_policies([directory])
        merged.policies += result.policies
        merged.diagnostics += result.diagnostics
    return merged


# What the offline checks prove, said in the ok line so nobody reads more into it.
OFFLINE_VERIFIED = ("schema", "expressions", "references")


def _print_text(
    result: CheckResult, show_effective: bool, checks: dict[str, OnlineCheck] | None
) -> None:
    for diagnostic in result.diagnostics:
        click.echo(str(diagnostic), err=True)
    for loaded in sorted(result.policies, key=lambda loaded: loaded.file):
        where = f"{loaded.file} (policy {loaded.policy.name})"
        check = checks.get(loaded.policy.name) if checks is not None else None
        if check is not None and not check.ok:
            for failure in check.failures:
                click.echo(f"error: {where}: {failure}", err=True)
            continue
        verified = ", ".join(OFFLINE_VERIFIED + (check.verified if check is not None else ()))
        unchecked = "".join(f"; {note}" for note in check.unchecked) if check is not None else ""
        click.echo(f"ok: {where}: {verified}{unchecked}")
    if show_effective:
        for loaded in result.policies:
            effective = yaml.safe_dump(
                explain(loaded.policy), sort_keys=False, allow_unicode=True, width=100
            )
            click.echo(f"---\n# effective policy of {loaded.file}\n{effective}", nl=False)


def _as_json(
    result: CheckResult, show_effective: bool, checks: dict[str, OnlineCheck] | None
) -> dict[str, Any]:
    policies: list[dict[str, Any]] = []
    for loaded in result.policies:
        entry: dict[str, Any] = {
            "file": loaded.file,
            "name": loaded.policy.name,
            "verified": list(OFFLINE_VERIFIED),
        }
        check = checks.get(loaded.policy.name) if checks is not None else None
        if check is not None:
            entry["online"] = {
                "ok": check.ok,
                "verified": list(check.verified),
                "failures": list(check.failures),
                "unchecked": list(check.unchecked),
            }
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
