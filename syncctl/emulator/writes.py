"""The writes the emulator serves: ``PATCH /users/{id}`` (user-update.md) and ``DELETE
/groups/{id}`` (group-delete.md). Permissions are checked before these run (permissions.py);
here only what the pages say about the request and its effect on the tenant.

A PATCH is checked whole before anything changes (Graph applies all of it or none). A
``passwordProfile`` password must meet Entra's password policy (concept-sspr-policy.md,
"Password policies that only apply to cloud user accounts"): 8 to 256 characters, three of
lowercase, uppercase, digits and symbols, no characters outside that set; otherwise Graph's
400 for it. The tenant keeps only a salted hash of a password that was set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    password: PasswordReset | None = None
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
            password = _password_profile(value)
            continue
        if not _value_fits(name, value):
            raise GraphRequestError(
                400,
                f"Invalid value specified for property '{name}' of resource 'User'.",
                "Request_BadRequest",
            )
        changes[name] = value
    try:
        _apply_user_changes(tenant, user_id, changes, password)
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


def _apply_user_changes(
    tenant: EmulatorTenant,
    user_id: str,
    changes: Mapping[str, Any],
    password: PasswordReset | None,
) -> None:
    with tenant.lock:  # one PATCH is one write: its properties and its password together
        if changes:
            tenant.update_user(user_id, **changes)
        if password is not None:
            tenant.set_password(user_id, password.password, force_change=password.force_change)
        names = sorted({*changes, *(["passwordProfile"] if password is not None else [])})
        tenant.record_write(user_id, names)


@dataclass(frozen=True, slots=True)
class PasswordReset:
    password: str = field(repr=False)  # never in a repr, a log or an error
    force_change: bool


PASSWORD_PROFILE_KEYS = frozenset(
    {"password", "forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa"}
)
# concept-sspr-policy.md, "Characters allowed": A-Z, a-z, 0-9, these symbols and blank space
PASSWORD_SYMBOLS = frozenset("@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<>")
MIN_PASSWORD, MAX_PASSWORD = 8, 256
# Graph's answer to a password the policy refuses (Update-MgUser reports it as "Status: 400
# (BadRequest) ErrorCode: Request_BadRequest"); it never quotes the password.
COMPLEXITY_MESSAGE = (
    "The specified password does not comply with password complexity requirements. "
    "Please provide a different password."
)


def _password_profile(value: Any) -> PasswordReset:
    invalid = GraphRequestError(
        400, "Invalid value specified for property 'passwordProfile'.", "Request_BadRequest"
    )
    if not isinstance(value, dict) or not isinstance(value.get("password"), str):
        raise invalid
    if not set(value) <= PASSWORD_PROFILE_KEYS or not all(
        isinstance(value.get(flag, False), bool) for flag in PASSWORD_PROFILE_KEYS - {"password"}
    ):
        raise invalid
    password: str = value["password"]
    if not password_meets_policy(password):
        raise GraphRequestError(400, COMPLEXITY_MESSAGE, "Request_BadRequest")
    return PasswordReset(password, bool(value.get("forceChangePasswordNextSignIn", False)))


def password_meets_policy(password: str) -> bool:
    """Entra's cloud password policy: 8-256 allowed characters, three of four kinds."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return False
    kinds = {"lower": False, "upper": False, "digit": False, "symbol": False}
    for char in password:
        if "a" <= char <= "z":
            kinds["lower"] = True
        elif "A" <= char <= "Z":
            kinds["upper"] = True
        elif "0" <= char <= "9":
            kinds["digit"] = True
        elif char in PASSWORD_SYMBOLS:
            kinds["symbol"] = True
        elif char != " ":
            return False  # "Characters not allowed: Unicode characters"
    return sum(kinds.values()) >= 3


def _value_fits(name: str, value: Any) -> bool:
    """The JSON type Graph's user schema wants (strings may be null)."""
    if name in BOOLEAN_PROPERTIES:
        return isinstance(value, bool)
    if name in COLLECTION_PROPERTIES:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value is None or isinstance(value, str)
