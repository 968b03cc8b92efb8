"""Reading a SCIM service provider: paged listings of /Users and /Groups into a snapshot.

A listing must add up (RFC 7644 §3.4.2.4): a resource listed twice (a server that ignores
``startIndex``) or fewer resources than ``totalResults`` is an error, never a smaller
directory, because a smaller directory would plan deletions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from syncctl.errors import TargetError
from syncctl.model import ObjectKind, TargetObject, TargetSnapshot
from syncctl.scimpath import ENTERPRISE_USER, from_resource, patch_path
from syncctl.targets.scim_context import GROUP, USER, Kind, ScimContext
from syncctl.targets.scim_resources import error_detail, resource_version

PAGE_SIZE = 200  # listing costs ~1.3 ms per resource on scim2-server; 100-200 keeps pages quick


def list_resources(
    ctx: ScimContext, endpoint: str, params: Mapping[str, str]
) -> Iterator[dict[str, Any]]:
    """Every resource of a list, page by page; a short or inconsistent listing is an error,
    never a smaller directory."""
    sp = ctx.sp
    page = PAGE_SIZE if not sp.filter_max_results else min(PAGE_SIZE, sp.filter_max_results)
    where = f"GET {ctx.http.url(endpoint)}"
    start, seen, total = 1, set[str](), None
    while True:
        query = {**params, "startIndex": str(start), "count": str(page)}
        response = ctx.http.request("GET", endpoint, params=query)
        if response.status_code != 200:
            raise TargetError(f"{where} (startIndex {start}): {error_detail(response)}")
        try:
            body = response.json()
        except ValueError:
            raise TargetError(f"{where} (startIndex {start}): answer is not JSON") from None
        if not isinstance(body, dict):
            raise TargetError(f"{where} (startIndex {start}): not a ListResponse")
        resources = body.get("Resources") or []
        if isinstance(body.get("totalResults"), int):
            total = body["totalResults"]
        if not isinstance(resources, list):
            raise TargetError(f"{where} (startIndex {start}): Resources is not a list")
        for resource in resources:
            rid = resource.get("id") if isinstance(resource, dict) else None
            if not isinstance(rid, str) or not rid:
                raise TargetError(f"{where} (startIndex {start}): a resource has no id")
            if rid in seen:
                # A server that ignores startIndex would otherwise loop for ever.
                raise TargetError(
                    f"{where} (startIndex {start}): resource {rid} listed twice; "
                    "the server does not page consistently"
                )
            seen.add(rid)
            yield resource
        start += len(resources)
        if not resources or (total is not None and start > total):
            break
        if total is None and len(resources) < page:
            break
    if total is not None and len(seen) < total:
        raise TargetError(
            f"{where}: listed {len(seen)} of totalResults {total}; the read is incomplete"
        )


def user_attributes_param(paths: Sequence[str]) -> str:
    """``attributes=`` for the user listing: the bookkeeping attributes plus the mapped ones."""
    names = {"id", "externalId", "userName", "active", "meta"}
    for path in paths:
        short = patch_path(path).split("[", 1)[0]
        if short.startswith(ENTERPRISE_USER + ":"):
            names.add(ENTERPRISE_USER + ":" + short[len(ENTERPRISE_USER) + 1 :].split(".")[0])
        else:
            names.add(short.split(".", 1)[0])
    return ",".join(sorted(names))


def member_values(resource: Mapping[str, Any]) -> set[str]:
    """The ids in a Group resource's ``members`` (absent: none, RFC 7644 §3.4.2.5)."""
    listed = resource.get("members") or []
    if not isinstance(listed, list):
        return set()
    return {m["value"] for m in listed if isinstance(m, dict) and isinstance(m.get("value"), str)}


def read(
    ctx: ScimContext,
    owner: str,
    known_ids: Collection[str],
    user_paths: Sequence[str],
    group_paths: Sequence[str],
) -> TargetSnapshot:
    """List everything and refresh ``ctx``'s maps from it."""
    known = set(known_ids)
    user_objects: list[TargetObject] = []
    group_objects: list[TargetObject] = []
    user_ids: dict[str, str] = {}
    group_ids: dict[str, str] = {}
    members: dict[str, set[str]] = {}
    users = list_resources(
        ctx, ctx.endpoint(ObjectKind.USER), {"attributes": user_attributes_param(user_paths)}
    )
    for resource in users:
        obj = to_object(USER, resource, owner, known, user_paths)
        user_objects.append(obj)
        if obj.managed_by is not None and obj.external_id is not None:
            user_ids[obj.external_id] = obj.target_id
    existing_users = {u.target_id for u in user_objects}
    for resource in list_resources(ctx, ctx.endpoint(ObjectKind.GROUP), {}):
        obj = to_object(GROUP, resource, owner, known, group_paths)
        group_objects.append(obj)
        if obj.managed_by is not None and obj.external_id is not None:
            group_ids[obj.external_id] = obj.target_id
        # scim2-server keeps members of deleted users; only real users count.
        members[obj.target_id] = member_values(resource) & existing_users
    with ctx.lock:
        ctx.managed = set(known)
        ctx.ids = {ObjectKind.USER: user_ids, ObjectKind.GROUP: group_ids}
        ctx.owned = {
            ObjectKind.USER: set(user_ids.values()),
            ObjectKind.GROUP: set(group_ids.values()),
        }
        ctx.members = defaultdict(set, members)
        ctx.seen = {ObjectKind.USER: user_objects, ObjectKind.GROUP: group_objects}
        ctx.listed = {k: {o.target_id for o in objs} for k, objs in ctx.seen.items()}
        ctx.read_done = True
    return TargetSnapshot(
        users=tuple(sorted(user_objects, key=lambda o: (o.key, o.target_id))),
        groups=tuple(sorted(group_objects, key=lambda o: (o.key, o.target_id))),
        members={gid: frozenset(ids) for gid, ids in sorted(members.items())},
    )


def to_object(
    kind: Kind,
    resource: dict[str, Any],
    owner: str,
    known: set[str],
    paths: Sequence[str],
) -> TargetObject:
    external = resource.get("externalId")
    external_id = external if isinstance(external, str) and external else None
    active = resource.get("active")
    return TargetObject(
        kind=kind.kind,
        target_id=str(resource["id"]),
        external_id=external_id,
        key=str(resource.get(kind.key) or ""),
        active=True if kind.kind is ObjectKind.GROUP else active is not False,
        attributes=from_resource(resource, paths),
        managed_by=owner if external_id is not None and external_id in known else None,
        version=resource_version(resource),
    )
