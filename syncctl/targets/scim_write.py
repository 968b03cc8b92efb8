"""Writing one existing SCIM object: PATCH (PUT of the merged resource where PATCH is missing
or answers 501), DELETE, the ownership check before either, and per-change failures.

A disable or delete the server acknowledges is confirmed (scim_confirm) before it counts.
"""

from __future__ import annotations

from typing import Any

import httpx

from syncctl.model import ObjectKind
from syncctl.plan.model import Action, Change
from syncctl.scimpath import patch_path, to_resource
from syncctl.targets import scim_confirm
from syncctl.targets.base import Outcome, OutcomeStatus
from syncctl.targets.scim_context import PATCH_OP, Kind, ScimContext
from syncctl.targets.scim_resources import (
    error_detail,
    merge_elements,
    remove_path,
    resource_version,
)


def flat(change: Change) -> dict[str, Any]:
    return {a.path: a.after for a in change.attributes}


def failure(change: Change, where: str, response: httpx.Response) -> Outcome:
    if response.status_code == 412:
        return Outcome(
            change.address,
            OutcomeStatus.STALE,
            message=f"{where}: changed on the target since planning (412)",
        )
    if response.status_code == 404:
        return Outcome(
            change.address,
            OutcomeStatus.FAILED,
            message=f"{where}: no longer exists on the target (404)",
        )
    return Outcome(
        change.address, OutcomeStatus.FAILED, message=f"{where}: {error_detail(response)}"
    )


def not_owned(ctx: ScimContext, kind: Kind, target_id: str, source_id: str | None) -> str | None:
    """Why this object must not be written, or None when this policy manages it.

    After read() the managed set is known (externalId in the state's ids, plus this run's
    creates and adoptions). Without a read, the object's externalId is fetched and must be
    the Entra id the change is about."""
    with ctx.lock:
        if ctx.read_done:
            listed = target_id in ctx.listed.get(kind.kind, ())
            if target_id in ctx.owned[kind.kind] or not listed:
                return None  # ours, or already gone (the write then reports 404)
            return f"{kind.kind.value} {target_id} is not managed by this policy; not touched"
    response = ctx.http.request("GET", ctx.path(kind.kind, target_id))
    if response.status_code == 404:
        return None  # gone: the write reports it (delete: already gone)
    if response.status_code != 200:
        return f"GET {kind.kind.value} {target_id}: {error_detail(response)}"
    external = response.json().get("externalId")
    if source_id is not None and external == source_id:
        return None
    return f"{kind.kind.value} {target_id} has externalId {external!r}, not {source_id!r}"


def attribute_ops(kind: Kind, change: Change) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for attribute in change.attributes:
        if attribute.after is None:
            ops.append({"op": "remove", "path": patch_path(attribute.path)})
        elif attribute.before is None and "[" in attribute.path:
            # A filtered path needs an element to exist; add it as a whole (RFC 7644
            # §3.5.2.1 "add" without a path merges into the resource).
            value = to_resource({attribute.path: attribute.after}, kind.kind)
            value.pop("schemas", None)
            ops.append({"op": "add", "value": value})
        else:
            ops.append(
                {"op": "replace", "path": patch_path(attribute.path), "value": attribute.after}
            )
    return ops


def _written(
    ctx: ScimContext,
    kind: Kind,
    change: Change,
    *,
    where: str,
    path: str,
    response: httpx.Response,
    target: str | None,
) -> Outcome:
    """A 2xx answer to a PATCH/PUT: applied, once a disable is confirmed."""
    if change.action is Action.DISABLE and kind.kind is ObjectKind.USER:
        problem = scim_confirm.disabled(ctx, where, path, response)
        if problem is not None:
            return Outcome(change.address, OutcomeStatus.FAILED, message=problem)
    return Outcome(change.address, OutcomeStatus.APPLIED, target_id=target)


def modify(
    ctx: ScimContext,
    kind: Kind,
    change: Change,
    target_id: str,
    *,
    version: str | None,
    extra: list[dict[str, Any]],
    created: bool = False,
) -> Outcome:
    """PATCH the changed attributes (PUT of the whole resource where PATCH is missing)."""
    ops = [*extra, *attribute_ops(kind, change)]
    target = target_id if created else None
    if not ops:
        return Outcome(change.address, OutcomeStatus.UNCHANGED, target_id=target)
    path = ctx.path(kind.kind, target_id)
    where_patch = f"PATCH {ctx.http.url(path)}"
    headers = ctx.if_match(version)
    if not ctx.put_only:
        body = {"schemas": [PATCH_OP], "Operations": ops}
        response = ctx.http.request("PATCH", path, json=body, headers=headers)
        if response.status_code in (200, 204):
            return _written(
                ctx, kind, change, where=where_patch, path=path, response=response, target=target
            )
        if response.status_code != 501:
            return failure(change, where_patch, response)
        # PATCH is claimed but this form is not implemented: PUT this one change (other
        # PATCH forms may still work, so PATCH is not given up for the run).
    return put(ctx, kind, change, target_id, version, extra=extra, target=target)


def put(
    ctx: ScimContext,
    kind: Kind,
    change: Change,
    target_id: str,
    version: str | None,
    *,
    extra: list[dict[str, Any]],
    target: str | None,
) -> Outcome:
    path = ctx.path(kind.kind, target_id)
    response = ctx.http.request("GET", path)
    if response.status_code != 200:
        return failure(change, f"GET {ctx.http.url(path)}", response)
    current = response.json()
    if version is not None and ctx.sp.etag is False:
        pass  # no ETags: the planner was told (capabilities.versions) and did not rely on it
    elif version is not None and resource_version(current, response) != version:
        return Outcome(
            change.address,
            OutcomeStatus.STALE,
            message=f"GET {ctx.http.url(path)}: changed on the target since planning",
        )
    resource = dict(current)
    resource.pop("meta", None)
    wanted = to_resource(flat(change), kind.kind)
    for key, value in wanted.items():
        if key == "schemas":
            resource["schemas"] = sorted(set(resource.get("schemas") or []) | set(value))
        elif isinstance(value, dict) and isinstance(resource.get(key), dict):
            resource[key] = {**resource[key], **value}
        elif isinstance(value, list) and isinstance(resource.get(key), list):
            resource[key] = merge_elements(resource[key], value)
        else:
            resource[key] = value
    for attribute in change.attributes:
        if attribute.after is None:
            remove_path(resource, patch_path(attribute.path))
    for op in extra:
        resource[op["path"]] = op["value"]
    where_put = f"PUT {ctx.http.url(path)}"
    response = ctx.http.request("PUT", path, json=resource, headers=ctx.if_match(version))
    if response.status_code in (200, 201, 204):
        return _written(
            ctx, kind, change, where=where_put, path=path, response=response, target=target
        )
    return failure(change, where_put, response)


def delete(ctx: ScimContext, kind: Kind, change: Change) -> Outcome:
    assert change.target_id is not None
    path = ctx.path(kind.kind, change.target_id)
    where = f"DELETE {ctx.http.url(path)}"
    response = ctx.http.request("DELETE", path, headers=ctx.if_match(change.version))
    if response.status_code in (200, 204):
        problem = scim_confirm.deleted(ctx, where, path, kind.kind.value)
        if problem is not None:
            return Outcome(change.address, OutcomeStatus.FAILED, message=problem)
        return Outcome(change.address, OutcomeStatus.APPLIED)
    if response.status_code == 404:
        return Outcome(change.address, OutcomeStatus.UNCHANGED, message="already gone")
    return failure(change, where, response)
