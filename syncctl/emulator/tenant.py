"""The emulated directory: users, groups, memberships, deleted items and the change log.

Every mutation appends to ``changes`` so that ``/users/delta`` and ``/groups/delta`` can report
what happened since a delta token was issued. Soft-deleted users keep their group links (Entra
restores them with the user) but disappear from member lists, so the change log records a
member removal for each group on delete and a member addition on restore.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import random
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from syncctl.emulator.responses import utc_iso
from syncctl.emulator.schema import (
    GROUP_PROPERTIES,
    OTHER_KINDS,
    READ_ONLY,
    USER_PROPERTIES,
    properties_of,
)
from syncctl.errors import SyncctlError

DOCUMENT_FORMAT = "syncctl-emulator-tenant"
DEFAULT_RETENTION = timedelta(days=30)  # directory.md: deleted items are restorable 30 days


class ChangeOp(StrEnum):
    UPSERT = "upsert"
    SOFT_DELETE = "soft_delete"
    RESTORE = "restore"
    HARD_DELETE = "hard_delete"
    MEMBER_ADD = "member_add"
    MEMBER_REMOVE = "member_remove"


@dataclass(frozen=True, slots=True)
class Change:
    seq: int  # 1-based position in the log; a delta token remembers the last one it saw
    kind: str  # "user" | "group"
    object_id: str
    op: ChangeOp
    properties: frozenset[str] = frozenset()  # changed properties (UPSERT)
    member_id: str | None = None  # MEMBER_ADD / MEMBER_REMOVE
    member_kind: str | None = None  # a schema.MEMBER_KINDS kind, for the member's @odata.type


class TenantError(SyncctlError, ValueError):
    """A tenant file that cannot be read, or a mutation Entra would refuse (unknown object,
    duplicate UPN, unknown property)."""


class EmulatorTenant:
    """A live, thread-safe directory. Read it under ``lock``; mutate it through the methods."""

    def __init__(
        self,
        tenant_id: str,
        domain: str,
        *,
        seed: int = 0,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.tenant_id = tenant_id
        self.domain = domain
        self.retention = retention
        self.lock = threading.RLock()
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}  # group id -> member ids (any MEMBER_KINDS)
        # Members that are neither users nor groups; keyed like ``others[kind][id]``.
        self.others: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in OTHER_KINDS}
        self.deleted_users: dict[str, dict[str, Any]] = {}
        self.deleted_groups: dict[str, dict[str, Any]] = {}
        self.changes: list[Change] = []
        # object id -> properties that had a value and were set to null since: delta sends
        # those as null, while never-set properties are left out (user-delta.md)
        self.cleared: dict[str, set[str]] = {}
        self.versions: dict[str, int] = {}  # bumped on every write; keys response caches
        # Passwords set through PATCH /users: user id -> a salted hash and the
        # forceChangePasswordNextSignIn flag; never the password (``password_matches``).
        self._passwords: dict[str, PasswordRecord] = {}
        # For tests: each successful PATCH /users as (user id, sorted property names), the
        # password listed as "passwordProfile" only (``record_write``).
        self.writes: list[tuple[str, tuple[str, ...]]] = []
        self._rng = random.Random(f"{seed}:mutations")
        self._shape = 0  # bumped when objects appear or disappear (sorted-id caches)
        self._sorted: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {}
        self._clock_offset = timedelta()

    # ---- time -------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.now(UTC) + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the tenant's clock forward (deleted-item retention, token expiry tests)."""
        with self.lock:
            self._clock_offset += timedelta(seconds=seconds)
            self.purge_expired()

    # ---- lookups ----------------------------------------------------------------------
    @property
    def seq(self) -> int:
        return len(self.changes)

    def kind_of(self, object_id: str) -> str | None:
        if object_id in self.users:
            return "user"
        if object_id in self.groups:
            return "group"
        for kind, objects in self.others.items():
            if object_id in objects:
                return kind
        return None

    def store_of(self, kind: str) -> dict[str, dict[str, Any]]:
        """The live objects of a kind ("user", "group" or one of ``OTHER_KINDS``)."""
        if kind == "user":
            return self.users
        if kind == "group":
            return self.groups
        return self.others[kind]

    def user_by_upn(self, upn: str) -> dict[str, Any] | None:
        wanted = upn.casefold()
        with self.lock:
            for user in self.users.values():
                if str(user.get("userPrincipalName", "")).casefold() == wanted:
                    return copy.deepcopy(user)
        return None

    def group_by_name(self, name: str) -> dict[str, Any] | None:
        wanted = name.casefold()
        with self.lock:
            for group_id in sorted(self.groups):
                group = self.groups[group_id]
                if str(group.get("displayName", "")).casefold() == wanted:
                    return copy.deepcopy(group)
        return None

    def live_members(self, group_id: str) -> list[str]:
        """Direct members that exist (soft-deleted users are hidden), sorted by id."""
        return sorted(m for m in self.members.get(group_id, ()) if self.kind_of(m) is not None)

    def transitive_members(self, group_id: str) -> list[str]:
        """All nested members (of any kind), each once, sorted by id; cycles are safe."""
        seen: set[str] = set()
        pending = [group_id]
        while pending:
            current = pending.pop()
            for member in self.live_members(current):
                if member in seen or member == group_id:
                    continue
                seen.add(member)
                if member in self.groups:
                    pending.append(member)
        return sorted(seen)

    def sorted_ids(self, store: str) -> tuple[str, ...]:
        """Ids of ``users``, ``groups``, ``deleted_users`` or ``deleted_groups``, sorted; cached
        until objects are created or deleted (reading 100,000 users must not sort each time)."""
        objects: dict[str, dict[str, Any]] = getattr(self, store)
        key = (self._shape, len(objects))
        cached = self._sorted.get(store)
        if cached is None or cached[0] != key:
            cached = (key, tuple(sorted(objects)))
            self._sorted[store] = cached
        return cached[1]

    def groups_containing(self, member_id: str) -> list[str]:
        return sorted(g for g, members in self.members.items() if member_id in members)

    # ---- mutations: users -------------------------------------------------------------
    def create_user(self, **props: Any) -> str:
        with self.lock:
            _check_properties("user", props, allow_id=True)
            if "userPrincipalName" not in props or "displayName" not in props:
                raise TenantError("create_user needs userPrincipalName and displayName")
            if self._upn_taken(str(props["userPrincipalName"])):
                raise TenantError(f"userPrincipalName {props['userPrincipalName']} already exists")
            user_id = str(props.pop("id", None) or self._new_id())
            user: dict[str, Any] = {
                "id": user_id,
                "accountEnabled": True,
                "userType": "Member",
                "businessPhones": [],
                "createdDateTime": utc_iso(self.now()),
            }
            user.update(props)
            self.users[user_id] = user
            self._log("user", user_id, ChangeOp.UPSERT, frozenset(user))
            return user_id

    def update_user(self, user_id: str, **props: Any) -> None:
        with self.lock:
            user = self._live("user", user_id)
            _check_properties("user", props)
            upn = props.get("userPrincipalName")
            if upn is not None and self._upn_taken(str(upn), except_id=user_id):
                raise TenantError(f"userPrincipalName {upn} already exists")
            self._update(user, "user", props)

    def disable_user(self, user_id: str) -> None:
        self.update_user(user_id, accountEnabled=False)

    def record_password_change(self, user_id: str) -> None:
        """A password reset: the password is never kept, only when it changed."""
        with self.lock:
            user = self._live("user", user_id)
            user["lastPasswordChangeDateTime"] = utc_iso(self.now())
            self._log("user", user_id, ChangeOp.UPSERT, frozenset({"lastPasswordChangeDateTime"}))

    def set_password(self, user_id: str, password: str, *, force_change: bool = False) -> None:
        """A password reset (PATCH passwordProfile): keeps a salted hash, never the value."""
        with self.lock:
            self._live("user", user_id)
            salt = os.urandom(16)
            self._passwords[user_id] = PasswordRecord(
                salt, _password_hash(password, salt), force_change
            )
            self.record_password_change(user_id)

    def password_matches(self, user_id: str, candidate: str) -> bool:
        """Whether ``candidate`` is the password last set for the user through Graph."""
        with self.lock:
            record = self._passwords.get(user_id)
        if record is None:
            return False
        return hmac.compare_digest(record.digest, _password_hash(candidate, record.salt))

    def must_change_password(self, user_id: str) -> bool | None:
        """The forceChangePasswordNextSignIn of the last password set (None: none set)."""
        with self.lock:
            record = self._passwords.get(user_id)
        return None if record is None else record.force_change

    def record_write(self, user_id: str, properties: Iterable[str]) -> None:
        with self.lock:
            self.writes.append((user_id, tuple(sorted(properties))))

    def soft_delete_user(self, user_id: str) -> None:
        with self.lock:
            user = self._live("user", user_id)
            del self.users[user_id]
            user["deletedDateTime"] = utc_iso(self.now())
            self.deleted_users[user_id] = user
            for group_id in self.groups_containing(user_id):
                self._log("group", group_id, ChangeOp.MEMBER_REMOVE, member_id=user_id)
            self._log("user", user_id, ChangeOp.SOFT_DELETE)

    def restore_user(self, user_id: str) -> None:
        with self.lock:
            user = self.deleted_users.pop(user_id, None)
            if user is None:
                raise TenantError(f"user {user_id} is not in deleted items")
            user["deletedDateTime"] = None
            self.cleared.setdefault(user_id, set()).add("deletedDateTime")
            self.users[user_id] = user
            self._log("user", user_id, ChangeOp.RESTORE)
            for group_id in self.groups_containing(user_id):
                if group_id in self.groups:
                    self._log("group", group_id, ChangeOp.MEMBER_ADD, member_id=user_id)

    def hard_delete_user(self, user_id: str) -> None:
        with self.lock:
            was_live = self.users.pop(user_id, None) is not None
            if not was_live and self.deleted_users.pop(user_id, None) is None:
                raise TenantError(f"user {user_id} does not exist")
            self._unlink(user_id, "user", log=was_live)
            self._log("user", user_id, ChangeOp.HARD_DELETE)

    # ---- mutations: groups ------------------------------------------------------------
    def create_group(self, **props: Any) -> str:
        with self.lock:
            _check_properties("group", props, allow_id=True)
            if "displayName" not in props:
                raise TenantError("create_group needs displayName")
            group_id = str(props.pop("id", None) or self._new_id())
            nickname = "".join(c for c in str(props["displayName"]) if c.isalnum()) or "group"
            group: dict[str, Any] = {
                "id": group_id,
                "createdDateTime": utc_iso(self.now()),
                "description": None,
                "groupTypes": [],
                "mailEnabled": False,
                "mailNickname": nickname,
                "securityEnabled": True,
                "mail": None,
                "visibility": None,
            }
            group.update(props)
            self.groups[group_id] = group
            self.members.setdefault(group_id, set())
            self._log("group", group_id, ChangeOp.UPSERT, frozenset(group))
            return group_id

    def update_group(self, group_id: str, **props: Any) -> None:
        with self.lock:
            group = self._live("group", group_id)
            _check_properties("group", props)
            self._update(group, "group", props)

    def soft_delete_group(self, group_id: str) -> None:
        """Microsoft 365 groups go to deleted items; security groups are deleted for good
        (group-delete.md), which delta reports as ``@removed: deleted``."""
        with self.lock:
            group = self._live("group", group_id)
            if "Unified" not in group.get("groupTypes", []):
                self.hard_delete_group(group_id)
                return
            del self.groups[group_id]
            group["deletedDateTime"] = utc_iso(self.now())
            self.deleted_groups[group_id] = group
            for parent in self.groups_containing(group_id):
                self._log("group", parent, ChangeOp.MEMBER_REMOVE, member_id=group_id)
            self._log("group", group_id, ChangeOp.SOFT_DELETE)

    def restore_group(self, group_id: str) -> None:
        with self.lock:
            group = self.deleted_groups.pop(group_id, None)
            if group is None:
                raise TenantError(f"group {group_id} is not in deleted items")
            group["deletedDateTime"] = None
            self.cleared.setdefault(group_id, set()).add("deletedDateTime")
            self.groups[group_id] = group
            self._log("group", group_id, ChangeOp.RESTORE)
            for parent in self.groups_containing(group_id):
                if parent in self.groups:
                    self._log("group", parent, ChangeOp.MEMBER_ADD, member_id=group_id)

    def hard_delete_group(self, group_id: str) -> None:
        with self.lock:
            was_live = self.groups.pop(group_id, None) is not None
            if not was_live and self.deleted_groups.pop(group_id, None) is None:
                raise TenantError(f"group {group_id} does not exist")
            self.members.pop(group_id, None)
            self._unlink(group_id, "group", log=was_live)
            self._log("group", group_id, ChangeOp.HARD_DELETE)

    # ---- mutations: devices, service principals, org contacts --------------------------
    def create_object(self, kind: str, **props: Any) -> str:
        """A device, service principal or organisational contact (only ever a group member
        here: the emulator serves no /devices, /servicePrincipals or /contacts routes)."""
        with self.lock:
            if kind not in OTHER_KINDS:
                raise TenantError(f"create_object makes {', '.join(OTHER_KINDS)}, not {kind!r}")
            unknown = sorted(set(props) - properties_of(kind))
            if unknown:
                raise TenantError(f"unknown {kind} property {unknown[0]!r}")
            object_id = str(props.pop("id", None) or self._new_id())
            self.others[kind][object_id] = {"id": object_id, "deletedDateTime": None, **props}
            self._log(kind, object_id, ChangeOp.UPSERT, frozenset({"id", *props}))
            return object_id

    def delete_object(self, object_id: str) -> None:
        """Delete a device, service principal or contact for good (drops its memberships)."""
        with self.lock:
            kind = self.kind_of(object_id)
            if kind not in OTHER_KINDS:
                raise TenantError(f"{object_id} is not a {' / '.join(OTHER_KINDS)}")
            assert kind is not None
            del self.others[kind][object_id]
            self._unlink(object_id, kind, log=True)
            self._log(kind, object_id, ChangeOp.HARD_DELETE)

    # ---- mutations: membership --------------------------------------------------------
    def add_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            self._live("group", group_id)
            if self.kind_of(member_id) is None:
                raise TenantError(f"member {member_id} does not exist")
            if member_id == group_id:
                raise TenantError("a group cannot be a member of itself")
            members = self.members.setdefault(group_id, set())
            if member_id not in members:
                members.add(member_id)
                self._log("group", group_id, ChangeOp.MEMBER_ADD, member_id=member_id)

    def remove_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            self._live("group", group_id)
            members = self.members.get(group_id, set())
            if member_id not in members:
                raise TenantError(f"{member_id} is not a member of group {group_id}")
            members.discard(member_id)
            self._log("group", group_id, ChangeOp.MEMBER_REMOVE, member_id=member_id)

    # ---- retention --------------------------------------------------------------------
    def purge_expired(self) -> None:
        """Hard-delete deleted items older than ``retention`` (Entra does it after 30 days)."""
        with self.lock:
            cutoff = utc_iso(self.now() - self.retention)
            for user_id, user in sorted(self.deleted_users.items()):
                if str(user.get("deletedDateTime")) <= cutoff:
                    self.hard_delete_user(user_id)
            for group_id, group in sorted(self.deleted_groups.items()):
                if str(group.get("deletedDateTime")) <= cutoff:
                    self.hard_delete_group(group_id)

    # ---- documents --------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        with self.lock:
            return {
                "format": DOCUMENT_FORMAT,
                "version": 1,
                "tenant_id": self.tenant_id,
                "domain": self.domain,
                "users": [self.users[k] for k in sorted(self.users)],
                "groups": [
                    {**self.groups[k], "members": sorted(self.members.get(k, ()))}
                    for k in sorted(self.groups)
                ],
                "deletedUsers": [self.deleted_users[k] for k in sorted(self.deleted_users)],
                "deletedGroups": [self.deleted_groups[k] for k in sorted(self.deleted_groups)],
                **{
                    _DOCUMENT_KEYS[kind]: [objects[k] for k in sorted(objects)]
                    for kind, objects in self.others.items()
                },
            }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_document(), indent=1, sort_keys=True) + "\n")

    def iter_users(self) -> Iterator[dict[str, Any]]:
        for key in sorted(self.users):
            yield self.users[key]

    # ---- internals --------------------------------------------------------------------
    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _upn_taken(self, upn: str, except_id: str | None = None) -> bool:
        wanted = upn.casefold()
        return any(
            str(u.get("userPrincipalName", "")).casefold() == wanted and k != except_id
            for k, u in self.users.items()
        )

    def _live(self, kind: str, object_id: str) -> dict[str, Any]:
        store = self.users if kind == "user" else self.groups
        found = store.get(object_id)
        if found is None:
            raise TenantError(f"{kind} {object_id} does not exist")
        return found

    def _update(self, obj: dict[str, Any], kind: str, props: Mapping[str, Any]) -> None:
        changed = frozenset(k for k, v in props.items() if obj.get(k) != v)
        emptied = {k for k in changed if props[k] is None}
        if emptied:
            self.cleared.setdefault(str(obj["id"]), set()).update(emptied)
        obj.update(props)
        if changed:
            self._log(kind, str(obj["id"]), ChangeOp.UPSERT, changed)

    def _unlink(self, object_id: str, kind: str, *, log: bool) -> None:
        for group_id in self.groups_containing(object_id):
            self.members[group_id].discard(object_id)
            if log and (group_id in self.groups or group_id in self.deleted_groups):
                self._log(
                    "group", group_id, ChangeOp.MEMBER_REMOVE, member_id=object_id, member_kind=kind
                )

    def _member_kind(self, member_id: str) -> str:
        if member_id in self.deleted_groups:
            return "group"
        return self.kind_of(member_id) or "user"

    def _log(
        self,
        kind: str,
        object_id: str,
        op: ChangeOp,
        properties: frozenset[str] = frozenset(),
        *,
        member_id: str | None = None,
        member_kind: str | None = None,
    ) -> None:
        if member_id is not None and member_kind is None:
            member_kind = self._member_kind(member_id)
        if op in (ChangeOp.SOFT_DELETE, ChangeOp.RESTORE, ChangeOp.HARD_DELETE) or (
            op == ChangeOp.UPSERT and "id" in properties
        ):
            self._shape += 1
        self.versions[object_id] = self.versions.get(object_id, 0) + 1
        self.changes.append(
            Change(self.seq + 1, kind, object_id, op, properties, member_id, member_kind)
        )


@dataclass(frozen=True, slots=True)
class PasswordRecord:
    salt: bytes
    digest: bytes
    force_change: bool


def _password_hash(password: str, salt: bytes) -> bytes:
    # A test double, not a vault: PBKDF2 with few rounds keeps thousands of resets fast.
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8", "surrogatepass"), salt, 1000)


_DOCUMENT_KEYS = {
    "device": "devices",
    "servicePrincipal": "servicePrincipals",
    "orgContact": "orgContacts",
}


def _check_properties(kind: str, props: Mapping[str, Any], *, allow_id: bool = False) -> None:
    known = USER_PROPERTIES if kind == "user" else GROUP_PROPERTIES
    for name in sorted(props):
        if name not in known:
            raise TenantError(f"unknown {kind} property {name!r}")
        if name in READ_ONLY and not (allow_id and name in ("id", "createdDateTime")):
            raise TenantError(f"{kind} property {name!r} is read-only")


def load_tenant(path: Path) -> EmulatorTenant:
    """Read a tenant document (the format ``EmulatorTenant.save`` writes)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TenantError(f"{path}: cannot read tenant document: {exc}") from exc
    return tenant_from_document(document, source=str(path))


def tenant_from_document(document: Mapping[str, Any], source: str = "<tenant>") -> EmulatorTenant:
    if not isinstance(document, Mapping) or document.get("format") != DOCUMENT_FORMAT:
        raise TenantError(f'{source}: not a tenant document (want "format": "{DOCUMENT_FORMAT}")')
    tenant = EmulatorTenant(str(document["tenant_id"]), str(document["domain"]))
    try:
        for user in document.get("users", []):
            tenant.users[str(user["id"])] = dict(user)
        for raw in document.get("groups", []):
            group = dict(raw)
            members = group.pop("members", [])
            tenant.groups[str(group["id"])] = group
            tenant.members[str(group["id"])] = {str(m) for m in members}
        for user in document.get("deletedUsers", []):
            tenant.deleted_users[str(user["id"])] = dict(user)
        for group in document.get("deletedGroups", []):
            tenant.deleted_groups[str(group["id"])] = dict(group)
        for kind, key in _DOCUMENT_KEYS.items():
            for obj in document.get(key, []):
                tenant.others[kind][str(obj["id"])] = dict(obj)
    except (KeyError, TypeError) as exc:
        raise TenantError(f"{source}: malformed tenant document: {exc!r}") from exc
    for group_id, members in sorted(tenant.members.items()):
        for member in sorted(members):
            known = tenant.kind_of(member) or (
                "deleted"
                if member in tenant.deleted_users or member in tenant.deleted_groups
                else None
            )
            if known is None:
                raise TenantError(f"{source}: group {group_id} lists unknown member {member}")
    return tenant


def generate_tenant(users: int = 1000, groups: int = 50, seed: int = 7) -> EmulatorTenant:
    """A realistic tenant, identical for the same arguments (see ``syncctl.emulator.generate``)."""
    from syncctl.emulator.generate import build_tenant

    return build_tenant(users=users, groups=groups, seed=seed)
