"""The effective policy as plain data: every default filled in, secrets only as references."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from syncctl.policy.model import (
    AttributeMapping,
    CertificateCredential,
    ClientSecretCredential,
    Credential,
    FederatedTokenCredential,
    FilterClause,
    GroupSelector,
    InteractiveCredential,
    ObjectMappings,
    Policy,
    ScimTarget,
    SecretRef,
    SqliteTarget,
    TargetConfig,
    Tenant,
    Writeback,
)


def explain(policy: Policy) -> dict[str, Any]:
    """Keys in the order of POLICY.md; paths absolute; no secret values, ever.

    The result is itself a valid policy that loads to the same effective policy; optional
    settings that are unset (no client_id, no default, no delete_after) are left out.
    """
    deletion = policy.deletion
    result: dict[str, Any] = {
        "version": policy.version,
        "name": policy.name,
        "tenant": _tenant(policy.tenant),
        "source": {
            "scope_groups": list(policy.source.scope_groups),
            "nested": policy.source.nested,
            "include_guests": policy.source.include_guests,
            "include_disabled": policy.source.include_disabled,
            "filters": [[_clause(clause) for clause in f] for f in policy.source.filters],
            "groups": [_group(group) for group in policy.source.groups],
            "skip_empty_groups": policy.source.skip_empty_groups,
            "full_refresh_every": _duration(policy.source.full_refresh_every),
        },
        "target": _target(policy.target),
        "mappings": {
            "user": _object_mappings(policy.mappings.user),
            "group": _object_mappings(policy.mappings.group),
        },
        "state": _state(policy),
        "deletion": {
            "out_of_scope": str(deletion.out_of_scope),
            "disabled": str(deletion.disabled),
            "soft_deleted": str(deletion.soft_deleted),
            "hard_deleted": str(deletion.hard_deleted),
            "groups": str(deletion.groups),
            "max_deletes": _threshold(str(deletion.max_deletes)),
            "max_disables": _threshold(str(deletion.max_disables)),
            "protected": list(deletion.protected),
        },
    }
    if deletion.delete_after is not None:
        result["deletion"]["delete_after"] = _duration(deletion.delete_after)
    if policy.writeback is not None:
        result["writeback"] = _writeback(policy.writeback)
    return result


def _state(policy: Policy) -> dict[str, Any]:
    state: dict[str, Any] = {"path": str(policy.state.path)}
    if policy.state.audit_log is not None:
        state["audit_log"] = str(policy.state.audit_log)
    return state


def _path(value: Path | None) -> str | None:
    return None if value is None else str(value)


def _secret(secret: SecretRef) -> dict[str, str]:
    return secret.describe()


def _tenant(tenant: Tenant) -> dict[str, Any]:
    # Lazy: syncctl.source imports the policy package (the single table of cloud endpoints).
    from syncctl.source.clouds import endpoints_for

    endpoints = endpoints_for(tenant)
    result: dict[str, Any] = {"id": tenant.id}
    if tenant.client_id is not None:
        result["client_id"] = tenant.client_id
    result["cloud"] = str(tenant.cloud)
    if tenant.credential is not None:
        result["credential"] = _credential(tenant.credential)
    result["endpoints"] = {"authority": endpoints.authority, "graph": endpoints.graph}
    result["ca_bundle"] = _path(tenant.ca_bundle)
    if tenant.snapshot is not None:
        result["snapshot"] = str(tenant.snapshot)
    return result


def _credential(credential: Credential) -> dict[str, Any]:
    if isinstance(credential, ClientSecretCredential):
        return {"client_secret": _secret(credential.secret)}
    if isinstance(credential, CertificateCredential):
        certificate: dict[str, Any] = {"path": str(credential.path)}
        if credential.password is not None:
            certificate["password"] = _secret(credential.password)
        return {"certificate": certificate}
    if isinstance(credential, FederatedTokenCredential):
        token: dict[str, Any]
        if credential.file is not None:
            token = {"file": str(credential.file)}
        elif credential.env is not None:
            token = {"env": credential.env}
        elif credential.github_actions:
            token = {"github_actions": {}}
        else:
            connection = credential.azure_pipelines_service_connection_id
            token = {"azure_pipelines": {"service_connection_id": connection}}
        return {"federated_token": token}
    if isinstance(credential, InteractiveCredential):
        return {"interactive": {"scopes": list(credential.scopes)} if credential.scopes else {}}
    identity = {} if credential.client_id is None else {"client_id": credential.client_id}
    return {"managed_identity": identity}


def _clause(clause: FilterClause) -> dict[str, Any]:
    result: dict[str, Any] = {"attribute": clause.attribute, "op": str(clause.op)}
    if clause.value is not None:
        result["value"] = list(clause.value) if isinstance(clause.value, tuple) else clause.value
    return result


def _group(group: GroupSelector) -> str | dict[str, str]:
    if group.pattern is not None:
        return {"match": group.pattern}
    return group.id if group.id is not None else str(group.name)


def _target(target: TargetConfig) -> dict[str, Any]:
    if isinstance(target, SqliteTarget):
        return {"type": target.type, "path": str(target.path)}
    if isinstance(target, ScimTarget):
        result: dict[str, Any] = {"type": target.type, "url": target.url}
        if target.token is not None:
            result["token"] = _secret(target.token)
        if target.oauth is not None:
            oauth: dict[str, Any] = {
                "token_url": target.oauth.token_url,
                "client_id": target.oauth.client_id,
                "client_secret": _secret(target.oauth.client_secret),
            }
            if target.oauth.scope is not None:
                oauth["scope"] = target.oauth.scope
            result["oauth"] = oauth
        result["ca_bundle"] = _path(target.ca_bundle)
        return result
    return {"type": target.type, **target.options}


def _mapping(mapping: AttributeMapping) -> dict[str, Any]:
    result: dict[str, Any] = {"value": mapping.expression}
    if mapping.default is not None:
        result["default"] = mapping.default
    result["apply"] = str(mapping.apply)
    return result


def _object_mappings(mappings: ObjectMappings) -> dict[str, Any]:
    return {
        "match": list(mappings.match),
        "attributes": {m.target: _mapping(m) for m in mappings.attributes},
    }


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _threshold(text: str) -> int | str:
    return text if text.endswith("%") else int(text)


def _writeback(writeback: Writeback) -> dict[str, Any]:
    return {
        "mode": str(writeback.mode),
        "attributes": {m.target: m.expression for m in writeback.attributes},
        "passwords": [
            {
                "user": entry.user,
                "secret": _secret(entry.secret),
                "mode": str(entry.mode),
                "force_change_next_sign_in": entry.force_change_next_sign_in,
            }
            for entry in writeback.passwords
        ],
    }
