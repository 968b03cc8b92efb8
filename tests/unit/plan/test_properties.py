"""Property tests: for random source/target states the plan is deterministic, never touches
what it does not manage, and applying it (to an in-memory target) converges in one step."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncctl.model import ObjectKind, RemovalReason, SourceSnapshot, TargetObject, TargetSnapshot
from syncctl.plan.model import Action, Change, ChangeKind, PolicyPlan
from syncctl.plan.planfile import dumps, loads, plan_to_dict
from syncctl.policy.model import (
    AttributeMapping,
    DeletionAction,
    GroupDeletionAction,
    Policy,
    Threshold,
)
from syncctl.render import markdown, text
from tests.unit.plan.support import (
    NOW,
    make_policy,
    plan_of,
    snapshot,
    source_group,
    source_user,
    whole_plan,
)

OWNER = "contoso-vault"
USERS = [f"u{i}" for i in range(7)]
GROUPS = [f"g{i}" for i in range(4)]
VALUES = st.sampled_from([None, "IT", "Sales", "it"])
SECRETS = st.sampled_from([None, "S3CRET-1", "S3CRET-2"])  # mapped through Redact()
NAMES = st.sampled_from(["Ann", "Ben", "Cat"])
MAPPINGS = (
    AttributeMapping("userName", "[userPrincipalName]"),
    AttributeMapping("displayName", "[displayName]"),
    AttributeMapping("department", "[department]"),
    AttributeMapping("employeeNumber", "Redact([employeeId])"),
)


def user_key(entra_id: str) -> str:
    return f"{entra_id}@contoso.com"


def group_key(entra_id: str) -> str:
    return f"Group {entra_id}"


@dataclasses.dataclass(frozen=True)
class World:
    policy: Policy
    source: SourceSnapshot
    target: TargetSnapshot
    disabled_at: Mapping[str, datetime]
    fail_for: frozenset[str]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    rules = st.sampled_from(list(DeletionAction))
    policy = make_policy(
        OWNER,
        user_attributes=MAPPINGS,
        user_match=draw(st.sampled_from([(), ("userName",)])),
        group_match=draw(st.sampled_from([(), ("displayName",)])),
        skip_empty_groups=draw(st.booleans()),
        out_of_scope=draw(rules),
        disabled=draw(rules),
        soft_deleted=draw(rules),
        hard_deleted=draw(rules),
        groups=draw(st.sampled_from(list(GroupDeletionAction))),
        delete_after=draw(st.sampled_from([None, timedelta(days=30)])),
        protected=tuple(draw(st.sets(st.sampled_from([*USERS, *GROUPS]), max_size=2))),
        max_deletes=Threshold(count=10_000),
        max_disables=Threshold(count=10_000),
    )
    # Where each Entra user is: in scope, removed for a reason, or simply gone.
    fates = st.sampled_from(["in", "in", "in", "gone", *list(RemovalReason)])
    in_scope, removed = [], {}
    for uid in USERS:
        fate = draw(fates)
        if fate == "in":
            attributes = {"displayName": draw(NAMES), "department": draw(VALUES)}
            attributes["employeeId"] = draw(SECRETS)
            in_scope.append(source_user(uid, user_key(uid), **attributes))
        elif fate != "gone":
            removed[uid] = RemovalReason(fate)
    scoped = [u.id for u in in_scope]
    groups = []
    for gid in GROUPS:
        fate = draw(st.sampled_from(["in", "in", "gone", RemovalReason.HARD_DELETED]))
        if fate == "in":
            chosen = draw(st.sets(st.sampled_from(USERS), max_size=5))
            groups.append(source_group(gid, group_key(gid), tuple(sorted(chosen))))
        elif fate != "gone":
            removed[gid] = RemovalReason(fate)
    source = snapshot(in_scope, groups, removed)
    # Filter members to in-scope users, as the reader does.
    source = dataclasses.replace(
        source,
        groups={
            g.id: dataclasses.replace(g, members=tuple(m for m in g.members if m in scoped))
            for g in groups
        },
    )

    target_users: list[TargetObject] = []
    target_groups: list[TargetObject] = []
    members: dict[str, frozenset[str]] = {}
    owners = st.sampled_from([OWNER, OWNER, None, "other-policy"])
    for uid in USERS:
        if draw(st.booleans()):
            owner = draw(owners)
            key = user_key(uid)
            if owner is None:
                key = draw(st.sampled_from([key, key.upper(), "legacy-admin"]))
            attributes = {
                "displayName": draw(NAMES),
                "department": draw(VALUES),
                "employeeNumber": draw(SECRETS),
            }
            attributes = {k: v for k, v in attributes.items() if v is not None}
            target_users.append(
                TargetObject(
                    ObjectKind.USER,
                    f"t-{uid}",
                    uid if owner is not None else None,
                    key,
                    draw(st.booleans()),
                    {"userName": key, **attributes},
                    owner,
                    "1",
                )
            )
    for gid in GROUPS:
        if draw(st.booleans()):
            owner = draw(owners)
            name = group_key(gid) if draw(st.booleans()) else f"{group_key(gid)} (old)"
            target_groups.append(
                TargetObject(
                    ObjectKind.GROUP,
                    f"t-{gid}",
                    gid if owner is not None else None,
                    name,
                    True,
                    {"displayName": name},
                    owner,
                    "1",
                )
            )
            user_ids = [u.target_id for u in target_users]
            members[f"t-{gid}"] = (
                frozenset(draw(st.sets(st.sampled_from(user_ids)))) if user_ids else frozenset()
            )
    target = TargetSnapshot(tuple(target_users), tuple(target_groups), members)
    disabled_at = {
        uid: NOW - timedelta(days=draw(st.sampled_from([1, 45])))
        for uid in draw(st.sets(st.sampled_from(USERS)))
    }
    fail_for = frozenset(draw(st.sets(st.sampled_from([*USERS, *GROUPS]), max_size=1)))
    return World(policy, source, target, disabled_at, fail_for)


def plan_world(world: World, target: TargetSnapshot | None = None, **overrides: Any) -> PolicyPlan:
    return plan_of(
        world.policy,
        overrides.get("source", world.source),
        target or world.target,
        disabled_at=overrides.get("disabled_at", world.disabled_at),
        fail_for=world.fail_for,
    )


# -- the in-memory applier -------------------------------------------------------------------


class MemoryTarget:
    """A dictionary model of a target that applies plan changes the way targets must."""

    def __init__(self, snapshot: TargetSnapshot, owner: str) -> None:
        self.owner = owner
        self.objects: dict[str, dict[str, Any]] = {
            o.target_id: dataclasses.asdict(o) | {"attributes": dict(o.attributes)}
            for o in (*snapshot.users, *snapshot.groups)
        }
        self.members = {g: set(m) for g, m in snapshot.members.items()}

    def _by_entra_id(self, kind: str, entra_id: str | None) -> str:
        (found,) = [
            t
            for t, o in self.objects.items()
            if o["kind"] == kind and o["external_id"] == entra_id and o["managed_by"] == self.owner
        ]
        return found

    def apply(self, changes: tuple[Change, ...]) -> None:
        objects = [c for c in changes if c.kind is not ChangeKind.MEMBERSHIP]
        first = [c for c in objects if c.action is not Action.DELETE]
        for change in first:
            self._object(change)
        for change in changes:
            if change.kind is ChangeKind.MEMBERSHIP:
                group = self._by_entra_id("group", change.group)
                user = self._by_entra_id("user", change.user)
                members = self.members.setdefault(group, set())
                (members.add if change.action is Action.ADD else members.discard)(user)
        for change in objects:
            if change.action is Action.DELETE:
                assert change.target_id is not None
                del self.objects[change.target_id]
                self.members.pop(change.target_id, None)
                for members in self.members.values():
                    members.discard(change.target_id)

    def _object(self, change: Change) -> None:
        key_path = "userName" if change.kind is ChangeKind.USER else "displayName"
        if change.action is Action.CREATE:
            target_id = f"new-{change.source_id}"
            self.objects[target_id] = {
                "kind": change.kind.value,
                "target_id": target_id,
                "external_id": change.source_id,
                "key": None,
                "active": True,
                "attributes": {},
                "managed_by": self.owner,
                "version": "1",
            }
        else:
            assert change.target_id is not None
            target_id = change.target_id
        obj = self.objects[target_id]
        if change.action is Action.ADOPT:
            obj.update(managed_by=self.owner, external_id=change.source_id, active=True)
        elif change.action is Action.ENABLE:
            obj["active"] = True
        elif change.action is Action.DISABLE:
            obj["active"] = False
        for attribute in change.attributes:
            if attribute.after is None:
                obj["attributes"].pop(attribute.path, None)
            else:
                obj["attributes"][attribute.path] = attribute.after
            if attribute.path == key_path:
                obj["key"] = attribute.after
        obj["version"] = str(int(obj["version"]) + 1)

    def snapshot(self) -> TargetSnapshot:
        def build(kind: str) -> tuple[TargetObject, ...]:
            return tuple(
                TargetObject(**{**o, "kind": ObjectKind(o["kind"])})
                for o in sorted(self.objects.values(), key=lambda o: o["target_id"])
                if o["kind"] == kind
            )

        groups = build("group")
        return TargetSnapshot(
            build("user"),
            groups,
            {g.target_id: frozenset(self.members.get(g.target_id, ())) for g in groups},
        )


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(worlds())
def test_plan_then_apply_then_plan_is_empty(world: World) -> None:
    first = plan_world(world)
    memory = MemoryTarget(world.target, OWNER)
    memory.apply(first.changes)
    disabled_at = dict(world.disabled_at)
    for change in first.changes:
        if change.action is Action.DISABLE and change.source_id:
            disabled_at[change.source_id] = NOW
        elif change.action in (Action.ENABLE, Action.DELETE) and change.source_id:
            disabled_at.pop(change.source_id, None)
    second = plan_world(world, memory.snapshot(), disabled_at=disabled_at)
    assert second.changes == (), [c.address + " " + c.action for c in second.changes]
    assert second.errors == first.errors


@SETTINGS
@given(worlds())
def test_plan_is_deterministic_whatever_the_input_order(world: World) -> None:
    first = dumps(whole_plan(plan_world(world)))
    shuffled_target = TargetSnapshot(
        tuple(reversed(world.target.users)),
        tuple(reversed(world.target.groups)),
        dict(reversed(list(world.target.members.items()))),
    )
    shuffled_source = dataclasses.replace(
        world.source,
        users=dict(reversed(list(world.source.users.items()))),
        groups=dict(reversed(list(world.source.groups.items()))),
    )
    second = dumps(whole_plan(plan_world(world, shuffled_target, source=shuffled_source)))
    assert first == second


@SETTINGS
@given(worlds())
def test_every_plan_saves_loads_and_renders(world: World) -> None:
    plan = whole_plan(plan_world(world))
    document = plan_to_dict(plan)
    assert loads(dumps(plan)) == document  # schema-valid, and the file says what the plan says
    rendered = text.render(document)
    for change in plan.policies[0].changes:
        if change.kind is not ChangeKind.MEMBERSHIP:
            kind, _, key = change.address.partition("/")
            assert f'# {kind} "{key}" will be ' in rendered
    assert "S3CRET" not in rendered + dumps(plan) + markdown.render(document)


@SETTINGS
@given(worlds())
def test_nothing_unmanaged_appears_in_a_change(world: World) -> None:
    plan = plan_world(world)
    objects = {o.target_id: o for o in (*world.target.users, *world.target.groups)}
    managed: set[tuple[str, str | None]] = {
        (o.kind.value, o.external_id)
        for o in objects.values()
        if o.managed_by == OWNER and o.external_id
    }
    will_manage = set(managed)
    for change in plan.changes:
        if change.kind is ChangeKind.MEMBERSHIP:
            continue
        if change.action is Action.CREATE:
            assert change.target_id is None
        elif change.action is Action.ADOPT:
            obj = objects[change.target_id or ""]
            assert obj.managed_by is None  # only truly unmanaged objects are adopted
        else:
            obj = objects[change.target_id or ""]
            assert (obj.managed_by, obj.external_id) == (OWNER, change.source_id)
        will_manage.add((change.kind.value, change.source_id))
    for change in plan.changes:
        if change.kind is ChangeKind.MEMBERSHIP:
            assert ("group", change.group) in will_manage
            assert ("user", change.user) in will_manage
    touched = {c.target_id for c in plan.changes if c.target_id}
    unmanaged_addresses = set(plan.unmanaged)
    for change in plan.changes:
        if change.action is not Action.ADOPT:
            assert change.address not in unmanaged_addresses or change.target_id is None
    for obj in objects.values():
        if obj.managed_by not in (OWNER, None):
            assert obj.target_id not in touched
