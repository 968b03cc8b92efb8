"""Creating SCIM objects without ever making a second one: POST with ``externalId`` = the
Entra id, found again by ``externalId`` after a lost answer or a crash, 409 turned into
"ours: update it", "adopt the one unmanaged match" or a clear failure, and explicit adoption.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from syncctl.errors import TargetError, TransientTargetError
from syncctl.model import ObjectKind
from syncctl.plan.model import AttributeChange, Change
from syncctl.scimpath import from_resource, to_resource
from syncctl.targets import scim_filter
from syncctl.targets.base import Outcome, OutcomeStatus
from syncctl.targets.scim_context import Kind, ScimContext
from syncctl.targets.scim_http import ConnectionLost
from syncctl.targets.scim_resources import error_detail, last_segment, matches, resource_version
from syncctl.targets.scim_write import failure, flat, modify

CREATE_ATTEMPTS = 3  # POSTs per create when the connection drops and nothing was created


def create(ctx: ScimContext, kind: Kind, change: Change) -> Outcome:
    source_id = change.source_id
    if source_id is None:
        return Outcome(change.address, OutcomeStatus.FAILED, message="create without source id")
    with ctx.lock:
        ctx.managed.add(source_id)
        existing = ctx.ids[kind.kind].get(source_id)
    if existing is None and not ctx.read_done:
        existing = find_by_external_id(ctx, kind, source_id)
    if existing is not None:
        # A re-run after a crash: the object is already there; bring it up to date.
        return converge(ctx, kind, change, existing, [])
    body = create_body(kind, change, source_id)
    endpoint = ctx.endpoint(kind.kind)
    where = f"POST {ctx.http.url(endpoint)}"
    for _attempt in range(CREATE_ATTEMPTS):
        try:
            response = ctx.http.request("POST", endpoint, json=body, idempotent=False)
        except ConnectionLost:
            # The server may have created it before the connection dropped.
            found = find_by_external_id(ctx, kind, source_id)
            if found is not None:
                ctx.remember(kind, source_id, found)
                return Outcome(change.address, OutcomeStatus.APPLIED, target_id=found)
            continue
        if response.status_code in (200, 201):
            target_id = _created_id(response)
            if target_id is None:
                return Outcome(
                    change.address,
                    OutcomeStatus.FAILED,
                    message=f"{where}: created, but the answer names no id",
                )
            ctx.remember(kind, source_id, target_id)
            return Outcome(change.address, OutcomeStatus.APPLIED, target_id=target_id)
        if response.status_code == 409:
            return _on_conflict(ctx, kind, change, source_id, where=where, response=response)
        return Outcome(
            change.address, OutcomeStatus.FAILED, message=f"{where}: {error_detail(response)}"
        )
    raise TransientTargetError(f"{where}: connection failed {CREATE_ATTEMPTS} times")


def create_body(kind: Kind, change: Change, source_id: str) -> dict[str, Any]:
    # Groups go without members: django-scim2 ignores them on POST; memberships follow.
    body = to_resource(flat(change), kind.kind)
    body["externalId"] = source_id
    if kind.kind is ObjectKind.USER:
        body["active"] = True
    return body


def _created_id(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
        return str(body["id"])
    return last_segment(response.headers.get("Location", ""))


def _search(ctx: ScimContext, kind: Kind, filter_text: str) -> list[dict[str, Any]]:
    endpoint = ctx.endpoint(kind.kind)
    params = {"filter": filter_text, "attributes": f"id,externalId,{kind.key}"}
    response = ctx.http.request("GET", endpoint, params=params)
    if response.status_code != 200:
        raise TargetError(
            f"GET {ctx.http.url(endpoint)} filter {filter_text}: {error_detail(response)}"
        )
    resources = response.json().get("Resources") or []
    return [r for r in resources if isinstance(r, dict) and isinstance(r.get("id"), str)]


def find_by_external_id(ctx: ScimContext, kind: Kind, source_id: str) -> str | None:
    if not ctx.sp.filter:
        return None
    for resource in _search(ctx, kind, scim_filter.eq("externalId", source_id)):
        if resource.get("externalId") == source_id:
            return str(resource["id"])
    return None


def _on_conflict(
    ctx: ScimContext,
    kind: Kind,
    change: Change,
    source_id: str,
    *,
    where: str,
    response: httpx.Response,
) -> Outcome:
    ours = find_by_external_id(ctx, kind, source_id)
    if ours is not None:
        ctx.remember(kind, source_id, ours)
        return converge(ctx, kind, change, ours, [])
    mappings = ctx.policy.mappings
    match = mappings.user.match if kind.kind is ObjectKind.USER else mappings.group.match
    wanted_values = flat(change)
    if not match or not all(isinstance(wanted_values.get(a), str) for a in match):
        return Outcome(
            change.address,
            OutcomeStatus.FAILED,
            message=(
                f"{where}: {error_detail(response)}: an object with this "
                f"{kind.key} already exists and is not managed by syncctl "
                f"(set mappings.{kind.kind.value}.match to adopt it)"
            ),
        )
    with ctx.lock:
        managed = set(ctx.managed)
    wanted = {a: wanted_values[a] for a in match}
    if ctx.sp.filter:
        candidates = _search(ctx, kind, scim_filter.all_eq(wanted))
        free = [str(c["id"]) for c in candidates if c.get("externalId") not in managed]
    else:
        # The server says it cannot filter: match against what read() listed.
        free = [
            o.target_id
            for o in ctx.seen.get(kind.kind, [])
            if o.external_id not in managed and matches(o, kind.key, wanted)
        ]
    if len(free) != 1:
        return Outcome(
            change.address,
            OutcomeStatus.FAILED,
            message=(
                f"{where}: {error_detail(response)}: match on {', '.join(match)} found "
                f"{len(free)} unmanaged objects (need exactly one to adopt)"
            ),
        )
    target_id = free[0]
    extra = [{"op": "replace", "path": "externalId", "value": source_id}]
    outcome = converge(ctx, kind, change, target_id, extra)
    if outcome.status is OutcomeStatus.APPLIED:
        ctx.remember(kind, source_id, target_id)
    return outcome


def adopt(ctx: ScimContext, kind: Kind, change: Change) -> Outcome:
    if change.target_id is None or change.source_id is None:
        return Outcome(change.address, OutcomeStatus.FAILED, message="adopt needs both ids")
    with ctx.lock:
        ctx.managed.add(change.source_id)
    extra: list[dict[str, Any]] = [
        {"op": "replace", "path": "externalId", "value": change.source_id}
    ]
    if kind.kind is ObjectKind.USER:
        extra.append({"op": "replace", "path": "active", "value": True})
    outcome = modify(
        ctx, kind, change, change.target_id, version=change.version, extra=extra, created=True
    )
    if outcome.status is OutcomeStatus.APPLIED:
        ctx.remember(kind, change.source_id, change.target_id)
    return outcome


def converge(
    ctx: ScimContext, kind: Kind, change: Change, target_id: str, extra: list[dict[str, Any]]
) -> Outcome:
    """Bring an object that already exists (crash re-run, 409) to what a create wanted:
    read it and PATCH only what differs (a blind ``add`` could duplicate elements)."""
    path = ctx.path(kind.kind, target_id)
    response = ctx.http.request("GET", path)
    if response.status_code != 200:
        return failure(change, f"GET {ctx.http.url(path)}", response)
    resource = response.json()
    current = from_resource(resource, [a.path for a in change.attributes])
    differing = tuple(
        AttributeChange(a.path, current.get(a.path), a.after)
        for a in change.attributes
        if current.get(a.path) != a.after
    )
    ops = list(extra)
    if kind.kind is ObjectKind.USER and resource.get("active") is False:
        ops.append({"op": "replace", "path": "active", "value": True})
    version = resource_version(resource, response)
    fixed = replace(change, attributes=differing)
    return modify(ctx, kind, fixed, target_id, version=version, extra=ops, created=True)
