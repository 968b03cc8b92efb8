"""Group membership changes: PATCH ``/Groups/{id}`` add/remove members in chunks.

Changes name Entra ids; they resolve to SCIM ids through the context's maps (from read() and
this run's creates), and members already in the wanted state are skipped without a request.
Removal goes as ``remove members[value eq "id"]`` (RFC 7644 §3.5.2.2), or as the Entra-style
value array for servers that only take that (django-scim2), remembered for the run. A removal
is confirmed from the answer or a read of the group's members (scim_confirm): a server that
acknowledges and keeps the member gets the other form once, then the change fails.
"""

from __future__ import annotations

from typing import Any

import httpx

from syncctl.model import ObjectKind
from syncctl.plan.model import Action, Change
from syncctl.targets import scim_confirm, scim_filter
from syncctl.targets.base import Outcome, OutcomeStatus
from syncctl.targets.scim_context import PATCH_OP, ScimContext
from syncctl.targets.scim_resources import error_detail

MEMBER_CHUNK = 100  # members per PATCH request


def apply_members(
    ctx: ScimContext, group: str, action: Action, items: list[tuple[int, Change]]
) -> list[tuple[int, Outcome]]:
    """All membership changes of one group and one action; (batch index, outcome) each."""
    with ctx.lock:
        group_id = ctx.ids[ObjectKind.GROUP].get(group)
        user_map = dict(ctx.ids[ObjectKind.USER])
        present = set(ctx.members.get(group_id, set())) if group_id else set()
    if group_id is None:
        return [
            (i, Outcome(c.address, OutcomeStatus.FAILED, message="group is not on the target"))
            for i, c in items
        ]
    results: list[tuple[int, Outcome]] = []
    pending: list[tuple[int, Change, str]] = []
    for index, change in items:
        user_id = user_map.get(change.user or "")
        if user_id is None:
            if action is Action.REMOVE:
                results.append((index, Outcome(change.address, OutcomeStatus.UNCHANGED)))
            else:
                missing = Outcome(
                    change.address, OutcomeStatus.FAILED, message="user is not on the target"
                )
                results.append((index, missing))
        elif (user_id in present) == (action is Action.ADD):
            results.append((index, Outcome(change.address, OutcomeStatus.UNCHANGED)))
        else:
            pending.append((index, change, user_id))
    for start in range(0, len(pending), MEMBER_CHUNK):
        chunk = pending[start : start + MEMBER_CHUNK]
        ids = [user_id for _, _, user_id in chunk]
        add = action is Action.ADD
        failed = _add(ctx, group_id, ids) if add else _remove(ctx, group_id, ids)
        done = [user_id for user_id in ids if user_id not in failed]
        with ctx.lock:
            members = ctx.members.setdefault(group_id, set())
            if action is Action.ADD:
                members.update(done)
            else:
                members.difference_update(done)
        for index, change, user_id in chunk:
            message = failed.get(user_id)
            status = OutcomeStatus.APPLIED if message is None else OutcomeStatus.FAILED
            results.append((index, Outcome(change.address, status, message=message)))
    return results


def _patch(ctx: ScimContext, path: str, ops: list[dict[str, Any]]) -> httpx.Response:
    return ctx.http.request("PATCH", path, json={"schemas": [PATCH_OP], "Operations": ops})


def _add(ctx: ScimContext, group_id: str, user_ids: list[str]) -> dict[str, str]:
    """Failure messages by user id (none: all added)."""
    path = ctx.path(ObjectKind.GROUP, group_id)
    values = [{"value": user_id} for user_id in user_ids]
    response = _patch(ctx, path, [{"op": "add", "path": "members", "value": values}])
    if response.status_code in (200, 204):
        return {}
    message = f"PATCH {ctx.http.url(path)}: {error_detail(response)}"
    return dict.fromkeys(user_ids, message)


def _remove_ops(style: str, user_ids: list[str]) -> list[dict[str, Any]]:
    if style == "value_array":
        values = [{"value": user_id} for user_id in user_ids]
        return [{"op": "remove", "path": "members", "value": values}]
    return [{"op": "remove", "path": scim_filter.member_path(user_id)} for user_id in user_ids]


def _remove(ctx: ScimContext, group_id: str, user_ids: list[str]) -> dict[str, str]:
    """Remove and confirm; failure messages by user id (none: all confirmed gone)."""
    path = ctx.path(ObjectKind.GROUP, group_id)
    where = f"PATCH {ctx.http.url(path)}"
    # RFC form first; the Entra-style value array for servers that only take that.
    styles = ["filter", "value_array"]
    if ctx.remove_style == "value_array":
        styles.reverse()
    remaining = list(user_ids)
    refused: str | None = None  # the last refusal (400/501) or error
    kept = False  # a form was acknowledged but left members in place
    for style in styles:
        response = _patch(ctx, path, _remove_ops(style, remaining))
        if response.status_code not in (200, 204):
            refused = f"{where}: {error_detail(response)}"
            if response.status_code in (400, 501):
                continue
            break
        still, problem = scim_confirm.still_members(ctx, path, response, remaining)
        if problem is not None:
            message = (
                f"{where}: the server acknowledged the removal, but it cannot be confirmed: "
                f"{problem}"
            )
            return dict.fromkeys(remaining, message)
        if not still:
            ctx.remove_style = style
            return {}
        # Acknowledged but not (fully) done: the other form may be the one it honours.
        remaining = [user_id for user_id in remaining if user_id in still]
        kept = True
    if kept:
        return {
            user_id: (
                f"{where}: the server acknowledged the removal but user {user_id} is still a member"
            )
            for user_id in remaining
        }
    assert refused is not None
    return dict.fromkeys(remaining, refused)
