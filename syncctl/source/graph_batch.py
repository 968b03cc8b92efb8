"""JSON batching for GraphClient: the ``$batch`` body of up to 20 GETs, and reading its
answer item by item. Each item has its own status, headers and client-request-id, so a
throttled item is retried on its own and a failed one is named by its own ids; the retry
loop itself (attempts, pauses, the pacer) stays in GraphClient."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syncctl.errors import GraphError
from syncctl.source.graph_errors import graph_error
from syncctl.source.graph_request import Request
from syncctl.source.pacing import THROTTLE_WARNING_HEADER, throttle_usage
from syncctl.source.pages import json_kind

BATCH_SIZE = 20  # Graph's JSON batching limit
RETRYABLE_STATUS = frozenset({429, 503, 504})
ADVANCED = {"ConsistencyLevel": "eventual"}


@dataclass(frozen=True, slots=True)
class Answer:
    """What Graph said to one single-object GET of ``get_each``: ``body`` on 200, ``error``
    (status, Graph error code, request-id) otherwise."""

    status: int
    body: dict[str, Any] | None
    error: GraphError | None


@dataclass(slots=True)
class BatchRound:
    """One ``$batch`` answer, read: the items that are done, and for the items still pending
    (throttled or failed transiently) the Retry-After they asked for and their last error."""

    done: dict[str, Answer] = field(default_factory=dict)
    asked: list[float] = field(default_factory=list)  # Retry-After of the throttled items
    # The non-throttled items' own throttle warnings (None: that item carried none).
    usage: list[float | None] = field(default_factory=list)
    last_error: GraphError | None = None


def batch_body(pending: Mapping[str, Request], client_ids: Mapping[str, str]) -> dict[str, Any]:
    return {
        "requests": [
            {
                "id": item_id,
                "method": "GET",
                "url": request.relative_url(),
                "headers": {
                    "client-request-id": client_ids[item_id],
                    **(ADVANCED if request.advanced else {}),
                },
            }
            for item_id, request in sorted(pending.items(), key=lambda kv: int(kv[0]))
        ]
    }


def read_batch(
    answer: Any,
    pending: Mapping[str, Request],
    client_ids: Mapping[str, str],
    accept: frozenset[int],
    retry_after: Callable[[str | None, GraphError], float | None],
) -> BatchRound:
    """Answers with a status in ``accept`` are done (a 200 must carry a JSON object);
    429/503/504 stay pending; any other status, or an item left unanswered, fails the read."""
    responses = answer.get("responses") if isinstance(answer, dict) else None
    if not isinstance(responses, list):
        raise GraphError("response has no `responses` array", request="POST /$batch")
    result = BatchRound()
    for response in responses:
        item_id = str(response.get("id")) if isinstance(response, dict) else ""
        if item_id not in pending or item_id in result.done:
            continue
        request = pending[item_id]
        status = response.get("status")
        raw_headers = response.get("headers")
        headers = (
            {str(k).lower(): str(v) for k, v in raw_headers.items()}
            if isinstance(raw_headers, dict)
            else {}
        )
        body = response.get("body")
        error = graph_error(request.label(), status, body, headers, client_ids[item_id])
        if status not in RETRYABLE_STATUS:
            result.usage.append(throttle_usage(headers.get(THROTTLE_WARNING_HEADER)))
        if status in accept and status != 200:
            result.done[item_id] = Answer(status, None, error)
        elif status == 200 and 200 in accept:
            if not isinstance(body, dict):
                raise GraphError(
                    f"answered 200 with a body that is {json_kind(body)}, not a JSON object",
                    request=request.label(),
                )
            result.done[item_id] = Answer(200, body, None)
        elif status in RETRYABLE_STATUS:
            result.last_error = error
            wait = retry_after(headers.get("retry-after"), error)
            if wait is not None:
                result.asked.append(wait)
        else:
            raise error
    answered = {str(r.get("id")) for r in responses if isinstance(r, dict)}
    unanswered = sorted(i for i in pending if i not in answered)
    if unanswered:
        raise GraphError(
            f"batch answered without item(s) {', '.join(unanswered)}", request="POST /$batch"
        )
    return result
