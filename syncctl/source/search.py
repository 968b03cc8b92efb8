"""The admin's look-up when writing a policy: Entra users and groups matching a term.

Against Graph it uses ``$search`` (advanced query, ConsistencyLevel: eventual) on displayName;
a term that is an object id is looked up by id. Against a snapshot file it matches the term as
a case-insensitive substring of displayName, userPrincipalName or mail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncctl.model import SourceSnapshot
from syncctl.policy.model import Policy, is_object_id
from syncctl.source.graph import PAGE_SIZE, GraphClient, Request
from syncctl.source.progress import Progress

USER_FIELDS = ("id", "displayName", "userPrincipalName", "mail", "userType", "department")
GROUP_FIELDS = ("id", "displayName", "description", "groupTypes", "securityEnabled", "mailEnabled")


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    name: str
    type: str  # Member | Guest | Security Group | Microsoft 365 Group | Distribution Group
    department: str
    description: str
    id: str

    def as_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "type": self.type,
            "department": self.department,
            "description": self.description,
            "id": self.id,
        }


def user_entry(attributes: Mapping[str, Any]) -> DirectoryEntry:
    return DirectoryEntry(
        name=str(attributes.get("displayName") or attributes.get("userPrincipalName") or ""),
        type="Guest" if attributes.get("userType") == "Guest" else "Member",
        department=str(attributes.get("department") or ""),
        description=str(attributes.get("userPrincipalName") or ""),
        id=str(attributes["id"]),
    )


def group_type(attributes: Mapping[str, Any]) -> str:
    if "Unified" in (attributes.get("groupTypes") or []):
        return "Microsoft 365 Group"
    if attributes.get("securityEnabled"):
        return "Security Group"
    return "Distribution Group"


def group_entry(attributes: Mapping[str, Any]) -> DirectoryEntry:
    return DirectoryEntry(
        name=str(attributes.get("displayName") or ""),
        type=group_type(attributes),
        department="",
        description=str(attributes.get("description") or ""),
        id=str(attributes["id"]),
    )


def sort_entries(entries: Iterable[DirectoryEntry]) -> list[DirectoryEntry]:
    unique = {e.id: e for e in entries}
    return sorted(unique.values(), key=lambda e: (e.name.casefold(), e.type, e.id))


def search_snapshot(snapshot: SourceSnapshot, term: str) -> list[DirectoryEntry]:
    wanted = term.casefold()

    def matches(attributes: Mapping[str, Any], fields: tuple[str, ...]) -> bool:
        if not wanted or attributes.get("id") == term:
            return True
        return any(wanted in str(attributes.get(f) or "").casefold() for f in fields)

    users = [
        user_entry(u.attributes)
        for u in snapshot.users.values()
        if matches(u.attributes, ("displayName", "userPrincipalName", "mail"))
    ]
    groups = [
        group_entry(g.attributes)
        for g in snapshot.groups.values()
        if matches(g.attributes, ("displayName", "description"))
    ]
    return sort_entries([*users, *groups])


def search_graph(graph: GraphClient, term: str) -> list[DirectoryEntry]:
    requests = [
        _request("/users", USER_FIELDS, term),
        _request("/groups", GROUP_FIELDS, term),
    ]
    users, groups = graph.get_many(requests)
    return sort_entries([*map(user_entry, users), *map(group_entry, groups)])


def search_policy(
    policy: Policy, term: str, *, progress: Progress | None = None
) -> list[DirectoryEntry]:
    if policy.tenant.snapshot is not None:
        from syncctl.source.snapshot import load_snapshot

        return search_snapshot(load_snapshot(policy.tenant.snapshot, tenant=policy.tenant.id), term)
    from syncctl.source import naming_policy
    from syncctl.source.reader import graph_session

    with naming_policy(policy), graph_session(policy.tenant, progress) as graph:
        return search_graph(graph, term)


def _request(path: str, fields: tuple[str, ...], term: str) -> Request:
    # Counted (an advanced query) so that a short answer fails instead of hiding objects.
    params = {"$select": ",".join(fields), "$top": str(PAGE_SIZE), "$count": "true"}
    if not term:
        return Request(path, params, advanced=True)
    if is_object_id(term):
        return Request(path, {**params, "$filter": f"id eq '{term}'"}, advanced=True)
    # $search tokens are double-quoted; a quote inside the term cannot be escaped reliably.
    cleaned = term.replace('"', " ").strip()
    return Request(path, {**params, "$search": f'"displayName:{cleaned}"'}, advanced=True)
