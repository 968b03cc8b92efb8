"""Policies built directly from the model (no YAML), for target and engine tests."""

from __future__ import annotations

from pathlib import Path

from syncctl.policy.model import (
    AttributeMapping,
    Deletion,
    GroupSelector,
    Mappings,
    ObjectMappings,
    Policy,
    ScimTarget,
    Source,
    SqliteTarget,
    StateConfig,
    TargetConfig,
    Tenant,
)

USER_ATTRIBUTES = (
    AttributeMapping("userName", "[userPrincipalName]"),
    AttributeMapping("displayName", "[displayName]"),
    AttributeMapping("name.givenName", "[givenName]"),
    AttributeMapping("name.familyName", "[surname]"),
    AttributeMapping('emails[type eq "work"].value', "[mail]"),
    AttributeMapping("department", "[department]"),
)
GROUP_ATTRIBUTES = (AttributeMapping("displayName", "[displayName]"),)


def make_policy(
    tmp_path: Path,
    name: str = "contract",
    *,
    target: TargetConfig | None = None,
    user_match: tuple[str, ...] = (),
    group_pattern: str | None = None,
    deletion: Deletion | None = None,
) -> Policy:
    return Policy(
        version=1,
        name=name,
        path=tmp_path / f"{name}.yaml",
        sha256="0" * 64,
        tenant=Tenant(id="contoso.onmicrosoft.com", snapshot=tmp_path / "snapshot.json"),
        source=Source(
            scope_groups=("Users",),
            groups=() if group_pattern is None else (GroupSelector(pattern=group_pattern),),
        ),
        target=target or SqliteTarget(path=tmp_path / "directory.db"),
        mappings=Mappings(
            user=ObjectMappings(attributes=USER_ATTRIBUTES, match=user_match),
            group=ObjectMappings(attributes=GROUP_ATTRIBUTES),
        ),
        deletion=deletion or Deletion(),
        state=StateConfig(path=tmp_path / ".syncctl" / f"{name}.state.json"),
    )


__all__ = ["ScimTarget", "make_policy"]
