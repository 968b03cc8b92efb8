"""The commented policy file ``syncctl init`` writes: a header saying how it was made and what
to run next, a comment per section explaining the choice (in the style of examples/*.yaml),
keys always in the same order, secrets only ever named (``{env: NAME}``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from syncctl.init.directory import GroupChoice
from syncctl.init.flow import Answers
from syncctl.init.questions import REASONS

COMMENT_COLUMN = 44  # trailing comments line up here, as in examples/*.yaml

_ACTION_SAYS = {
    "ignore": "left as it is",
    "disable": "disabled (data kept, no sign-in)",
    "delete": "deleted with its data",
}
_REASON_SAYS = {
    "out_of_scope": "left the scope groups",
    "disabled": "disabled in Entra",
    "soft_deleted": "deleted in Entra, restorable",
    "hard_deleted": "deleted in Entra for good",
}


def scalar(value: Any) -> str:
    """One YAML scalar, quoted only when YAML needs it ("10%" always, as the docs write it)."""
    if isinstance(value, str) and value.endswith("%"):
        return f'"{value}"'
    dumped = yaml.safe_dump([value], default_flow_style=True, width=10**6, allow_unicode=True)
    return dumped.strip()[1:-1]


def flow_mapping(mapping: dict[str, Any]) -> str:
    parts = []
    for key, value in mapping.items():
        shown = flow_mapping(value) if isinstance(value, dict) else scalar(value)
        parts.append(f"{key}: {shown}")
    return "{" + ", ".join(parts) + "}"


def line(indent: int, text: str, comment: str | None = None) -> str:
    body = " " * indent + text
    if comment is None:
        return body
    return f"{body.ljust(COMMENT_COLUMN - 1)} # {comment}"


def relocated(typed: str, output: Path, cwd: Path) -> str:
    """A path the person typed (relative to where they ran init, where it was used to sign in)
    as the policy must say it: relative to the policy file's directory."""
    if os.path.isabs(typed):
        return typed
    target = os.path.abspath(os.path.join(cwd, typed))
    return os.path.relpath(target, os.path.abspath(os.path.join(cwd, output.parent)))


def render_policy(answers: Answers, *, cwd: Path, version: str) -> str:
    return (
        "\n".join(
            [
                *_header(answers, version),
                *_tenant(answers, cwd),
                *_source(answers),
                *_target(answers),
                *_deletion(answers),
            ]
        )
        + "\n"
    )


def _header(answers: Answers, version: str) -> Iterator[str]:
    file = answers.output.name
    yield f"# Policy {answers.name}: written by `syncctl init` (syncctl {version})."
    yield "# Review it, then:"
    yield f"#   syncctl validate {file}    # check it offline (no sign-in, no secrets)"
    yield f"#   syncctl plan {file}        # see what would change, changing nothing"
    yield f"#   syncctl apply {file}       # make those changes (shows the plan and asks first)"
    yield "# Every key is explained in docs/policy.md; `syncctl validate --explain` shows the"
    yield "# defaults left out here (mappings: userName, displayName, names, work email, ...)."
    yield "version: 1"
    yield f"name: {scalar(answers.name)}"


def _tenant(answers: Answers, cwd: Path) -> Iterator[str]:
    kind = answers.credential_kind
    yield ""
    yield "# Where users and groups are read from, and how syncctl signs in to Entra ID:"
    yield (
        "# "
        + {
            "interactive": "as you, with `syncctl login` (for a person, not for cron or CI).",
            "client_secret": "as the app registration, with a client secret from the environment.",
            "certificate": "as the app registration, with a certificate file.",
            "federated_token": "as the app registration, with a workload identity (OIDC) token.",
            "managed_identity": "as the Azure managed identity of the machine it runs on.",
        }[kind]
    )
    yield "tenant:"
    yield line(2, f"id: {scalar(answers.tenant)}", "tenant GUID or verified domain")
    if answers.client_id is not None:
        yield line(2, f"client_id: {scalar(answers.client_id)}", "the app registration")
    if answers.cloud != "global":
        yield line(2, f"cloud: {scalar(answers.cloud)}")
    yield "  credential:"
    yield from _credential(answers, cwd)
    if answers.endpoints is not None:
        yield "  endpoints:"
        yield line(4, f"authority: {scalar(answers.endpoints['authority'])}", "sign-in")
        yield line(4, f"graph: {scalar(answers.endpoints['graph'])}", "Microsoft Graph")
    if answers.ca_bundle is not None:
        yield line(
            2,
            f"ca_bundle: {scalar(relocated(answers.ca_bundle, answers.output, cwd))}",
            "extra trusted CAs (PEM)",
        )


def _credential(answers: Answers, cwd: Path) -> Iterator[str]:
    ((kind, options),) = answers.credential.items()
    if kind == "client_secret":
        name = options["env"]
        yield line(4, f"client_secret: {flow_mapping(options)}", f"the secret is read from ${name}")
    elif kind == "certificate":
        yield "    certificate:"
        path = relocated(options["path"], answers.output, cwd)
        yield line(6, f"path: {scalar(path)}", "relative to this file")
        if "password" in options:
            yield line(6, f"password: {flow_mapping(options['password'])}", "the key's password")
    elif kind == "federated_token":
        if "file" in options:
            options = {"file": relocated(options["file"], answers.output, cwd)}
        yield line(4, f"federated_token: {flow_mapping(options)}")
    elif kind == "managed_identity":
        what = "user-assigned" if options else "system-assigned"
        yield line(4, f"managed_identity: {flow_mapping(options)}", what)
    else:
        yield line(4, "interactive: {}", "`syncctl login` signs in again when needed")


def _groups(choices: tuple[GroupChoice, ...]) -> Iterator[str]:
    for choice in choices:
        comment = choice.name if choice.by_id else choice.id
        yield line(4, f"- {scalar(choice.written)}", comment)


def _source(answers: Answers) -> Iterator[str]:
    yield ""
    nested = "members of nested groups count" if answers.nested else "direct members only"
    yield f"# Who gets an account: members of ANY scope group ({nested})."
    if answers.groups:
        yield "# `groups` are also created in the application, with their in-scope members only."
    yield "source:"
    yield "  scope_groups:"
    yield from _groups(answers.scope_groups)
    yield line(2, f"nested: {scalar(answers.nested)}", "transitive membership")
    if answers.groups:
        yield "  groups:"
        yield from _groups(answers.groups)


def _target(answers: Answers) -> Iterator[str]:
    target = answers.target
    yield ""
    if target["type"] == "sqlite":
        yield "# Where the accounts go: a SQLite database (created by the first apply)."
        yield "target:"
        yield "  type: sqlite"
        yield line(2, f"path: {scalar(target['path'])}", "relative to this file")
        return
    yield "# Where the accounts go: an application's SCIM 2.0 API, with a bearer token from the"
    yield "# environment (only the variable's name is here)."
    yield "target:"
    yield "  type: scim"
    yield line(2, f"url: {scalar(target['url'])}")
    yield line(2, f"token: {flow_mapping(target['token'])}", f"read from ${target['token']['env']}")


def _deletion(answers: Answers) -> Iterator[str]:
    yield ""
    yield "# What happens to an account whose user goes away, per reason (ignore | disable |"
    yield "# delete); when several apply, hard_deleted > soft_deleted > disabled > out_of_scope."
    yield "deletion:"
    for reason in REASONS:
        action = answers.deletion[reason]
        yield line(2, f"{reason}: {action}", f"{_REASON_SAYS[reason]}: {_ACTION_SAYS[action]}")
    if answers.delete_after is not None:
        yield line(
            2, f"delete_after: {scalar(answers.delete_after)}", "disabled this long: deleted"
        )
    yield line(
        2,
        f"max_deletes: {scalar(answers.max_deletes)}",
        "mass-deletion guard: a plan deleting more is refused",
    )
    yield line(
        2,
        f"max_disables: {scalar(answers.max_disables)}",
        "... and disabling more (--allow-mass-delete overrides)",
    )
