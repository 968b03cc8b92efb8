"""The questions of ``syncctl init``: one id each (the key in an answers file), a prompt, a
one-line explanation, a default and a parser that turns an answer into a value or raises
``AnswerError`` (whose message the caller prefixes with the question id)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from syncctl.errors import SyncctlError
from syncctl.policy.model import is_object_id

T = TypeVar("T")

_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^[1-9][0-9]*[smhdw]$")
_PERCENT = re.compile(r"^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)%$")
_POLICY_NAME = re.compile(r"^[a-z0-9-]{1,63}$")

CREDENTIALS = ("interactive", "client_secret", "certificate", "federated_token", "managed_identity")
CLOUDS = ("global", "usgov", "usgov-dod", "china")
ACTIONS = ("ignore", "disable", "delete")
TARGETS = ("sqlite", "scim")

# What each action does to an application account, said once for every deletion reason.
ACTION_HELP = (
    "ignore: the account stays as it is",
    "disable: the user keeps their data but cannot sign in",
    "delete: the account and its data are removed from the application",
)


class AnswerError(SyncctlError):
    """A bad answer: one line, naming the question (``key: problem``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Question(Generic[T]):
    id: str
    prompt: str
    help: str  # one line, shown before the prompt in the terminal
    parse: Callable[[Any], T]  # raises ValueError with the problem (without the key)
    default: str | None = None  # as typed; None: an answer is required
    optional: bool = False  # an empty answer is allowed (parse gets "")

    def answer(self, raw: Any) -> T:
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise AnswerError(self.id, str(exc)) from None


# -- parsers: each takes what was typed (a string) or what the answers file holds ----------


def text(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError(f"expected text, found {type(raw).__name__}")
    value = str(raw).strip()
    if not value.isprintable():
        raise ValueError("contains control characters")
    return value


def tenant_id(raw: Any) -> str:
    value = text(raw)
    if not (is_object_id(value) or _DOMAIN.match(value)):
        raise ValueError(f"{value!r} is not a tenant GUID or domain (contoso.onmicrosoft.com)")
    return value


def guid(raw: Any) -> str:
    value = text(raw)
    if not is_object_id(value):
        raise ValueError(f"{value!r} is not a GUID (the app registration's Application ID)")
    return value


def optional_guid(raw: Any) -> str | None:
    value = "" if raw is None else text(raw)
    return guid(value) if value else None


def choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = text(raw).lower()
        if value not in options:
            raise ValueError(f"{value!r} is not one of {' | '.join(options)}")
        return value

    return parse


def env_name(raw: Any) -> str:
    value = text(raw)
    if not _ENV_NAME.match(value):
        # Never echoed: someone may have pasted the secret instead of its variable's name.
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, underscores), "
            "never the secret itself"
        )
    return value


def optional_env_name(raw: Any) -> str | None:
    value = "" if raw is None else text(raw)
    return env_name(value) if value else None


def path(raw: Any) -> str:
    value = text(raw)
    if not value:
        raise ValueError("a path is required")
    return value


def optional_path(raw: Any) -> str | None:
    value = "" if raw is None else text(raw)
    return value or None


def yes_no(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = text(raw).lower()
    if value in ("y", "yes", "true", "on"):
        return True
    if value in ("n", "no", "false", "off"):
        return False
    raise ValueError(f"{value!r} is not yes or no")


def duration(raw: Any) -> str | None:
    value = "" if raw is None else text(raw)
    if value.lower() in ("", "never", "none"):
        return None
    if not _DURATION.match(value):
        raise ValueError(f"{value!r} is not a duration: a number and s, m, h, d or w (e.g. 30d)")
    return value


def threshold(raw: Any) -> int | str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 0:
            raise ValueError(f"{raw} is below 0")
        return raw
    value = text(raw)
    if value.isdigit():
        return int(value)
    if _PERCENT.match(value):
        return value
    raise ValueError(f"{value!r} is not a count (20) or a percentage between 0% and 100% (5%)")


def url(raw: Any) -> str:
    value = text(raw)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL (https://app.example.com/scim/v2)")
    return value.rstrip("/")


def policy_name(raw: Any) -> str:
    value = text(raw)
    if not _POLICY_NAME.match(value):
        raise ValueError(f"{value!r} must be 1 to 63 lowercase letters, digits and hyphens")
    return value


def policy_file(raw: Any) -> str:
    value = path(raw)
    if not value.endswith((".yaml", ".yml")):
        raise ValueError(
            f"{value!r} must end in .yaml or .yml (so `syncctl validate DIR` finds it)"
        )
    return value


def federated_source(raw: Any) -> dict[str, Any]:
    """``github_actions``, ``file:PATH``, ``env:NAME`` or ``azure_pipelines:ID``."""
    value = text(raw)
    kind, _, rest = value.partition(":")
    if kind == "github_actions" and not rest:
        return {"github_actions": {}}
    if kind == "file" and rest:
        return {"file": rest}
    if kind == "env" and rest:
        return {"env": env_name(rest)}
    if kind == "azure_pipelines" and rest:
        return {"azure_pipelines": {"service_connection_id": rest}}
    raise ValueError(
        f"{value!r} is not one of github_actions, file:PATH, env:NAME, azure_pipelines:ID"
    )


def slug(raw: str) -> str:
    """A policy name suggested from a file or host name."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:63].strip("-")
    return cleaned or "directory"


# -- the questions, in the order they are asked ---------------------------------------------

TENANT = Question(
    "tenant",
    "Tenant",
    "Your Entra tenant: its GUID or a verified domain (contoso.onmicrosoft.com).",
    tenant_id,
)
CLOUD = Question(
    "cloud",
    "Microsoft cloud",
    "global | usgov | usgov-dod | china.",
    choice(CLOUDS),
    default="global",
)
CREDENTIAL = Question(
    "credential",
    "Credential",
    "How syncctl signs in: interactive (you, with a device code) | client_secret | certificate "
    "| federated_token | managed_identity.",
    choice(CREDENTIALS),
    default="interactive",
)
CLIENT_ID = Question(
    "client_id", "Client id", "The app registration's Application (client) ID.", guid
)
CLIENT_SECRET_ENV = Question(
    "client_secret_env",
    "Environment variable holding the client secret",
    "Only the variable's NAME is written; the secret is read from it at run time.",
    env_name,
    default="SYNCCTL_CLIENT_SECRET",
)
CERTIFICATE_PATH = Question(
    "certificate_path", "Certificate file", "A PEM (certificate and key) or PFX file.", path
)
CERTIFICATE_PASSWORD_ENV = Question(
    "certificate_password_env",
    "Environment variable holding the key's password",
    "Its NAME only; Enter for an unencrypted key.",
    optional_env_name,
    optional=True,
)
FEDERATED_TOKEN = Question(
    "federated_token",
    "Federated token source",
    "github_actions | file:PATH | env:NAME | azure_pipelines:SERVICE_CONNECTION_ID.",
    federated_source,
)
MANAGED_IDENTITY_CLIENT_ID = Question(
    "managed_identity_client_id",
    "User-assigned identity client id",
    "Enter for the system-assigned identity.",
    optional_guid,
    optional=True,
)
SEARCH = Question(
    "search",
    "Search users and groups",
    "A word of a name; Enter lists everything.",
    text,
    optional=True,
)
SCOPE_GROUPS = Question(
    "scope_groups",
    "Scope groups",
    "Members of ANY of these groups are provisioned: numbers from the table, names or object "
    "ids, comma-separated; /WORD searches again.",
    text,
)
NESTED = Question(
    "nested",
    "Count members of nested groups",
    "yes: members of groups inside a scope group are provisioned too.",
    yes_no,
    default="yes",
)
GROUPS = Question(
    "groups",
    "Groups to create in the application",
    "Created with their in-scope members only: numbers, names or object ids, comma-separated; "
    "Enter for none; /WORD searches again.",
    text,
    optional=True,
)
REASONS: dict[str, tuple[str, str]] = {
    # reason: (what happened in Entra, the policy language's default)
    "out_of_scope": ("the user left the scope groups", "disable"),
    "disabled": ("the account was disabled in Entra (accountEnabled false)", "disable"),
    "soft_deleted": ("the user was deleted in Entra but can still be restored", "disable"),
    "hard_deleted": ("the user was deleted in Entra for good", "delete"),
}
DELETION = {
    reason: Question(
        reason,
        f"When {what}",
        "ignore | disable | delete.",
        choice(ACTIONS),
        default=default,
    )
    for reason, (what, default) in REASONS.items()
}
DELETE_AFTER = Question(
    "delete_after",
    "Delete disabled accounts after",
    "A grace period: accounts disabled this long are then deleted (30d, 2w); Enter for never.",
    duration,
    optional=True,
)
MAX_DELETES = Question(
    "max_deletes",
    "Most deletes in one run",
    "The mass-deletion guard: a plan deleting more is refused unless --allow-mass-delete; a "
    "count (20) or a share of managed accounts (10%).",
    threshold,
    default="10%",
)
MAX_DISABLES = Question(
    "max_disables",
    "Most disables in one run",
    "The same guard for disables (a scope group emptied by mistake disables everyone).",
    threshold,
    default="10%",
)
TARGET = Question(
    "target",
    "Target",
    "Where accounts go: sqlite (a local database file) | scim (an application's SCIM 2.0 API).",
    choice(TARGETS),
    default="sqlite",
)
SQLITE_PATH = Question(
    "sqlite_path",
    "SQLite database file",
    "Created if missing; a relative path is relative to the policy file.",
    path,
    default="directory.db",
)
SCIM_URL = Question("scim_url", "SCIM base URL", "e.g. https://vault.example.com/scim/v2.", url)
SCIM_TOKEN_ENV = Question(
    "scim_token_env",
    "Environment variable holding the SCIM bearer token",
    "Only the variable's NAME is written; the token is read from it at run time.",
    env_name,
    default="SCIM_TOKEN",
)
NAME = Question(
    "name",
    "Policy name",
    "Lowercase letters, digits and hyphens; names the state file and marks the accounts it owns.",
    policy_name,
)
OUTPUT = Question("output", "Policy file to write", "A .yaml file.", policy_file)

# Keys an answers file may hold besides the questions: settings for a proxy or the emulator
# that a person at a terminal gives as flags (--authority, --graph, --ca-bundle).
EXTRA_KEYS = ("endpoints", "ca_bundle")

QUESTIONS: tuple[Question[Any], ...] = (
    TENANT,
    CLOUD,
    CREDENTIAL,
    CLIENT_ID,
    CLIENT_SECRET_ENV,
    CERTIFICATE_PATH,
    CERTIFICATE_PASSWORD_ENV,
    FEDERATED_TOKEN,
    MANAGED_IDENTITY_CLIENT_ID,
    SEARCH,
    SCOPE_GROUPS,
    NESTED,
    GROUPS,
    *DELETION.values(),
    DELETE_AFTER,
    MAX_DELETES,
    MAX_DISABLES,
    TARGET,
    SQLITE_PATH,
    SCIM_URL,
    SCIM_TOKEN_ENV,
    NAME,
    OUTPUT,
)
# "search" is the terminal's step before a pick; an answers file names the groups directly.
ANSWER_KEYS = tuple(q.id for q in QUESTIONS if q is not SEARCH) + EXTRA_KEYS
