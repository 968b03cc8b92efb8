"""Plans the users (or the groups) of one policy: creates, updates, enables, adopts,
disables and deletes, and the conflicts and mapping errors that leave an object untouched.

The decisions the contract leaves open are listed in ``syncctl.plan.planner`` and
docs/plans.md.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any, Protocol

from syncctl.errors import MappingError
from syncctl.model import ObjectKind, RemovalReason, TargetObject
from syncctl.plan.addresses import object_address
from syncctl.plan.diff import changed_paths, comparable, synced_digest
from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, ObjectError, Reason
from syncctl.plan.unicode import lone_surrogate, norm_key, printable, surrogate_in
from syncctl.policy.model import (
    ApplyMode,
    DeletionAction,
    GroupDeletionAction,
    ObjectMappings,
    Policy,
)

KEY_PATH = {ObjectKind.USER: "userName", ObjectKind.GROUP: "displayName"}
SOURCE_NAME = {ObjectKind.USER: "userPrincipalName", ObjectKind.GROUP: "displayName"}

# Appended to collision messages whose two spellings differ (NFC/NFD, case): they look alike.
_SAME_NAME = " (names equal up to case and Unicode normalisation are the same name)"

_USER_REMOVAL_REASON = {
    RemovalReason.HARD_DELETED: Reason.HARD_DELETED,
    RemovalReason.SOFT_DELETED: Reason.SOFT_DELETED,
    RemovalReason.DISABLED: Reason.DISABLED_IN_SOURCE,
    RemovalReason.OUT_OF_SCOPE: Reason.OUT_OF_SCOPE,
}


class MappedObjectLike(Protocol):
    """What the planner reads of ``syncctl.mapping.MappedObject``."""

    @property
    def source_id(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...
    @property
    def on_create(self) -> frozenset[str]: ...
    @property
    def redacted(self) -> frozenset[str]: ...
    @property
    def ignored(self) -> frozenset[str]: ...


class ObjectMapper(Protocol):
    def map(self, source_id: str, attributes: Mapping[str, Any]) -> MappedObjectLike: ...


@dataclass
class ObjectPlanner:
    """Plans the users (or the groups) of one policy, in three steps: ``map_desired``,
    ``plan_desired``, then ``plan_user_removals`` / ``plan_group_removals``. The sets it
    leaves behind (present, stripped, deleted, untouched, adopted) drive the memberships."""

    policy: Policy
    kind: ObjectKind
    objects: tuple[TargetObject, ...]
    protected: frozenset[str]  # norm_key of protected names and Entra ids
    # Entra id -> when syncctl disabled it (state): tells "back in scope" from "disabled on
    # the target" for an inactive user in scope.
    disabled_at: Mapping[str, datetime] = field(default_factory=dict)
    # Entra id -> synced_digest of what syncctl last wrote (state): tells target drift from
    # an Entra change. Objects without one are assumed unchanged on the target.
    synced: Mapping[str, str] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    errors: list[ObjectError] = field(default_factory=list)
    desired: dict[str, MappedObjectLike] = field(default_factory=dict)
    # Entra ids left alone this run (mapping errors, key conflicts): no change of any kind.
    untouched: set[str] = field(default_factory=set)
    # Entra ids whose object exists and is in scope after apply (member candidates).
    present: set[str] = field(default_factory=set)
    # Entra ids of managed users that are (or stay) disabled or are deleted by this plan.
    stripped: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    adopted: dict[str, TargetObject] = field(default_factory=dict)  # Entra id -> object

    def __post_init__(self) -> None:
        owner = self.policy.name
        self.mappings: ObjectMappings = (
            self.policy.mappings.user
            if self.kind is ObjectKind.USER
            else self.policy.mappings.group
        )
        self.key_path = KEY_PATH[self.kind]
        self.change_kind = ChangeKind(self.kind.value)
        self._paths_cache: dict[tuple[frozenset[str], frozenset[str]], tuple[str, ...]] = {}
        self._order_cache: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.always_paths = frozenset(
            m.target for m in self.mappings.attributes if m.apply is ApplyMode.ALWAYS
        ) | {self.key_path}
        ordered = sorted(self.objects, key=attrgetter("target_id"))
        self.managed: dict[str, TargetObject] = {}
        for obj in ordered:
            if obj.managed_by == owner and obj.external_id and obj.external_id not in self.managed:
                self.managed[obj.external_id] = obj
        managed_ids = {id(o) for o in self.managed.values()}
        self.by_key: dict[str, list[TargetObject]] = defaultdict(list)
        for obj in ordered:
            self.by_key[norm_key(obj.key)].append(obj)
        self.foreign = [o for o in ordered if id(o) not in managed_ids]
        self.match_index = self._build_match_index()

    # -- desired objects -------------------------------------------------------------------

    def map_desired(self, sources: Iterable[tuple[str, Any]], mapper: ObjectMapper) -> None:
        for source_id, obj in sorted(sources, key=itemgetter(0)):
            try:
                mapped = mapper.map(source_id, obj.attributes)
            except MappingError as exc:
                name = self._existing_key(source_id) or obj.attributes.get(SOURCE_NAME[self.kind])
                self._error(source_id, str(name or source_id), str(exc))
                continue
            problem = self._invalid_text(mapped)
            if problem is not None:
                self._error(source_id, self._existing_key(source_id) or mapped.key, problem)
                continue
            self.desired[source_id] = mapped
        self._reject_duplicate_keys()

    def _invalid_text(self, mapped: MappedObjectLike) -> str | None:
        """A value no plan file, terminal or target can hold (a lone UTF-16 surrogate from
        Graph or a snapshot) makes this one object an error instead of failing the plan."""
        in_key = surrogate_in(mapped.key)
        found = (self.key_path, in_key) if in_key else lone_surrogate(mapped.attributes)
        if found is None:
            return None
        path, surrogate = found
        return str(
            MappingError(
                self.policy.name,
                path,
                mapped.source_id,
                None,
                f"the value is not valid Unicode (lone UTF-16 surrogate {surrogate}); "
                "fix it in Entra",
            )
        )

    def _reject_duplicate_keys(self) -> None:
        # Keys are nearly all distinct: a list is made only for a key mapped twice.
        first: dict[str, str] = {}
        shared: dict[str, list[str]] = {}
        for source_id, mapped in self.desired.items():
            key = norm_key(mapped.key)
            earlier = first.setdefault(key, source_id)
            if earlier != source_id:
                shared.setdefault(key, [earlier]).append(source_id)
        for ids in shared.values():
            holder = [
                i
                for i in ids
                if self._existing_key(i) is not None
                and norm_key(self._existing_key(i) or "") == norm_key(self.desired[i].key)
            ]
            spellings = {self.desired[i].key for i in ids}
            same = _SAME_NAME if len(spellings) > 1 else ""
            for source_id in ids:
                if source_id in holder:
                    continue
                others = ", ".join(i for i in ids if i != source_id)
                key = self.desired[source_id].key
                self._error(
                    source_id,
                    key,
                    f'{self.key_path} "{key}" of Entra {self.kind} {source_id} is also mapped '
                    f"from Entra {self.kind} {others}{same}",
                )

    def plan_desired(self, skip_unless_managed: set[str] | frozenset[str] = frozenset()) -> None:
        claimed: dict[str, str] = {}  # target_id -> Entra id that adopts it
        for source_id, mapped in self.desired.items():
            if source_id in self.untouched:
                continue
            existing = self.managed.get(source_id)
            if existing is None and source_id in skip_unless_managed:
                continue
            holders = self.by_key.get(norm_key(mapped.key))
            others = [o for o in holders if o is not existing] if holders else []
            if existing is not None:
                if others:
                    self._error(source_id, mapped.key, self._conflict(mapped, others[0]))
                    continue
                self._plan_existing(mapped, existing)
                continue
            candidate, ambiguity = self._adoption_candidate(mapped)
            if ambiguity:
                self._error(source_id, mapped.key, ambiguity)
            elif candidate is not None:
                if candidate.target_id in claimed:
                    self._error(
                        source_id,
                        mapped.key,
                        f"matches the same unmanaged {self.kind} "
                        f'"{candidate.key}" as Entra {self.kind} {claimed[candidate.target_id]}',
                    )
                    continue
                blocking = [o for o in others if o is not candidate]
                if blocking:
                    self._error(source_id, mapped.key, self._conflict(mapped, blocking[0]))
                    continue
                claimed[candidate.target_id] = source_id
                self._adopt(mapped, candidate)
            elif others:
                self._error(source_id, mapped.key, self._conflict(mapped, others[0]))
            else:
                self._create(mapped)

    def _plan_existing(self, mapped: MappedObjectLike, obj: TargetObject) -> None:
        source_id = mapped.source_id
        wanted, actual, diffs = self._attribute_diffs(mapped, obj)
        self.present.add(source_id)
        if not obj.active:
            # syncctl records every disable it makes: an inactive account it never disabled
            # was deactivated on the target, though still in scope.
            reason = (
                Reason.RE_ENTERED_SCOPE if source_id in self.disabled_at else Reason.TARGET_DISABLED
            )
            self._emit(Action.ENABLE, reason, mapped.key, obj, diffs, synced=wanted)
        elif diffs:
            # Where syncctl recorded what it wrote, a target that no longer holds it was
            # edited there; otherwise (or when the target is untouched) Entra changed.
            recorded = self.synced.get(source_id)
            drifted = recorded is not None and recorded != synced_digest(actual)
            reason = Reason.TARGET_DRIFT if drifted else Reason.ATTRIBUTES_CHANGED
            self._emit(Action.UPDATE, reason, mapped.key, obj, diffs, synced=wanted)

    def _adopt(self, mapped: MappedObjectLike, obj: TargetObject) -> None:
        self.adopted[mapped.source_id] = obj
        self.present.add(mapped.source_id)
        wanted, _, diffs = self._attribute_diffs(mapped, obj)
        self._emit(
            Action.ADOPT,
            # Adopting makes the account active like every in-scope one: say so in the plan.
            Reason.MATCHED_EXISTING if obj.active else Reason.MATCHED_EXISTING_DISABLED,
            mapped.key,
            obj,
            diffs,
            source_id=mapped.source_id,
            synced=wanted,
        )

    def _create(self, mapped: MappedObjectLike) -> None:
        values = dict(mapped.attributes)
        values.setdefault(self.key_path, mapped.key)
        redacted = mapped.redacted
        attributes = tuple(
            [
                AttributeChange(path, None, value, path in redacted)
                for path in self._ordered(tuple(values))
                if (value := values[path]) is not None
            ]
        )
        self.present.add(mapped.source_id)
        paths = self._compared_paths(mapped.on_create, mapped.ignored)
        wanted = comparable(mapped.attributes, paths)
        wanted[self.key_path] = mapped.key
        self.changes.append(
            Change(
                address=object_address(self.kind, mapped.key),
                kind=self.change_kind,
                action=Action.CREATE,
                reason=Reason.ENTERED_SCOPE,
                source_id=mapped.source_id,
                attributes=attributes,
                synced=wanted,
            )
        )

    def _attribute_diffs(
        self, mapped: MappedObjectLike, obj: TargetObject
    ) -> tuple[dict[str, Any], dict[str, Any], tuple[AttributeChange, ...]]:
        """(wanted, actual, diffs): the compared values of both sides and how they differ."""
        paths = self._compared_paths(mapped.on_create, mapped.ignored)
        wanted = comparable(mapped.attributes, paths)
        wanted[self.key_path] = mapped.key
        actual = comparable(obj.attributes, paths)
        actual[self.key_path] = obj.key
        if wanted == actual:
            return wanted, actual, ()
        return (
            wanted,
            actual,
            tuple(
                AttributeChange(
                    path, actual.get(path), wanted.get(path), redacted=path in mapped.redacted
                )
                for path in sorted(changed_paths(actual, wanted), key=self._path_order)
            ),
        )

    def _compared_paths(
        self, on_create: frozenset[str], ignored: frozenset[str]
    ) -> tuple[str, ...]:
        """Mapped paths that are kept in sync: not on_create, not dropped by
        IgnoreFlowIfNullOrEmpty, never Deferred (those only exist in on_create mappings)."""
        cache_key = (on_create, ignored)
        paths = self._paths_cache.get(cache_key)
        if paths is None:
            paths = tuple(sorted(self.always_paths - on_create - ignored - {self.key_path}))
            self._paths_cache[cache_key] = paths
        return paths

    def _ordered(self, paths: tuple[str, ...]) -> tuple[str, ...]:
        """``paths`` in display order; objects of one policy share a few path sets, so the
        sort runs once per set, not once per object."""
        ordered = self._order_cache.get(paths)
        if ordered is None:
            ordered = self._order_cache[paths] = tuple(sorted(paths, key=self._path_order))
        return ordered

    def _path_order(self, path: str) -> tuple[bool, str]:
        """The key attribute first (as people look for it), then alphabetical."""
        return path != self.key_path, path

    def _emit(
        self,
        action: Action,
        reason: Reason,
        key: str,
        obj: TargetObject,
        attributes: tuple[AttributeChange, ...] = (),
        *,
        source_id: str | None = None,
        synced: dict[str, Any] | None = None,
    ) -> None:
        self.changes.append(
            Change(
                address=object_address(self.kind, key),
                kind=self.change_kind,
                action=action,
                reason=reason,
                source_id=source_id or obj.external_id,
                target_id=obj.target_id,
                attributes=attributes,
                version=obj.version,
                synced=synced,
            )
        )

    # -- adoption and conflicts ------------------------------------------------------------

    def _match_values(self, values: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
        result = []
        for path in self.mappings.match:
            value = key if path == self.key_path else values.get(path)
            if value is None:
                return None
            # The key matches like keys collide (else a Unicode-equal unmanaged object would
            # be a conflict that match cannot resolve); userName always does.
            if path in (self.key_path, "userName") and isinstance(value, str):
                value = norm_key(value)
            result.append(json.dumps(value, sort_keys=True, default=str))
        return tuple(result)

    def _build_match_index(self) -> dict[tuple[str, ...], list[TargetObject]]:
        index: dict[tuple[str, ...], list[TargetObject]] = defaultdict(list)
        if not self.mappings.match:
            return index
        for obj in self.foreign:
            if obj.managed_by is not None:
                continue  # owned by another policy: never adopted
            values = self._match_values(obj.attributes, obj.key)
            if values is not None:
                index[values].append(obj)
        return index

    def _adoption_candidate(
        self, mapped: MappedObjectLike
    ) -> tuple[TargetObject | None, str | None]:
        if not self.mappings.match:
            return None, None
        values = self._match_values(mapped.attributes, mapped.key)
        if values is None:
            return None, None
        found = self.match_index.get(values, [])
        if len(found) > 1:
            keys = ", ".join(f'"{o.key}"' for o in found)
            match = ", ".join(self.mappings.match)
            return None, (
                f"matches {len(found)} unmanaged {self.kind}s ({keys}) on "
                f"mappings.{self.kind}.match [{match}]; adopt needs exactly one"
            )
        return (found[0] if found else None), None

    def _conflict(self, mapped: MappedObjectLike, other: TargetObject) -> str:
        return self._conflict_text(mapped, other) + (_SAME_NAME if other.key != mapped.key else "")

    def _conflict_text(self, mapped: MappedObjectLike, other: TargetObject) -> str:
        what = f'{self.key_path} "{mapped.key}" conflicts with'
        if other.managed_by is None:
            return (
                f'{what} unmanaged {self.kind} "{other.key}"; add '
                f"mappings.{self.kind}.match to adopt it"
            )
        if other.managed_by == self.policy.name:
            return (
                f'{what} {self.kind} "{other.key}" that this policy manages for Entra '
                f"{self.kind} {other.external_id}"
            )
        return f'{what} {self.kind} "{other.key}" managed by policy "{other.managed_by}"'

    # -- removals --------------------------------------------------------------------------

    def _removal_candidates(self) -> list[tuple[str, TargetObject]]:
        return [
            (source_id, obj)
            for source_id, obj in self.managed.items()
            if source_id not in self.desired
            and source_id not in self.untouched
            and not self._is_protected(source_id, obj)
        ]

    def plan_user_removals(
        self,
        removed: Mapping[str, RemovalReason],
        disabled_at: Mapping[str, datetime],
        now: datetime,
    ) -> None:
        deletion = self.policy.deletion
        for source_id, obj in self._removal_candidates():
            why = removed.get(source_id, RemovalReason.OUT_OF_SCOPE)
            rule = {
                RemovalReason.HARD_DELETED: deletion.hard_deleted,
                RemovalReason.SOFT_DELETED: deletion.soft_deleted,
                RemovalReason.DISABLED: deletion.disabled,
                RemovalReason.OUT_OF_SCOPE: deletion.out_of_scope,
            }[why]
            if rule is DeletionAction.IGNORE:
                continue
            self.stripped.add(source_id)
            reason = _USER_REMOVAL_REASON[why]
            if rule is DeletionAction.DELETE:
                self._remove(Action.DELETE, reason, obj)
            elif obj.active:
                self._remove(Action.DISABLE, reason, obj)
            elif _timer_elapsed(deletion.delete_after, disabled_at.get(source_id), now):
                self._remove(Action.DELETE, Reason.DELETE_AFTER_ELAPSED, obj)

    def plan_group_removals(self, removed: Mapping[str, RemovalReason]) -> None:
        if self.policy.deletion.groups is GroupDeletionAction.IGNORE:
            return
        for source_id, obj in self._removal_candidates():
            why = removed.get(source_id)
            reason = (
                Reason.HARD_DELETED
                if why is RemovalReason.HARD_DELETED
                else Reason.SOFT_DELETED
                if why is RemovalReason.SOFT_DELETED
                else Reason.GROUP_LEFT_SCOPE
            )
            self._remove(Action.DELETE, reason, obj)

    def _remove(self, action: Action, reason: Reason, obj: TargetObject) -> None:
        if action is Action.DELETE:
            assert obj.external_id is not None
            self.deleted.add(obj.external_id)
        self._emit(action, reason, obj.key, obj)

    def _is_protected(self, source_id: str, obj: TargetObject) -> bool:
        return norm_key(source_id) in self.protected or norm_key(obj.key) in self.protected

    # -- helpers ---------------------------------------------------------------------------

    def _existing_key(self, source_id: str) -> str | None:
        obj = self.managed.get(source_id)
        return obj.key if obj is not None else None

    def _error(self, source_id: str, key: str, message: str) -> None:
        self.untouched.add(source_id)
        # Messages quote keys and values, which may hold a lone surrogate: escape it.
        self.errors.append(ObjectError(object_address(self.kind, key), printable(message)))

    def final_key(self, source_id: str) -> str:
        """The key addresses use: the desired one when in scope, else the target's."""
        if source_id in self.present:
            return self.desired[source_id].key
        obj = self.managed.get(source_id)
        assert obj is not None
        return obj.key

    def target_ids(self) -> dict[str, str]:
        """target_id -> Entra id for every object this policy manages after apply."""
        result = {obj.target_id: source_id for source_id, obj in self.managed.items()}
        result.update({obj.target_id: source_id for source_id, obj in self.adopted.items()})
        return result

    def unmanaged_addresses(self) -> list[str]:
        adopted = {id(o) for o in self.adopted.values()}
        return [object_address(self.kind, o.key) for o in self.foreign if id(o) not in adopted]


def _timer_elapsed(
    delete_after: timedelta | None, disabled: datetime | None, now: datetime
) -> bool:
    return delete_after is not None and disabled is not None and disabled + delete_after <= now
