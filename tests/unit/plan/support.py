"""Builders for planner and renderer tests: policies, snapshots, scenarios, a small mapper.

``SimpleMapper`` is a test double for ``syncctl.mapping.Mapper`` that understands only
``[attribute]``, ``"literal"`` and ``Redact([attribute])``: planner tests stay about the
planner, not about the expression language. Golden tests use the real Mapper when
``syncctl.mapping`` is present (see ``mappers_for``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncctl.errors import MappingError
from syncctl.model import (
    ObjectKind,
    RemovalReason,
    SourceGroup,
    SourceSnapshot,
    SourceUser,
    TargetObject,
    TargetSnapshot,
)
from syncctl.plan.model import Plan, PolicyPlan
from syncctl.plan.planner import Mappers, plan_policy
from syncctl.policy.model import (
    ApplyMode,
    AttributeMapping,
    Deletion,
    DeletionAction,
    GroupDeletionAction,
    Mappings,
    ObjectMappings,
    Policy,
    Source,
    SqliteTarget,
    StateConfig,
    Tenant,
    Threshold,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CREATED_AT = "2026-11-22T12:00:00Z"
VERSION = "0.1.0"

USER_ATTRIBUTES = (
    AttributeMapping("userName", "[userPrincipalName]"),
    AttributeMapping("displayName", "[displayName]"),
    AttributeMapping("department", "[department]"),
)
GROUP_ATTRIBUTES = (AttributeMapping("displayName", "[displayName]"),)

_REF = re.compile(r"^\[(\w+)\]$")
_REDACT = re.compile(r"^Redact\(\[(\w+)\]\)$")
_LITERAL = re.compile(r'^"(.*)"$')


@dataclass(frozen=True, slots=True)
class Mapped:
    source_id: str
    key: str
    attributes: Mapping[str, Any]
    on_create: frozenset[str] = frozenset()
    redacted: frozenset[str] = frozenset()
    ignored: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SimpleMapper:
    policy_name: str
    mappings: ObjectMappings
    kind: ObjectKind
    fail_for: frozenset[str] = field(default_factory=frozenset)  # source ids that raise

    def map(self, source_id: str, attributes: Mapping[str, Any]) -> Mapped:
        if source_id in self.fail_for:
            raise MappingError(self.policy_name, "displayName", source_id, "Mid", "bad index")
        values: dict[str, Any] = {}
        redacted: set[str] = set()
        on_create: set[str] = set()
        for mapping in self.mappings.attributes:
            expression = mapping.expression
            if match := _REDACT.match(expression):
                value = attributes.get(match.group(1))
                redacted.add(mapping.target)
            elif match := _REF.match(expression):
                value = attributes.get(match.group(1))
            elif match := _LITERAL.match(expression):
                value = match.group(1)
            else:
                raise AssertionError(f"SimpleMapper cannot evaluate {expression}")
            if value in (None, "") and mapping.default is not None:
                value = mapping.default
            if mapping.apply is ApplyMode.ON_CREATE:
                on_create.add(mapping.target)
            if value is not None:
                values[mapping.target] = value
        key_path = "userName" if self.kind is ObjectKind.USER else "displayName"
        key = values.get(key_path)
        if not key:
            raise MappingError(self.policy_name, key_path, source_id, None, "key is empty")
        return Mapped(source_id, str(key), values, frozenset(on_create), frozenset(redacted))


def simple_mappers(policy: Policy, fail_for: frozenset[str] = frozenset()) -> Mappers:
    return Mappers(
        user=SimpleMapper(policy.name, policy.mappings.user, ObjectKind.USER, fail_for),
        group=SimpleMapper(policy.name, policy.mappings.group, ObjectKind.GROUP, fail_for),
    )


def make_policy(
    name: str = "contoso-vault",
    *,
    user_attributes: tuple[AttributeMapping, ...] = USER_ATTRIBUTES,
    group_attributes: tuple[AttributeMapping, ...] = GROUP_ATTRIBUTES,
    user_match: tuple[str, ...] = (),
    group_match: tuple[str, ...] = (),
    skip_empty_groups: bool = True,
    **deletion: Any,
) -> Policy:
    return Policy(
        version=1,
        name=name,
        path=Path(f"/policies/{name}.yaml"),
        sha256="ab" * 32,
        tenant=Tenant(id="contoso.onmicrosoft.com", snapshot=Path("/policies/snapshot.json")),
        source=Source(
            scope_groups=("Password Manager Users",), skip_empty_groups=skip_empty_groups
        ),
        target=SqliteTarget(path=Path(".syncctl/contoso.db")),
        mappings=Mappings(
            user=ObjectMappings(attributes=user_attributes, match=user_match),
            group=ObjectMappings(attributes=group_attributes, match=group_match),
        ),
        deletion=replace(Deletion(), **deletion),
        state=StateConfig(path=Path(f"/policies/.syncctl/{name}.state.json")),
    )


def source_user(entra_id: str, upn: str, **attributes: Any) -> SourceUser:
    name = upn.split("@", maxsplit=1)[0].title()
    values = {"id": entra_id, "userPrincipalName": upn, "displayName": name}
    values.update(attributes)
    return SourceUser(entra_id, values)


def source_group(entra_id: str, name: str, members: tuple[str, ...] = ()) -> SourceGroup:
    return SourceGroup(entra_id, {"id": entra_id, "displayName": name}, tuple(sorted(members)))


def snapshot(
    users: list[SourceUser] | tuple[SourceUser, ...] = (),
    groups: list[SourceGroup] | tuple[SourceGroup, ...] = (),
    removed: Mapping[str, RemovalReason] | None = None,
) -> SourceSnapshot:
    return SourceSnapshot(
        tenant="contoso.onmicrosoft.com",
        users={u.id: u for u in users},
        groups={g.id: g for g in groups},
        removed=dict(removed or {}),
    )


def target_user(
    target_id: str,
    key: str,
    external_id: str | None,
    *,
    managed_by: str | None = "contoso-vault",
    active: bool = True,
    version: str = "1",
    **attributes: Any,
) -> TargetObject:
    values = {"userName": key, **attributes}
    return TargetObject(
        ObjectKind.USER, target_id, external_id, key, active, values, managed_by, version
    )


def target_group(
    target_id: str,
    key: str,
    external_id: str | None,
    *,
    managed_by: str | None = "contoso-vault",
    version: str = "1",
) -> TargetObject:
    return TargetObject(
        ObjectKind.GROUP,
        target_id,
        external_id,
        key,
        True,
        {"displayName": key},
        managed_by,
        version,
    )


def target_snapshot(
    users: list[TargetObject] | tuple[TargetObject, ...] = (),
    groups: list[TargetObject] | tuple[TargetObject, ...] = (),
    members: Mapping[str, set[str] | frozenset[str]] | None = None,
) -> TargetSnapshot:
    return TargetSnapshot(
        tuple(users), tuple(groups), {g: frozenset(m) for g, m in (members or {}).items()}
    )


def plan_of(
    policy: Policy,
    source: SourceSnapshot,
    target: TargetSnapshot,
    *,
    disabled_at: Mapping[str, datetime] | None = None,
    now: datetime = NOW,
    fail_for: frozenset[str] = frozenset(),
) -> PolicyPlan:
    return plan_policy(
        policy,
        source,
        target,
        disabled_at=disabled_at or {},
        now=now,
        mappers=simple_mappers(policy, fail_for),
    )


def whole_plan(*policies: PolicyPlan) -> Plan:
    return Plan(policies=tuple(policies), syncctl_version=VERSION, created_at=CREATED_AT)


def actions(plan: PolicyPlan) -> list[tuple[str, str, str]]:
    return [(c.address, c.action.value, c.reason.value) for c in plan.changes]


# -- scenarios (golden tests) ---------------------------------------------------------------


def _mapping(target: str, spec: Any) -> AttributeMapping:
    if isinstance(spec, str):
        return AttributeMapping(target, spec)
    return AttributeMapping(
        target, spec["value"], spec.get("default"), ApplyMode(spec.get("apply", "always"))
    )


def _threshold(value: Any) -> Threshold:
    if isinstance(value, str) and value.endswith("%"):
        return Threshold(percent=float(value[:-1]))
    return Threshold(count=int(value))


def _duration(text: str) -> timedelta:
    number, unit = int(text[:-1]), text[-1]
    return {"d": timedelta(days=number), "h": timedelta(hours=number)}[unit]


def scenario_policy(spec: Mapping[str, Any]) -> Policy:
    deletion = dict(spec.get("deletion", {}))
    options: dict[str, Any] = {}
    for reason in ("out_of_scope", "disabled", "soft_deleted", "hard_deleted"):
        if reason in deletion:
            options[reason] = DeletionAction(deletion[reason])
    if "groups" in deletion:
        options["groups"] = GroupDeletionAction(deletion["groups"])
    for threshold in ("max_deletes", "max_disables"):
        if threshold in deletion:
            options[threshold] = _threshold(deletion[threshold])
    if "delete_after" in deletion:
        options["delete_after"] = _duration(deletion["delete_after"])
    if "protected" in deletion:
        options["protected"] = tuple(deletion["protected"])
    users = spec.get("user_attributes")
    groups = spec.get("group_attributes")
    return make_policy(
        spec.get("name", "contoso-vault"),
        user_attributes=tuple(_mapping(t, s) for t, s in users.items())
        if users
        else USER_ATTRIBUTES,
        group_attributes=tuple(_mapping(t, s) for t, s in groups.items())
        if groups
        else GROUP_ATTRIBUTES,
        user_match=tuple(spec.get("user_match", ())),
        group_match=tuple(spec.get("group_match", ())),
        skip_empty_groups=spec.get("skip_empty_groups", True),
        **options,
    )


def scenario_source(spec: Mapping[str, Any]) -> SourceSnapshot:
    users = [SourceUser(i, {"id": i, **a}) for i, a in spec.get("users", {}).items()]
    groups = [
        SourceGroup(i, {"id": i, **g["attributes"]}, tuple(sorted(g.get("members", ()))))
        for i, g in spec.get("groups", {}).items()
    ]
    removed = {i: RemovalReason(r) for i, r in spec.get("removed", {}).items()}
    return snapshot(users, groups, removed)


def _target_object(kind: ObjectKind, spec: Mapping[str, Any]) -> TargetObject:
    return TargetObject(
        kind=kind,
        target_id=spec["id"],
        external_id=spec.get("external_id"),
        key=spec["key"],
        active=spec.get("active", True),
        attributes=spec.get("attributes", {}),
        managed_by=spec.get("managed_by"),
        version=str(spec.get("version", "1")),
    )


def scenario_target(spec: Mapping[str, Any]) -> TargetSnapshot:
    return target_snapshot(
        [_target_object(ObjectKind.USER, u) for u in spec.get("users", ())],
        [_target_object(ObjectKind.GROUP, g) for g in spec.get("groups", ())],
        {g: set(m) for g, m in spec.get("members", {}).items()},
    )
