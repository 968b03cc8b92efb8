"""``POST /$batch`` (json-batching.md): validation, dependsOn, and the answer envelope.

Each item goes through the caller-supplied ``send`` (the service's throttled dispatch), so an
item is authenticated by the batch and throttled on its own, like Graph does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from syncctl.emulator.faults import Faults
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.responses import (
    GraphRequestError,
    Response,
    graph_error,
    json_response,
    rewritten,
)
from syncctl.emulator.throttle import format_retry_after

MAX_BATCH = 20


def run_batch(
    request: GraphRequest, send: Callable[[GraphRequest], Response], faults: Faults
) -> Response:
    body = request.json_body()
    items = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise GraphRequestError(400, "Invalid batch payload format.", "BadRequest")
    if len(items) > MAX_BATCH:
        raise GraphRequestError(
            400,
            f"Number of requests in batch exceeds the maximum limit of {MAX_BATCH}.",
            "BadRequest",
        )
    seen: dict[str, Mapping[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or not {"id", "method", "url"} <= set(item):
            raise GraphRequestError(400, "Invalid batch payload format.", "BadRequest")
        item_id = str(item["id"])
        if item_id.casefold() in {k.casefold() for k in seen}:  # ids are not case-sensitive
            raise GraphRequestError(
                400, f"Batch request ids must be unique; '{item_id}' repeats.", "BadRequest"
            )
        if "body" in item and "content-type" not in {
            k.lower() for k in (item.get("headers") or {})
        }:
            raise GraphRequestError(
                400,
                f"Batch request '{item_id}' has a body but no Content-Type header.",
                "BadRequest",
            )
        seen[item_id] = item
    for item in items:
        for dependency in item.get("dependsOn") or []:
            if str(dependency) not in seen:
                raise GraphRequestError(
                    400,
                    f"Batch request '{item['id']}' depends on unknown '{dependency}'.",
                    "BadRequest",
                )
    results: dict[str, Response] = {}
    for item in items:
        item_id = str(item["id"])
        failed = [
            d
            for d in item.get("dependsOn") or []
            if str(d) in results and results[str(d)].status >= 400
        ]
        if failed:
            results[item_id] = graph_error(424, "Failed dependency.", "FailedDependency")
            continue
        results[item_id] = _batch_item(item, send, faults)
    # Graph answers in any order: a stable shuffle keeps tests deterministic
    order = sorted(results, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    return json_response({"responses": [_entry(i, results[i]) for i in order]})


def _entry(item_id: str, response: Response) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": item_id, "status": response.status}
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in ("request-id", "client-request-id")
    }
    if headers:
        entry["headers"] = headers
    if response.body:
        entry["body"] = response.json_value()
    elif response.status == 204:
        entry["body"] = None  # a 204 item still carries the key, as Graph's answers do
    return entry


def _batch_item(
    item: Mapping[str, Any], send: Callable[[GraphRequest], Response], faults: Faults
) -> Response:
    url = str(item["url"])
    if "://" in url:
        return graph_error(400, "Batch request urls must be relative.", "BadRequest")
    target = "/v1.0" + (url if url.startswith("/") else "/" + url)
    body = item.get("body")
    payload = b"" if body is None else json.dumps(body).encode()
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
    inner = GraphRequest.from_target(str(item["method"]), target, headers, payload)
    if inner.path.lower() == "/v1.0/$batch":
        return graph_error(400, "Nested batches are not supported.", "BadRequest")
    fault = faults.take(inner.method, target)
    if fault is not None and fault.status is not None:
        headers_out = (
            {"Retry-After": format_retry_after(fault.retry_after)}
            if fault.retry_after is not None
            else {}
        )
        return graph_error(fault.status, fault.message, headers=headers_out)
    response = send(inner)
    if fault is not None and fault.rewrite is not None:
        return rewritten(response, fault.rewrite)
    return response
