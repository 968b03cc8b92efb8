"""The typed, frozen policy model (syncctl/v1), built only after schema validation.

Defaults are applied and relative paths resolved against the policy file's directory by the
loader (``syncctl.policy.load``); nothing here does I/O except ``SecretRef.reveal``, which
is called at the moment a secret is needed and never at validate time.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from syncctl.errors import SecretError

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_object_id(value: str) -> bool:
    """Entra object ids are GUIDs; anything else in a group list is a display name."""
    return bool(_GUID.match(value))


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret named by where it lives, never by value: ``{env: NAME}`` or ``{file: PATH}``."""

    env: str | None = None
    file: Path | None = None

    def reveal(self) -> str:
        """The secret, registered for redaction before anyone can print it."""
        from syncctl import redaction
        from syncctl.secretfile import read_small_file

        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise SecretError(f"environment variable {self.env} is not set or empty")
            return redaction.remember(value)
        assert self.file is not None
        # Bounded and regular-file only: a policy from a pull request may name /dev/zero or
        # a fifo, which must neither exhaust memory nor hang the run.
        data = read_small_file(self.file, what="secret file")
        try:
            value = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SecretError(f"secret file {self.file} is not UTF-8 text") from None
        if not value:
            raise SecretError(f"secret file {self.file} is empty")
        return redaction.remember(value)

    def describe(self) -> dict[str, str]:
        """The reference as written, for --explain and error messages (never the value)."""
        return {"env": self.env} if self.env is not None else {"file": str(self.file)}

    def __repr__(self) -> str:
        return f"SecretRef({self.describe()})"


class Cloud(StrEnum):
    GLOBAL = "global"
    USGOV = "usgov"
    USGOV_DOD = "usgov-dod"
    CHINA = "china"


@dataclass(frozen=True, slots=True)
class ClientSecretCredential:
    secret: SecretRef


@dataclass(frozen=True, slots=True)
class CertificateCredential:
    path: Path  # PEM (certificate + private key) or PFX/PKCS#12
    password: SecretRef | None = None


@dataclass(frozen=True, slots=True)
class FederatedTokenCredential:
    """Workload identity federation: an OIDC token from exactly one of these places."""

    file: Path | None = None  # AKS / any file that is re-read on every token request
    env: str | None = None  # a variable that holds the token (GitLab CI id_tokens)
    github_actions: bool = False  # request one from GitHub Actions' OIDC endpoint
    azure_pipelines_service_connection_id: str | None = None  # Azure DevOps OIDC


@dataclass(frozen=True, slots=True)
class ManagedIdentityCredential:
    client_id: str | None = None  # None: system-assigned


@dataclass(frozen=True, slots=True)
class InteractiveCredential:
    """An administrator signed in with ``syncctl login`` (delegated, from the token cache)."""

    scopes: tuple[str, ...] = ()  # delegated scopes beyond the ones the policy needs


Credential = (
    ClientSecretCredential
    | CertificateCredential
    | FederatedTokenCredential
    | ManagedIdentityCredential
    | InteractiveCredential
)


@dataclass(frozen=True, slots=True)
class Endpoints:
    authority: str  # e.g. https://login.microsoftonline.com (no tenant part)
    graph: str  # e.g. https://graph.microsoft.com (no /v1.0)


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    client_id: str | None = None
    cloud: Cloud = Cloud.GLOBAL
    credential: Credential | None = None  # None only with snapshot
    endpoints: Endpoints | None = None  # None: the cloud's defaults
    ca_bundle: Path | None = None
    snapshot: Path | None = None  # offline: read a `syncctl export` file instead of Graph


class FilterOp(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IS_TRUE = "is_true"
    IS_FALSE = "is_false"
    IS_NULL = "is_null"
    IS_NOT_NULL = "is_not_null"
    REGEX_MATCH = "regex_match"
    NOT_REGEX_MATCH = "not_regex_match"
    GREATER_THAN = "greater_than"
    GREATER_THAN_OR_EQUALS = "greater_than_or_equals"
    LESS_THAN = "less_than"
    INCLUDES = "includes"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    IN = "in"


@dataclass(frozen=True, slots=True)
class FilterClause:
    attribute: str  # Graph property name
    op: FilterOp
    value: Any = None  # absent for is_* operators; a list for `in`


@dataclass(frozen=True, slots=True)
class GroupSelector:
    """One entry of source.groups: exactly one of id, name, pattern is set."""

    id: str | None = None
    name: str | None = None
    pattern: str | None = None  # regex on displayName (`{match: "^PM-"}`)


@dataclass(frozen=True, slots=True)
class Source:
    scope_groups: tuple[str, ...]  # display names or object ids (see is_object_id)
    nested: bool = True
    include_guests: bool = False
    include_disabled: bool = False
    filters: tuple[tuple[FilterClause, ...], ...] = ()  # OR of filters, each an AND of clauses
    groups: tuple[GroupSelector, ...] = ()
    skip_empty_groups: bool = True
    # Delta reads in between; a full read at least this often (catches what delta missed).
    full_refresh_every: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class OAuthClientCredentials:
    """OAuth 2.0 client credentials grant for SCIM targets that want it."""

    token_url: str
    client_id: str
    client_secret: SecretRef
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    path: Path
    type: str = "sqlite"


@dataclass(frozen=True, slots=True)
class ScimTarget:
    url: str  # base URL, e.g. https://vault.example.com/scim/v2
    token: SecretRef | None = None  # bearer token; exactly one of token / oauth
    oauth: OAuthClientCredentials | None = None
    ca_bundle: Path | None = None
    type: str = "scim"


@dataclass(frozen=True, slots=True)
class PluginTarget:
    type: str  # entry point name in the `syncctl.targets` group
    options: dict[str, Any] = field(default_factory=dict)  # everything else under target:


TargetConfig = SqliteTarget | ScimTarget | PluginTarget


class ApplyMode(StrEnum):
    ALWAYS = "always"
    ON_CREATE = "on_create"


@dataclass(frozen=True, slots=True)
class AttributeMapping:
    target: str  # flat SCIM path, e.g. 'emails[type eq "work"].value'
    expression: str  # Entra expression source text
    default: str | None = None  # used when the expression yields null or empty
    apply: ApplyMode = ApplyMode.ALWAYS


@dataclass(frozen=True, slots=True)
class ObjectMappings:
    attributes: tuple[AttributeMapping, ...]  # in file order; defaults filled when omitted
    match: tuple[str, ...] = ()  # target attributes used to adopt unmanaged objects


@dataclass(frozen=True, slots=True)
class Mappings:
    user: ObjectMappings
    group: ObjectMappings


class DeletionAction(StrEnum):
    IGNORE = "ignore"
    DISABLE = "disable"
    DELETE = "delete"


class GroupDeletionAction(StrEnum):
    IGNORE = "ignore"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Threshold:
    """A count (``20``) or a share of managed objects (``"5%"``)."""

    count: int | None = None
    percent: float | None = None

    def limit(self, managed: int) -> int:
        if self.count is not None:
            return self.count
        assert self.percent is not None
        # A non-zero share always allows one: offboarding a single person from a small
        # directory is not a mass deletion (the all-managed check still guards the rest).
        share = math.floor(managed * self.percent / 100)
        return max(share, 1) if self.percent > 0 else 0

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


@dataclass(frozen=True, slots=True)
class Deletion:
    out_of_scope: DeletionAction = DeletionAction.DISABLE
    disabled: DeletionAction = DeletionAction.DISABLE
    soft_deleted: DeletionAction = DeletionAction.DISABLE
    hard_deleted: DeletionAction = DeletionAction.DELETE
    delete_after: timedelta | None = None
    groups: GroupDeletionAction = GroupDeletionAction.DELETE
    max_deletes: Threshold = Threshold(percent=10.0)
    max_disables: Threshold = Threshold(percent=10.0)
    protected: tuple[str, ...] = ()  # userName, group displayName or Entra object id


@dataclass(frozen=True, slots=True)
class PostgresState:
    dsn: SecretRef  # a libpq connection string; holds a password, so it is a secret


@dataclass(frozen=True, slots=True)
class AzureBlobState:
    container: str
    connection_string: SecretRef | None = None
    account_url: str | None = None  # signed in with the tenant credential


@dataclass(frozen=True, slots=True)
class StateConfig:
    path: Path  # backend local: default .syncctl/<name>.state.json beside the policy
    # How long a lock whose holder cannot be checked (another host) is honoured.
    lock_ttl: timedelta = timedelta(hours=6)
    backend: PostgresState | AzureBlobState | None = None  # None: the local file at ``path``
    audit_log: Path | None = None  # apply appends one JSON line per change attempted


class WritebackMode(StrEnum):
    REPORT = "report"
    ENFORCE = "enforce"


@dataclass(frozen=True, slots=True)
class PasswordWriteback:
    user: str  # userPrincipalName or object id
    secret: SecretRef
    mode: WritebackMode = WritebackMode.REPORT
    force_change_next_sign_in: bool = False


@dataclass(frozen=True, slots=True)
class Writeback:
    """Values the application owns, written back to Entra (``syncctl.plan.writeback``)."""

    mode: WritebackMode = WritebackMode.REPORT
    attributes: tuple[AttributeMapping, ...] = ()
    passwords: tuple[PasswordWriteback, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    version: int
    name: str  # [a-z0-9-]{1,63}
    path: Path  # the policy file, absolute
    sha256: str  # of the file's bytes: saved plans are stale when it changes
    tenant: Tenant
    source: Source
    target: TargetConfig
    mappings: Mappings
    deletion: Deletion
    state: StateConfig
    writeback: Writeback | None = None
