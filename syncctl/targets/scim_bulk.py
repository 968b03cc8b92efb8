"""Creates through SCIM Bulk (RFC 7644 §3.7), and splitting them into requests the server
accepts.

A BulkRequest may hold at most ``maxOperations`` operations and ``maxPayloadSize`` bytes
(from /ServiceProviderConfig). Operations keep their order; an operation larger than the
payload limit on its own still goes (alone), and the server's 413 then sends the caller to
single requests. Whatever Bulk does not answer (lost answer, throttled operations) goes
through the single-create path, which looks for what Bulk may have created first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from syncctl.model import ObjectKind
from syncctl.plan.model import Action, Change, ChangeKind
from syncctl.targets.base import Outcome, OutcomeStatus
from syncctl.targets.scim_context import Kind, ScimContext, kind_of
from syncctl.targets.scim_create import create, create_body, find_by_external_id
from syncctl.targets.scim_http import ConnectionLost
from syncctl.targets.scim_resources import last_segment

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_CHUNK = 100  # operations per /Bulk request (fewer when the server's maxOperations is lower)
T = TypeVar("T")

ENVELOPE_BYTES = 1024  # schemas, "Operations" and separators around the operations


def chunk_operations(
    items: Sequence[T], sizes: Sequence[int], *, max_operations: int, max_payload: int
) -> list[list[T]]:
    """Consecutive groups of ``items`` with at most ``max_operations`` members whose
    ``sizes`` (serialised bytes) add up to at most ``max_payload - ENVELOPE_BYTES``."""
    if len(items) != len(sizes):
        raise ValueError("one size per item")
    budget = max_payload - ENVELOPE_BYTES
    limit = max(1, max_operations)
    chunks: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item, size in zip(items, sizes, strict=True):
        if current and (len(current) >= limit or used + size > budget):
            chunks.append(current)
            current, used = [], 0
        current.append(item)
        used += size
    if current:
        chunks.append(current)
    return chunks


# -- sending (RFC 7644 §3.7) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _BulkItem:
    index: int  # position in the apply() batch
    change: Change
    kind: Kind
    op: dict[str, Any]


def eligible(ctx: ScimContext, change: Change) -> bool:
    """Creates go through /Bulk when the server offers it and read() has shown they do not
    exist yet (a crash re-run finds its objects in the maps and updates them)."""
    if change.action is not Action.CREATE or change.source_id is None:
        return False
    if ctx.bulk is False or not ctx.read_done or not ctx.sp.bulk:
        return False
    kind = ObjectKind.USER if change.kind is ChangeKind.USER else ObjectKind.GROUP
    with ctx.lock:
        return change.source_id not in ctx.ids[kind]


def bulk_create(ctx: ScimContext, items: list[tuple[int, Change]]) -> dict[int, Outcome]:
    sp = ctx.sp
    prepared: list[_BulkItem] = []
    for index, change in items:
        kind = kind_of(change.kind)
        assert change.source_id is not None
        with ctx.lock:
            ctx.managed.add(change.source_id)
        op = {
            "method": "POST",
            "path": ctx.endpoint(kind.kind),
            "bulkId": f"c{index}",
            "data": create_body(kind, change, change.source_id),
        }
        prepared.append(_BulkItem(index, change, kind, op))
    sizes = [len(json.dumps(item.op, separators=(",", ":")).encode()) for item in prepared]
    chunks = chunk_operations(
        prepared,
        sizes,
        max_operations=min(BULK_CHUNK, sp.bulk_max_operations or BULK_CHUNK),
        max_payload=sp.bulk_max_payload or 1_048_576,
    )
    outcomes: dict[int, Outcome] = {}
    for chunk in chunks:
        outcomes.update(_send(ctx, chunk))
    return outcomes


def _send(ctx: ScimContext, chunk: list[_BulkItem]) -> dict[int, Outcome]:
    where = f"POST {ctx.http.url('/Bulk')}"
    body = {"schemas": [BULK_REQUEST], "Operations": [item.op for item in chunk]}
    try:
        response = ctx.http.request("POST", "/Bulk", json=body, idempotent=False)
    except ConnectionLost:
        return _one_by_one(ctx, chunk, check_existing=True)
    if response.status_code != 200:
        if response.status_code in (404, 405, 501):
            ctx.bulk = False  # claimed but not there: stop trying for this run
        return _one_by_one(ctx, chunk, check_existing=response.status_code >= 500)
    try:
        results = response.json().get("Operations") or []
    except (ValueError, AttributeError):
        results = []
    by_id = {r.get("bulkId"): r for r in results if isinstance(r, dict)}
    outcomes: dict[int, Outcome] = {}
    unanswered: list[_BulkItem] = []
    for item in chunk:
        result = by_id.get(item.op["bulkId"])
        status = str(result.get("status", "")) if result else ""
        answer = (result or {}).get("response") or {}
        target_id = last_segment(str((result or {}).get("location") or "")) or answer.get("id")
        assert item.change.source_id is not None
        if status in ("200", "201") and isinstance(target_id, str) and target_id:
            ctx.remember(item.kind, item.change.source_id, target_id)
            outcomes[item.index] = Outcome(
                item.change.address, OutcomeStatus.APPLIED, target_id=target_id
            )
        elif status == "409":
            # Conflict handling (adopt or explain) lives in the single-create path.
            outcomes[item.index] = create(ctx, item.kind, item.change)
        elif status and status not in ("429", "503"):
            detail = str(answer.get("detail") or "").splitlines()[:1]
            message = f"{where} operation {item.op['bulkId']}: status {status}"
            outcomes[item.index] = Outcome(
                item.change.address,
                OutcomeStatus.FAILED,
                message=": ".join([message, *detail]),
            )
        else:
            unanswered.append(item)  # no result, or throttled: retried one by one
    outcomes.update(_one_by_one(ctx, unanswered, check_existing=True))
    return outcomes


def _one_by_one(
    ctx: ScimContext, chunk: list[_BulkItem], *, check_existing: bool
) -> dict[int, Outcome]:
    """Bulk did not (fully) answer: create singly, first looking for what it may have
    created already."""
    outcomes: dict[int, Outcome] = {}
    for item in chunk:
        assert item.change.source_id is not None
        found = (
            find_by_external_id(ctx, item.kind, item.change.source_id) if check_existing else None
        )
        if found is not None:
            ctx.remember(item.kind, item.change.source_id, found)
            outcomes[item.index] = Outcome(
                item.change.address, OutcomeStatus.APPLIED, target_id=found
            )
        else:
            outcomes[item.index] = create(ctx, item.kind, item.change)
    return outcomes
