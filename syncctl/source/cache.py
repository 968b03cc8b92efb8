"""The cached Entra slice: what a policy's scope resolution needs, kept between runs so the
next run applies Graph's delta answers to it instead of reading the tenant again.

It holds the *direct* structure (a group's own user members and nested groups), not the
flattened one a snapshot file holds, because a delta answer reports direct changes: removing
a nested group from a scope group must drop exactly the users reachable only through it.
``flatten`` turns it into the slice a full read hands scope resolution, so both paths end in
the same ``syncctl.source.scope`` functions and cannot disagree.

On disk (a state backend blob) it is compact JSON, user attributes as rows under one column
list, compressed; the blob is named by the SHA-256 of the uncompressed document, which a load
checks, so a torn or edited blob is refused (then Graph is read in full), never half-used.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncctl.model import RemovalReason, SourceGroup, SourceSnapshot, SourceUser

CACHE_FORMAT = 1
BLOB_PREFIX = "slice-"


class CacheUnusable(Exception):
    """The stored slice cannot be used (corrupt, another format); Graph is read in full."""


@dataclass(slots=True)
class CachedGroup:
    attributes: dict[str, Any]  # selected properties for scope/provisioned groups, else {}
    users: set[str] = field(default_factory=set)  # direct user members
    groups: set[str] = field(default_factory=set)  # direct nested groups (nested policies)


@dataclass(slots=True)
class TenantCache:
    """A policy's slice of the tenant, as of the delta links stored with it."""

    tenant: str
    key: str  # ``cache_key``: what the slice was read for
    scope: tuple[str, ...]  # resolved scope group ids, sorted
    provisioned: tuple[str, ...]  # resolved ids of ``source.groups``, sorted
    users: dict[str, dict[str, Any]]  # every user reachable from a scope group -> attributes
    groups: dict[str, CachedGroup]  # every group reachable from a scope or provisioned group
    # Managed ids that are not users of the slice, and why as far as Graph has said
    # (a removal reason from positive evidence: getByIds, deleted items, delta @removed).
    outside: dict[str, RemovalReason] = field(default_factory=dict)

    # -- structure -----------------------------------------------------------------------

    def reachable(self, roots: Iterable[str]) -> set[str]:
        """Groups reachable from ``roots`` through nested groups (roots included)."""
        seen: set[str] = set()
        stack = [r for r in roots if r in self.groups]
        while stack:
            group_id = stack.pop()
            if group_id in seen:
                continue
            seen.add(group_id)
            stack.extend(g for g in self.groups[group_id].groups if g in self.groups)
        return seen

    def user_members(self, group_id: str) -> set[str]:
        """The group's users, through nested groups too (transitive membership)."""
        members: set[str] = set()
        for reached in self.reachable([group_id]):
            members |= self.groups[reached].users
        return members

    def candidates(self) -> set[str]:
        """Users of the scope groups: the users scope resolution looks at."""
        found: set[str] = set()
        for group_id in self.reachable(self.scope):
            found |= self.groups[group_id].users
        return found

    def flatten(self) -> SourceSnapshot:
        """The slice as a full read gives it to scope resolution: candidate users with their
        attributes, scope and provisioned groups with their (transitive) user members."""
        users = {uid: SourceUser(uid, self.users[uid]) for uid in sorted(self.users)}
        groups: dict[str, SourceGroup] = {}
        for group_id in sorted({*self.scope, *self.provisioned}):
            members = tuple(sorted(self.user_members(group_id)))
            groups[group_id] = SourceGroup(group_id, self.groups[group_id].attributes, members)
        return SourceSnapshot(tenant=self.tenant, users=users, groups=groups)

    # -- storage -------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        columns = sorted({name for attributes in self.users.values() for name in attributes})
        return {
            "format": CACHE_FORMAT,
            "tenant": self.tenant,
            "key": self.key,
            "scope": list(self.scope),
            "provisioned": list(self.provisioned),
            "user_columns": columns,
            "users": [
                [uid, *(self.users[uid].get(c) for c in columns)] for uid in sorted(self.users)
            ],
            "groups": [
                [gid, g.attributes, sorted(g.users), sorted(g.groups)]
                for gid, g in sorted(self.groups.items())
            ],
            "outside": {k: str(self.outside[k]) for k in sorted(self.outside)},
        }

    def encode(self) -> tuple[str, bytes]:
        """(blob name, bytes): the name is the digest of the document, so equal slices have
        equal names and an unchanged slice is not written again."""
        text = json.dumps(self.to_document(), separators=(",", ":"), ensure_ascii=False)
        raw = text.encode("utf-8", "surrogatepass")
        return blob_name(raw), zlib.compress(raw, 1)


def blob_name(raw: bytes) -> str:
    return BLOB_PREFIX + hashlib.sha256(raw).hexdigest()


def decode(name: str, data: bytes) -> TenantCache:
    """The slice stored as ``name``; CacheUnusable when it is not exactly what was written."""
    try:
        raw = zlib.decompress(data)
    except zlib.error:
        raise CacheUnusable("the cached slice is not readable (corrupt blob)") from None
    if blob_name(raw) != name:
        raise CacheUnusable("the cached slice does not match its digest (corrupt blob)")
    try:
        document = json.loads(raw.decode("utf-8", "surrogatepass"))
        if document.get("format") != CACHE_FORMAT:
            raise CacheUnusable(
                f"the cached slice has format {document.get('format')!r}, not {CACHE_FORMAT}"
            )
        columns = document["user_columns"]
        users = {row[0]: dict(zip(columns, row[1:], strict=True)) for row in document["users"]}
        groups = {
            gid: CachedGroup(dict(attributes), set(members), set(nested))
            for gid, attributes, members, nested in document["groups"]
        }
        return TenantCache(
            tenant=str(document["tenant"]),
            key=str(document["key"]),
            scope=tuple(document["scope"]),
            provisioned=tuple(document["provisioned"]),
            users=users,
            groups=groups,
            outside={k: RemovalReason(v) for k, v in document["outside"].items()},
        )
    except CacheUnusable:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CacheUnusable(f"the cached slice is malformed ({type(exc).__name__})") from None


def cache_key(
    tenant: str,
    source: Mapping[str, Any],
    user_select: Iterable[str],
    group_select: Iterable[str],
) -> str:
    """What a slice depends on: another tenant, scope, group selection or set of selected
    properties makes it another slice (read in full). Filters, guests and disabled users
    are applied after the slice, so changing them reuses it."""
    document = {
        "format": CACHE_FORMAT,
        "tenant": tenant.casefold(),
        "source": source,
        "user_select": sorted(user_select),
        "group_select": sorted(group_select),
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
