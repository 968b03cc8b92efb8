"""The writes the emulator serves: ``PATCH /users/{id}`` (user-update.md) and ``DELETE
/groups/{id}`` (group-delete.md). Permissions are checked before these run (permissions.py);
here only what the pages say about the request and its effect on the tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncctl.emulator.responses import GraphRequestError, Response
from syncctl.emulator.schema import READ_ONLY, USER_PROPERTIES
from syncctl.emulator.tenant import EmulatorTenant, TenantError

BOOLEAN_PROPERTIES = frozenset({"accountEnabled", "onPremisesSyncEnabled"})
COLLECTION_PROPERTIES = frozenset({"businessPhones", "otherMails", "proxyAddresses"})


def patch_user(tenant: EmulatorTenant, user_id: str, body: Any) -> Response:
    if not isinstance(body, dict) or not body:
        raise GraphRequestError(400, "Empty or invalid PATCH payload.", "BadRequest")
    changes: dict[str, Any] = {}
    for name, value in body.items():
        if name not in USER_PROPERTIES:
            raise GraphRequestError(
                400,
                f"Property '{name}' does not exist as a declared property or extension property.",
                "Request_BadRequest",
            )
        if name in READ_ONLY:
            raise GraphRequestError(
                400, f"Property '{name}' is read-only and cannot be set.", "Request_BadRequest"
            )
        if name == "passwordProfile":
            if not isinstance(value, dict) or not value.get("password"):
                raise GraphRequestError(
                    400,
                    "Invalid value specified for property 'passwordProfile'.",
                    "Request_BadRequest",
                )
            # The password itself is never stored: only the fact that it changed.
            changes["lastPasswordChangeDateTime"] = True
            continue
        if not _value_fits(name, value):
            raise GraphRequestError(
                400,
                f"Invalid value specified for property '{name}' of resource 'User'.",
                "Request_BadRequest",
            )
        changes[name] = value
    try:
        _apply_user_changes(tenant, user_id, changes)
    except TenantError as exc:
        raise GraphRequestError(
            400,
            "Another object with the same value for property userPrincipalName already exists."
            if "already exists" in str(exc)
            else str(exc),
            "Request_BadRequest",
        ) from None
    return Response(204)


def delete_group(tenant: EmulatorTenant, group_id: str) -> Response:
    """group-delete.md: 204; a Microsoft 365 group goes to deleted items for 30 days, a
    security or distribution group is deleted for good (``soft_delete_group`` decides)."""
    tenant.soft_delete_group(group_id)
    return Response(204)


def _apply_user_changes(tenant: EmulatorTenant, user_id: str, changes: Mapping[str, Any]) -> None:
    password_changed = "lastPasswordChangeDateTime" in changes
    writable = {k: v for k, v in changes.items() if k != "lastPasswordChangeDateTime"}
    if writable:
        tenant.update_user(user_id, **writable)
    if password_changed:
        tenant.record_password_change(user_id)


def _value_fits(name: str, value: Any) -> bool:
    """The JSON type Graph's user schema wants (strings may be null)."""
    if name in BOOLEAN_PROPERTIES:
        return isinstance(value, bool)
    if name in COLLECTION_PROPERTIES:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value is None or isinstance(value, str)
