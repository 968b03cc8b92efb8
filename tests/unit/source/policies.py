"""Policy objects built directly (the YAML loader is another engineer's), for source tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from syncctl.policy.model import (
    AttributeMapping,
    ClientSecretCredential,
    Deletion,
    GroupSelector,
    Mappings,
    ObjectMappings,
    Policy,
    SecretRef,
    Source,
    SqliteTarget,
    StateConfig,
    Tenant,
)

DEMO_SNAPSHOT = Path(__file__).resolve().parents[3] / "policies" / "snapshots" / "demo.json"


def make_policy(
    *,
    tenant: Tenant | None = None,
    source: Source | None = None,
    user_attributes: tuple[AttributeMapping, ...] = (
        AttributeMapping("userName", "[userPrincipalName]"),
        AttributeMapping("department", "[department]"),
    ),
    **source_changes: Any,
) -> Policy:
    base_source = source or Source(
        scope_groups=("Password Manager Users",),
        groups=(GroupSelector(name="Vault Admins"), GroupSelector(pattern="^PM-")),
    )
    if source_changes:
        base_source = dataclasses.replace(base_source, **source_changes)
    return Policy(
        version=1,
        name="test-policy",
        path=Path("/nonexistent/test.yaml"),
        sha256="0" * 64,
        tenant=tenant
        or Tenant(
            id="contoso.onmicrosoft.com",
            client_id="11111111-2222-3333-4444-555555555555",
            credential=ClientSecretCredential(SecretRef(env="TEST_SECRET")),
        ),
        source=base_source,
        target=SqliteTarget(path=Path("/nonexistent/t.db")),
        mappings=Mappings(
            user=ObjectMappings(attributes=user_attributes),
            group=ObjectMappings(attributes=(AttributeMapping("displayName", "[displayName]"),)),
        ),
        deletion=Deletion(),
        state=StateConfig(path=Path("/nonexistent/state.json")),
    )


def snapshot_policy(path: Path = DEMO_SNAPSHOT, **source_changes: Any) -> Policy:
    return make_policy(tenant=Tenant(id="contoso.onmicrosoft.com", snapshot=path), **source_changes)
