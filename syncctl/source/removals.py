"""Why managed ids left Entra, asked of Graph for exactly those ids, with positive evidence.

Used for the ids a read's slice cannot explain itself (``syncctl.source.reader``): the
precedence is hard_deleted > soft_deleted > disabled > out_of_scope, and an id merely missing
from an answer proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncctl.errors import GraphError
from syncctl.model import RemovalReason
from syncctl.source.graph import Answer, GraphClient, Request
from syncctl.source.graph_errors import reworded

GET_BY_IDS_LIMIT = 1000
NOT_FOUND = "Request_ResourceNotFound"  # Graph's code for "no such object" (a 404)


def removal_reasons(
    graph: GraphClient, object_ids: list[str], error: Callable[[str], GraphError]
) -> dict[str, RemovalReason]:
    """Why each managed id left, asked of Graph for exactly those ids:
    hard_deleted > soft_deleted > disabled > out_of_scope.

    Every id needs positive evidence: returned by getByIds (live: disabled or
    out_of_scope), found by ``GET /directory/deletedItems/{id}`` (soft_deleted), or
    answered 404 ``Request_ResourceNotFound`` by both that and ``GET
    /directoryObjects/{id}`` (hard_deleted). Missing from an answer proves nothing: an id
    without evidence, or with contradicting evidence, fails the read."""
    if not object_ids:
        return {}
    reasons: dict[str, RemovalReason] = {}
    live_users = _get_by_ids(graph, object_ids, "user", "id,accountEnabled")
    for object_id, user in live_users.items():
        enabled = user.get("accountEnabled") is True
        reasons[object_id] = RemovalReason.OUT_OF_SCOPE if enabled else RemovalReason.DISABLED
    rest = [i for i in object_ids if i not in reasons]
    for object_id in _get_by_ids(graph, rest, "group", "id") if rest else {}:
        reasons[object_id] = RemovalReason.OUT_OF_SCOPE
    rest = [i for i in rest if i not in reasons]
    in_deleted = _lookup_each(graph, "/directory/deletedItems", rest)
    for object_id in rest:
        if in_deleted[object_id]:
            reasons[object_id] = RemovalReason.SOFT_DELETED
    gone = [i for i in rest if i not in reasons]
    live = _lookup_each(graph, "/directoryObjects", gone)
    contradicted = [i for i in gone if live[i]]
    if contradicted:
        raise error(
            f"Graph's answers disagree about {_some(contradicted)}: getByIds did not return "
            "them, yet GET /directoryObjects/{id} finds them live (a partial getByIds "
            "answer?); not guessing why they left, nothing is planned from this read"
        )
    for object_id in gone:
        reasons[object_id] = RemovalReason.HARD_DELETED
    return dict(sorted(reasons.items()))


def _lookup_each(graph: GraphClient, collection: str, object_ids: list[str]) -> dict[str, bool]:
    """For each id, whether ``GET {collection}/{id}`` finds it: True on 200 with that id,
    False on 404 ``Request_ResourceNotFound``; any other answer fails the read."""
    if not object_ids:
        return {}
    requests = [Request(f"{collection}/{i}", {"$select": "id"}) for i in object_ids]
    found: dict[str, bool] = {}
    for object_id, request, answer in zip(
        object_ids, requests, graph.get_each(requests), strict=True
    ):
        found[object_id] = _is_found(request, answer, object_id)
    return found


def _get_by_ids(
    graph: GraphClient, ids: list[str], kind: str, select: str
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), GET_BY_IDS_LIMIT):
        chunk = ids[start : start + GET_BY_IDS_LIMIT]
        answer = graph.post(
            "/directoryObjects/getByIds", {"ids": chunk, "types": [kind]}, {"$select": select}
        )
        values = answer.get("value") if isinstance(answer, dict) else None
        if not isinstance(values, list) or "@odata.nextLink" in answer:
            raise GraphError("unexpected response shape", request="POST /directoryObjects/getByIds")
        wanted = set(chunk)
        for item in values:
            if isinstance(item, dict) and item.get("id") in wanted:
                found[item["id"]] = item
    return found


def _is_found(request: Request, answer: Answer, object_id: str) -> bool:
    if answer.status == 200 and answer.body is not None:
        if answer.body.get("id") != object_id:
            raise GraphError(
                f"answered with object {answer.body.get('id')!r}, not the one asked for",
                request=request.label(),
            )
        return True
    error = answer.error
    if answer.status == 404 and error is not None and error.code == NOT_FOUND:
        return False
    # A 404 without Graph's not-found code (a proxy, a wrong route) proves nothing.
    message = f"no usable answer about {object_id}, so it is not known whether it was deleted"
    if error is None:
        raise GraphError(message, request=request.label(), status=answer.status)
    raise reworded(error, message)


def _some(object_ids: list[str]) -> str:
    shown = ", ".join(object_ids[:3])
    more = f" and {len(object_ids) - 3} more" if len(object_ids) > 3 else ""
    return f"{len(object_ids)} id(s) ({shown}{more})"
