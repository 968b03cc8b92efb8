"""What a policy means when it leaves something out (POLICY.md "Default mappings" and rules)."""

from __future__ import annotations

from pathlib import Path

from syncctl.policy.model import AttributeMapping

# As Entra's default SCIM mapping; a policy that lists `attributes` replaces these entirely.
DEFAULT_USER_ATTRIBUTES: tuple[AttributeMapping, ...] = (
    AttributeMapping("userName", "[userPrincipalName]"),
    AttributeMapping("displayName", "[displayName]"),
    AttributeMapping("name.givenName", "[givenName]"),
    AttributeMapping("name.familyName", "[surname]"),
    AttributeMapping('emails[type eq "work"].value', "[mail]"),
    AttributeMapping("title", "[jobTitle]"),
    AttributeMapping("department", "[department]"),
)
DEFAULT_GROUP_ATTRIBUTES: tuple[AttributeMapping, ...] = (
    AttributeMapping("displayName", "[displayName]"),
)


def default_state_path(policy_dir: Path, name: str) -> Path:
    return policy_dir / ".syncctl" / f"{name}.state.json"
