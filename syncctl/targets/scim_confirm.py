"""Confirming the security-relevant writes: a disable, a delete or a membership removal that
the server acknowledged (2xx) but did not perform must be a failed change, not a success.

Servers do drop writes: a PATCH path they do not understand may be answered 204 and ignored,
a DELETE may be a soft delete. So the result is read from the write's own response where it
carries the resource (200 with a body), and otherwise with one GET of that object. Nothing
else is confirmed: creates and attribute updates show up in the next plan if they were
dropped, while a user who should have lost access and did not is silent.

Each function returns None when the write is confirmed, or the one-line reason it is not.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import httpx

from syncctl.targets.scim_context import ScimContext
from syncctl.targets.scim_read import member_values
from syncctl.targets.scim_resources import error_detail

GONE = frozenset({404, 410})


def _resource(response: httpx.Response) -> dict[str, Any] | None:
    """The resource a 200 answer carries, or None (204, empty or not JSON)."""
    if response.status_code != 200 or not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _read_back(
    ctx: ScimContext, path: str, params: dict[str, str] | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """GET ``path``: (the resource, None), or (None, why it could not be read)."""
    where = f"GET {ctx.http.url(path)}"
    response = ctx.http.request("GET", path, params=params)
    if response.status_code in GONE:
        return None, f"{where}: no longer exists on the target ({response.status_code})"
    if response.status_code != 200:
        return None, f"{where}: {error_detail(response)}"
    body = _resource(response)
    if body is None:
        return None, f"{where}: the answer is not a SCIM resource"
    return body, None


def disabled(ctx: ScimContext, where: str, path: str, response: httpx.Response) -> str | None:
    """``where`` (e.g. ``PATCH https://…/Users/1``) answered ``response`` to a disable."""
    resource = _resource(response)
    if resource is None or "active" not in resource:
        resource, problem = _read_back(ctx, path)
        if resource is None:
            return (
                f"{where}: the server acknowledged the disable, but it cannot be confirmed: "
                f"{problem}"
            )
    if resource.get("active") is False:
        return None
    # Absent counts as active, as read() counts it: the next plan would disable it again.
    return f"{where}: the server acknowledged the disable but the user is still active"


def deleted(ctx: ScimContext, where: str, path: str, kind: str) -> str | None:
    """``where`` (``DELETE https://…``) was acknowledged: the object must now be gone (RFC
    7644 §3.6: a GET after a delete answers 404). A soft delete that still serves the object
    is not a delete."""
    response = ctx.http.request("GET", path)
    if response.status_code in GONE:
        return None
    if response.status_code == 200:
        return (
            f"{where}: the server acknowledged the delete but the {kind} still exists "
            f"(GET answered 200)"
        )
    return (
        f"{where}: the server acknowledged the delete, but it cannot be confirmed: "
        f"GET {ctx.http.url(path)}: {error_detail(response)}"
    )


def still_members(
    ctx: ScimContext, path: str, response: httpx.Response, removed: Collection[str]
) -> tuple[set[str], str | None]:
    """Which of the ``removed`` user ids the group at ``path`` still lists after a removal
    that was answered ``response``: (ids, None), or (all of them, why it cannot be told).

    The PATCH answer is used when it carries ``members``; otherwise (204, or a server that
    leaves members out of its answers) the group is read with ``attributes=members``, which
    asks for them explicitly. A group read that names no members has none (RFC 7644
    §3.4.2.5: unassigned attributes are not returned)."""
    resource = _resource(response)
    if resource is None or not isinstance(resource.get("members"), list):
        resource, problem = _read_back(ctx, path, {"attributes": "members"})
        if resource is None:
            return set(removed), problem
    return member_values(resource) & set(removed), None
