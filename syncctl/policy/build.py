"""Turn a validated policy document into the frozen model, filling defaults and resolving paths.

Only called once the schema and semantic checks found no error, so shapes are trusted here.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from syncctl.policy.defaults import (
    DEFAULT_GROUP_ATTRIBUTES,
    DEFAULT_USER_ATTRIBUTES,
    default_state_path,
)
from syncctl.policy.model import (
    ApplyMode,
    AttributeMapping,
    AzureBlobState,
    CertificateCredential,
    ClientSecretCredential,
    Cloud,
    Credential,
    Deletion,
    DeletionAction,
    Endpoints,
    FederatedTokenCredential,
    FilterClause,
    FilterOp,
    GroupDeletionAction,
    GroupSelector,
    InteractiveCredential,
    ManagedIdentityCredential,
    Mappings,
    OAuthClientCredentials,
    ObjectMappings,
    PasswordWriteback,
    PluginTarget,
    Policy,
    PostgresState,
    ScimTarget,
    SecretRef,
    Source,
    SqliteTarget,
    StateConfig,
    TargetConfig,
    Tenant,
    Threshold,
    Writeback,
    WritebackMode,
    is_object_id,
)

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def build_policy(doc: dict[str, Any], path: Path, sha256: str) -> Policy:
    base = path.parent
    name: str = doc["name"]
    state = doc.get("state") or {}
    return Policy(
        version=doc["version"],
        name=name,
        path=path,
        sha256=sha256,
        tenant=_tenant(doc["tenant"], base),
        source=_source(doc["source"]),
        target=_target(doc["target"], base),
        mappings=_mappings(doc.get("mappings") or {}),
        deletion=_deletion(doc.get("deletion") or {}),
        state=StateConfig(
            path=(
                resolve_path(base, state["path"])
                if "path" in state
                else default_state_path(base, name)
            ),
            lock_ttl=parse_duration(state.get("lock_ttl", "6h")),
            backend=_state_backend(state, base),
            audit_log=_optional_path(base, state.get("audit_log")),
        ),
        writeback=_writeback(doc["writeback"], base) if "writeback" in doc else None,
    )


def _state_backend(raw: dict[str, Any], base: Path) -> PostgresState | AzureBlobState | None:
    kind = raw.get("backend", "local")
    if kind == "postgres":
        return PostgresState(dsn=_secret(raw["dsn"], base))
    if kind == "azure_blob":
        return AzureBlobState(
            container=raw["container"],
            connection_string=(
                _secret(raw["connection_string"], base) if "connection_string" in raw else None
            ),
            account_url=raw.get("account_url"),
        )
    return None


def resolve_path(base: Path, value: str) -> Path:
    """A policy path: ``~`` expanded, relative ones against the policy's directory."""
    path = Path(value)
    with contextlib.suppress(RuntimeError):  # ~someone with no home here: keep it as written
        path = path.expanduser()
    return base / path


def _optional_path(base: Path, value: str | None) -> Path | None:
    return None if value is None else resolve_path(base, value)


def _secret(raw: dict[str, str], base: Path) -> SecretRef:
    if "env" in raw:
        return SecretRef(env=raw["env"])
    return SecretRef(file=resolve_path(base, raw["file"]))


def _tenant(raw: dict[str, Any], base: Path) -> Tenant:
    endpoints = raw.get("endpoints")
    return Tenant(
        id=raw["id"],
        client_id=raw.get("client_id"),
        cloud=Cloud(raw.get("cloud", "global")),
        credential=_credential(raw["credential"], base) if "credential" in raw else None,
        endpoints=Endpoints(
            authority=endpoints["authority"].rstrip("/"), graph=endpoints["graph"].rstrip("/")
        )
        if endpoints
        else None,
        ca_bundle=_optional_path(base, raw.get("ca_bundle")),
        snapshot=_optional_path(base, raw.get("snapshot")),
    )


def _credential(raw: dict[str, Any], base: Path) -> Credential:
    kind, options = next(iter(raw.items()))
    if kind == "client_secret":
        return ClientSecretCredential(_secret(options, base))
    if kind == "certificate":
        password = options.get("password")
        return CertificateCredential(
            path=resolve_path(base, options["path"]),
            password=_secret(password, base) if password is not None else None,
        )
    if kind == "federated_token":
        pipelines = options.get("azure_pipelines")
        return FederatedTokenCredential(
            file=_optional_path(base, options.get("file")),
            env=options.get("env"),
            github_actions="github_actions" in options,
            azure_pipelines_service_connection_id=(
                pipelines["service_connection_id"] if pipelines is not None else None
            ),
        )
    if kind == "interactive":
        return InteractiveCredential(scopes=tuple((options or {}).get("scopes", ())))
    return ManagedIdentityCredential(client_id=(options or {}).get("client_id"))


def _source(raw: dict[str, Any]) -> Source:
    return Source(
        scope_groups=tuple(raw["scope_groups"]),
        nested=raw.get("nested", True),
        include_guests=raw.get("include_guests", False),
        include_disabled=raw.get("include_disabled", False),
        filters=tuple(
            tuple(
                FilterClause(
                    attribute=clause["attribute"],
                    op=FilterOp(clause["op"]),
                    value=tuple(clause["value"])
                    if isinstance(clause.get("value"), list)
                    else clause.get("value"),
                )
                for clause in clauses
            )
            for clauses in raw.get("filters", [])
        ),
        groups=tuple(_group_selector(group) for group in raw.get("groups", [])),
        skip_empty_groups=raw.get("skip_empty_groups", True),
        full_refresh_every=parse_duration(raw.get("full_refresh_every", "24h")),
    )


def _group_selector(raw: str | dict[str, str]) -> GroupSelector:
    if isinstance(raw, dict):
        return GroupSelector(pattern=raw["match"])
    return GroupSelector(id=raw) if is_object_id(raw) else GroupSelector(name=raw)


def _target(raw: dict[str, Any], base: Path) -> TargetConfig:
    kind = raw["type"]
    if kind == "sqlite":
        return SqliteTarget(path=resolve_path(base, raw["path"]))
    if kind == "scim":
        oauth = raw.get("oauth")
        return ScimTarget(
            url=raw["url"].rstrip("/"),
            token=_secret(raw["token"], base) if "token" in raw else None,
            oauth=OAuthClientCredentials(
                token_url=oauth["token_url"],
                client_id=oauth["client_id"],
                client_secret=_secret(oauth["client_secret"], base),
                scope=oauth.get("scope"),
            )
            if oauth is not None
            else None,
            ca_bundle=_optional_path(base, raw.get("ca_bundle")),
        )
    options = {key: value for key, value in sorted(raw.items()) if key != "type"}
    return PluginTarget(type=kind, options=options)


def _mapping(target: str, raw: str | dict[str, str]) -> AttributeMapping:
    if isinstance(raw, str):
        return AttributeMapping(target=target, expression=raw)
    return AttributeMapping(
        target=target,
        expression=raw["value"],
        default=raw.get("default"),
        apply=ApplyMode(raw.get("apply", "always")),
    )


def _object_mappings(raw: dict[str, Any], defaults: tuple[AttributeMapping, ...]) -> ObjectMappings:
    attributes = raw.get("attributes")
    return ObjectMappings(
        attributes=tuple(_mapping(target, value) for target, value in attributes.items())
        if attributes is not None
        else defaults,
        match=tuple(raw.get("match", ())),
    )


def _mappings(raw: dict[str, Any]) -> Mappings:
    return Mappings(
        user=_object_mappings(raw.get("user") or {}, DEFAULT_USER_ATTRIBUTES),
        group=_object_mappings(raw.get("group") or {}, DEFAULT_GROUP_ATTRIBUTES),
    )


def parse_duration(text: str) -> timedelta:
    return timedelta(seconds=int(text[:-1]) * _UNIT_SECONDS[text[-1]])


def parse_threshold(value: int | str) -> Threshold:
    if isinstance(value, str):
        return Threshold(percent=float(value.rstrip("%")))
    return Threshold(count=int(value))


def _deletion(raw: dict[str, Any]) -> Deletion:
    default = Deletion()
    return Deletion(
        out_of_scope=DeletionAction(raw.get("out_of_scope", default.out_of_scope)),
        disabled=DeletionAction(raw.get("disabled", default.disabled)),
        soft_deleted=DeletionAction(raw.get("soft_deleted", default.soft_deleted)),
        hard_deleted=DeletionAction(raw.get("hard_deleted", default.hard_deleted)),
        delete_after=parse_duration(raw["delete_after"]) if "delete_after" in raw else None,
        groups=GroupDeletionAction(raw.get("groups", default.groups)),
        max_deletes=parse_threshold(raw["max_deletes"])
        if "max_deletes" in raw
        else default.max_deletes,
        max_disables=parse_threshold(raw["max_disables"])
        if "max_disables" in raw
        else default.max_disables,
        protected=tuple(raw.get("protected", ())),
    )


def _writeback(raw: dict[str, Any], base: Path) -> Writeback:
    return Writeback(
        mode=WritebackMode(raw.get("mode", "report")),
        attributes=tuple(
            AttributeMapping(target=name, expression=expression)
            for name, expression in (raw.get("attributes") or {}).items()
        ),
        passwords=tuple(
            PasswordWriteback(
                user=entry["user"],
                secret=_secret(entry["secret"], base),
                mode=WritebackMode(entry.get("mode", "report")),
                force_change_next_sign_in=bool(entry.get("force_change_next_sign_in", False)),
            )
            for entry in raw.get("passwords", [])
        ),
    )
