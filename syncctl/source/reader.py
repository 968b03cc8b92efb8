"""Reading a policy's slice of Entra through Graph, then resolving scope and removals.

Requests on a full read (the formula tests assert; S = scope groups, P = provisioned groups
that are not reached from a scope group, k = managed ids out of scope that the slice does
not explain, of which r are not live (neither user nor group) and h of those not in deleted
items):

    lookups   ceil(L / 20)                       L = distinct group names + ids, in $batch
              or ceil(G / 999)                   when a regex selector lists all G groups
    members   level by level from S, then from P (nested policies follow nested groups):
              ceil(2 * groups of the level / 20) first pages of each group's direct users
              and direct nested groups (only users when not nested), 20 to a $batch,
              + every further page (ceil(n / 999) - 1 per list)
    removed   only when k > 0: ceil(k / 1000) getByIds(user) + ceil(k' / 1000) getByIds(group)
              for the k' ids that are not users
              + ceil(r / 20) $batch of GET /directory/deletedItems/{id}
              + ceil(h / 20) $batch of GET /directoryObjects/{id}

The slice is read in its direct structure (``syncctl.source.cache``), each group's own users
and nested groups, because that is what Graph's delta answers change
(``syncctl.source.incremental``); flattened, it is exactly the transitive membership. Users
come from the scope groups' member lists with ``$select`` of the properties the policy uses,
so no separate /users enumeration is needed. Every collection is read with ``$count=true``
and checked against its ``@odata.count`` (GraphClient), and every managed id out of scope is
accounted for by positive evidence: the slice itself (a user of a scope group, with its
``accountEnabled``; a group read), or Graph's answer for exactly that id
(``removal_reasons``). Nothing is inferred from an id missing in an answer.

Groups also hold devices, service principals, org contacts and groups. Member lists are read
with the ``microsoft.graph.user`` cast, so Graph leaves the other types out; its items carry no
``@odata.type`` (Microsoft's published examples, group-list-members.md), so nothing here
filters on it. An app that may read group members but not users (GroupMember.Read.All without
User.Read.All) gets each user "with limited information": the id, every property null
(permissions-overview.md). Such users are never taken for users with empty attributes: the
read fails naming the missing permission.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from syncctl.errors import GraphError
from syncctl.mapping import source_attributes
from syncctl.model import ObjectKind, RemovalReason, SourceSnapshot
from syncctl.policy.model import Policy, Tenant, is_object_id
from syncctl.source import permissions
from syncctl.source.auth import TokenProvider
from syncctl.source.cache import CachedGroup, TenantCache, cache_key
from syncctl.source.clouds import graph_base
from syncctl.source.graph import PAGE_SIZE, GraphClient, Request
from syncctl.source.http import build_http_client
from syncctl.source.progress import Progress
from syncctl.source.removals import removal_reasons
from syncctl.source.scope import (
    GroupRef,
    in_scope,
    resolve_scope_group,
    select_groups,
)
from syncctl.source.snapshot import TenantSlice

# Always read: identity, scope decisions (guests, disabled) and what search/plan show.
USER_BASE = frozenset({"id", "displayName", "userPrincipalName", "accountEnabled", "userType"})
GROUP_BASE = frozenset(
    {"id", "displayName", "description", "groupTypes", "mailEnabled", "securityEnabled"}
)


@contextmanager
def graph_session(tenant: Tenant, progress: Progress | None = None) -> Iterator[GraphClient]:
    """A signed-in Graph client for one run; the HTTP client is closed afterwards."""
    http = build_http_client(tenant.ca_bundle)
    try:
        yield GraphClient(http, graph_base(tenant), TokenProvider(tenant, http), progress=progress)
    finally:
        http.close()


def read_graph(
    policy: Policy, managed_ids: Collection[str], *, progress: Progress | None = None
) -> SourceSnapshot:
    with graph_session(policy.tenant, progress) as graph:
        return GraphReader(policy, graph).read(managed_ids)


def read_graph_slice(policy: Policy, *, progress: Progress | None = None) -> TenantSlice:
    """The slice ``syncctl export`` writes, labelled with the tenant's directory id too when
    the policy names the tenant by domain (so either name finds it later)."""
    with graph_session(policy.tenant, progress) as graph:
        tenant_slice = GraphReader(policy, graph).read_slice()
        tokens = graph.tokens
        directory_id = tokens.directory_id() if isinstance(tokens, TokenProvider) else None
    return TenantSlice(tenant_slice, directory_id)


def selected_properties(policy: Policy) -> dict[ObjectKind, frozenset[str]]:
    """Graph properties to ``$select``: what mappings and filters use, plus the base sets."""
    used = source_attributes(policy)
    filtered = {c.attribute for f in policy.source.filters for c in f}
    return {
        ObjectKind.USER: frozenset(USER_BASE | used.get(ObjectKind.USER, frozenset()) | filtered),
        ObjectKind.GROUP: frozenset(GROUP_BASE | used.get(ObjectKind.GROUP, frozenset())),
    }


class GraphReader:
    def __init__(self, policy: Policy, graph: GraphClient) -> None:
        self._policy = policy
        self._graph = graph
        selected = selected_properties(policy)
        self._user_select = sorted(selected[ObjectKind.USER])
        self._group_select = sorted(selected[ObjectKind.GROUP])

    def _error(self, message: str) -> GraphError:
        return GraphError(f"policy {self._policy.name}: {message}")

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def graph(self) -> GraphClient:
        return self._graph

    @property
    def user_select(self) -> list[str]:
        return self._user_select

    @property
    def group_select(self) -> list[str]:
        return self._group_select

    def cache_key(self) -> str:
        source = self._policy.source
        described = {
            "scope_groups": sorted(source.scope_groups),
            "nested": source.nested,
            "groups": sorted([s.id or "", s.name or "", s.pattern or ""] for s in source.groups),
        }
        return cache_key(self._policy.tenant.id, described, self._user_select, self._group_select)

    def read(self, managed_ids: Collection[str]) -> SourceSnapshot:
        return self.evaluate(self.read_cache(managed_ids), managed_ids)

    def evaluate(self, cache: TenantCache, managed_ids: Collection[str]) -> SourceSnapshot:
        """The planner's snapshot from a slice: scope resolved, and why each managed id out
        of scope left (from the slice's evidence; Graph is asked about ids it lacks)."""
        users, groups = in_scope(self._policy, cache.flatten(), self._error)
        gone = sorted({i for i in managed_ids if i not in users and i not in groups})
        known = {i: r for i in gone if (r := _known_reason(cache, i)) is not None}
        unknown = [i for i in gone if i not in known]
        asked = self.removal_reasons(unknown)
        for object_id, reason in asked.items():
            if object_id not in cache.users:
                cache.outside[object_id] = reason
        return SourceSnapshot(
            tenant=cache.tenant,
            users=users,
            groups=groups,
            removed=dict(sorted({**known, **asked}.items())),
        )

    def read_slice(self) -> SourceSnapshot:
        """Scope groups with their users (all attributes the policy needs) and the selected
        groups with their user members: everything scope resolution looks at."""
        return self.read_cache(()).flatten()

    def read_cache(self, managed_ids: Collection[str]) -> TenantCache:
        """A full read of the policy's slice, in its direct structure (TenantCache)."""
        groups_by_id = self._find_groups()
        refs = sorted(
            (GroupRef(g["id"], str(g.get("displayName") or "")) for g in groups_by_id.values()),
            key=lambda r: (r.display_name.casefold(), r.id),
        )
        source = self._policy.source
        scope_ids = sorted({resolve_scope_group(r, refs, self._error) for r in source.scope_groups})
        provisioned = select_groups(source.groups, refs, self._error)
        cache = TenantCache(
            tenant=self._policy.tenant.id,
            key=self.cache_key(),
            scope=tuple(scope_ids),
            provisioned=tuple(provisioned),
            users={},
            groups={},
        )
        self.read_groups(cache, scope_ids, with_users=True)
        self.read_groups(cache, provisioned, with_users=False)
        for group_id in {*scope_ids, *provisioned}:
            cache.groups[group_id].attributes = self._group_attributes(groups_by_id[group_id])
        return cache

    def read_groups(self, cache: TenantCache, roots: Collection[str], *, with_users: bool) -> None:
        """Read ``roots`` and, for nested policies, the groups nested in them, level by level:
        each group's direct user members (with every selected property when ``with_users``:
        they are scope candidates) and direct nested groups. Groups already in the slice are
        not read again."""
        frontier = sorted({g for g in roots if g not in cache.groups})
        while frontier:
            self._read_level(cache, frontier, with_users)
            found = {sub for group_id in frontier for sub in cache.groups[group_id].groups}
            frontier = sorted(g for g in found if g not in cache.groups)

    def _read_level(self, cache: TenantCache, frontier: list[str], with_users: bool) -> None:
        kinds = ("user", "group") if self._policy.source.nested else ("user",)
        requests: list[Request] = []
        lists: list[tuple[CachedGroup, str]] = []  # (group, "user" | "group") per request
        for group_id in frontier:
            group = cache.groups.setdefault(group_id, CachedGroup({}))
            group.users, group.groups = set(), set()
            for kind in kinds:
                requests.append(self._members_request(group_id, kind, with_users))
                lists.append((group, kind))

        def take(index: int, items: list[dict[str, Any]]) -> None:
            # Page by page, so raw pages are not all kept until the level is read.
            group, kind = lists[index]
            if kind == "group":
                group.groups.update(m["id"] for m in items)
                return
            group.users.update(m["id"] for m in items)
            if with_users:
                label = requests[index].label()
                for member in items:
                    cache.users[member["id"]] = self.checked_user(member, label)

        self._graph.each_page(requests, take)

    def _members_request(self, group_id: str, kind: str, with_users: bool) -> Request:
        select = self._user_select if with_users and kind == "user" else ["id"]
        return Request(
            f"/groups/{group_id}/members/microsoft.graph.{kind}",
            {
                "$select": ",".join(select),
                "$top": str(PAGE_SIZE),
                # Required for the cast, and the count the read is checked against.
                "$count": "true",
            },
            advanced=True,  # OData casts on member lists are advanced queries
        )

    def checked_user(self, raw: Mapping[str, Any], request: Request | str) -> dict[str, Any]:
        """A user's selected properties; a user "with limited information" fails the read
        (GraphClient checked every item has an id)."""
        if _limited(raw):
            raise GraphError(
                f"user {raw['id']} came with limited information (its id only), "
                f"so {permissions.lacks_message(permissions.USER_PROPERTIES)}",
                request=request if isinstance(request, str) else request.label(),
            )
        return self.user_attributes(raw)

    def _find_groups(self) -> dict[str, dict[str, Any]]:
        """The groups the policy names: all groups when a regex selects, else one filtered
        lookup per name or id (batched). Never guessed: unresolved names fail later. Each
        read is counted, so a short answer cannot hide a group (or a second one of a name)."""
        source = self._policy.source
        select = {
            "$select": ",".join(self._group_select),
            "$top": str(PAGE_SIZE),
            "$count": "true",
        }
        if any(s.pattern is not None for s in source.groups):
            found = self._graph.get_all(Request("/groups", select, advanced=True))
        else:
            wanted = {*source.scope_groups}
            wanted.update(s.id or s.name or "" for s in source.groups)
            requests = [
                Request("/groups", {**select, "$filter": _lookup_filter(ref)}, advanced=True)
                for ref in sorted(wanted)
            ]
            found = [g for page in self._graph.get_many(requests) for g in page]
        return {g["id"]: g for g in found}

    def removal_reasons(self, object_ids: list[str]) -> dict[str, RemovalReason]:
        """Why each managed id left, asked of Graph (``syncctl.source.removals``)."""
        return removal_reasons(self._graph, object_ids, self._error)

    def user_attributes(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        # Every selected property is present (null when Graph omits it) so that attribute
        # hashes do not change when Graph starts or stops sending a null.
        return {name: raw.get(name) for name in self._user_select}

    def _group_attributes(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {name: raw.get(name) for name in self._group_select}


def _known_reason(cache: TenantCache, object_id: str) -> RemovalReason | None:
    """Why a managed id out of scope left, from what the slice holds (None: unknown)."""
    if object_id in cache.users:
        enabled = cache.users[object_id].get("accountEnabled") is True
        return RemovalReason.OUT_OF_SCOPE if enabled else RemovalReason.DISABLED
    if object_id in cache.outside:
        return cache.outside[object_id]
    if object_id in cache.groups:
        return RemovalReason.OUT_OF_SCOPE
    return None


def _limited(member: Mapping[str, Any]) -> bool:
    """A user Graph returned "with limited information": every user has a userPrincipalName
    (user.md: required, never null), which the reader always selects (USER_BASE)."""
    return not member.get("userPrincipalName")


def _lookup_filter(reference: str) -> str:
    if is_object_id(reference):
        return f"id eq '{reference}'"
    return f"displayName eq '{odata_string(reference)}'"


def odata_string(value: str) -> str:
    """An OData string literal body: single quotes are doubled."""
    return value.replace("'", "''")
