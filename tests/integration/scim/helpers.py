"""Policies and changes for the SCIM tests, built directly from the frozen models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, Reason
from syncctl.policy.model import (
    AttributeMapping,
    Deletion,
    Mappings,
    ObjectMappings,
    Policy,
    ScimTarget,
    SecretRef,
    Source,
    StateConfig,
    Tenant,
)

USER_PATHS = (
    "userName",
    "displayName",
    "name.givenName",
    "name.familyName",
    'emails[type eq "work"].value',
    "title",
    "department",
    "employeeNumber",
)


def make_policy(
    tmp_path: Path,
    *,
    url: str = "http://127.0.0.1:1/v2",
    user_match: tuple[str, ...] = (),
    group_match: tuple[str, ...] = (),
) -> Policy:
    token = tmp_path / "token"
    if not token.exists():
        token.write_text("unused", encoding="utf-8")
    return Policy(
        version=1,
        name="scim-test",
        path=tmp_path / "policy.yaml",
        sha256="0" * 64,
        tenant=Tenant(id="contoso", snapshot=tmp_path / "snapshot.json"),
        source=Source(scope_groups=("All",)),
        target=ScimTarget(url=url, token=SecretRef(file=token)),
        mappings=Mappings(
            user=ObjectMappings(
                attributes=tuple(AttributeMapping(p, f"[{p}]") for p in USER_PATHS),
                match=user_match,
            ),
            group=ObjectMappings(
                attributes=(AttributeMapping("displayName", "[displayName]"),), match=group_match
            ),
        ),
        deletion=Deletion(),
        state=StateConfig(path=tmp_path / "state.json"),
    )


def user_attrs(n: int, **over: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "userName": f"user{n}@contoso.test",
        "displayName": f"User {n}",
        "name.givenName": "User",
        "name.familyName": f"N{n}",
        'emails[type eq "work"].value': f"user{n}@contoso.test",
        "title": "Engineer",
        "department": "R&D",
        "employeeNumber": str(1000 + n),
    }
    attrs.update(over)
    return attrs


def eid(kind: str, n: int) -> str:
    prefix = "0000" if kind == "user" else "1111"
    return f"{prefix}{n:04d}-0000-4000-8000-{n:012d}"


def create_user(n: int, **over: Any) -> Change:
    attrs = user_attrs(n, **over)
    return Change(
        address=f"user/{attrs['userName']}",
        kind=ChangeKind.USER,
        action=Action.CREATE,
        reason=Reason.ENTERED_SCOPE,
        source_id=eid("user", n),
        attributes=tuple(AttributeChange(k, None, v) for k, v in sorted(attrs.items())),
    )


def create_group(n: int, name: str | None = None) -> Change:
    display = name or f"Group {n}"
    return Change(
        address=f"group/{display}",
        kind=ChangeKind.GROUP,
        action=Action.CREATE,
        reason=Reason.ENTERED_SCOPE,
        source_id=eid("group", n),
        attributes=(AttributeChange("displayName", None, display),),
    )


def member(action: Action, group: int, user: int) -> Change:
    return Change(
        address=f"membership/Group {group}/user{user}@contoso.test",
        kind=ChangeKind.MEMBERSHIP,
        action=action,
        reason=Reason.MEMBER_IN_SCOPE if action is Action.ADD else Reason.MEMBER_LEFT,
        group=eid("group", group),
        user=eid("user", user),
    )


def object_change(
    action: Action,
    target_id: str,
    address: str,
    *,
    kind: ChangeKind = ChangeKind.USER,
    source_id: str | None = None,
    version: str | None = None,
    attributes: tuple[AttributeChange, ...] = (),
) -> Change:
    return Change(
        address=address,
        kind=kind,
        action=action,
        reason=Reason.ATTRIBUTES_CHANGED,
        source_id=source_id,
        target_id=target_id,
        attributes=attributes,
        version=version,
    )
