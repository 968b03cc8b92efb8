"""HTTP responses the emulator sends, and the error bodies Microsoft publishes.

Graph errors follow `concepts/errors.md`: ``{"error": {"code", "message", "innerError":
{"date", "request-id", "client-request-id"}}}``; the camelCase ``innerError`` and a ``date``
without a zone designator (``"2025-02-13T10:17:05"``, json-batching.md) are what Microsoft's
published bodies show, and the ids match the answer's ``request-id`` headers. Error answers
are plain ``application/json`` without ``OData-Version`` (json-batching.md's error items), and a
throttled answer's innerError is the gateway's own (``throttled_error``, throttling.md).
Identity-platform (token endpoint) errors follow the OAuth 2.0 shape Entra uses: ``error``,
``error_description`` starting with an ``AADSTS`` code, ``error_codes``, ``timestamp``,
``trace_id``, ``correlation_id``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
# json-batching.md: every published error item is "Content-Type": "application/json" (no odata
# parameters, no OData-Version), while successful items carry JSON_TYPE and OData-Version 4.0.
ERROR_TYPE = "application/json"

# Graph's default error codes per status, used when a rule or check names only a status.
GRAPH_ERROR_CODES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: ("Request_ResourceNotFound", "Resource does not exist."),
    409: ("Request_MultipleObjectsWithSameKeyValue", "Conflicting object."),
    410: ("syncStateNotFound", "The sync state generation is not found."),
    424: ("FailedDependency", "A request this request depends on failed."),
    429: ("TooManyRequests", "Please retry again later."),
    500: ("generalException", "An unspecified error has occurred."),
    502: ("badGateway", "Bad gateway."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry."),
    504: ("gatewayTimeout", "The request timed out."),
}

REASONS: dict[int, str] = {
    200: "OK",
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    424: "Failed Dependency",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON. orjson because encoding dominates serving large pages."""
    return orjson.dumps(value)


def utc_iso(moment: datetime) -> str:
    """Graph's DateTimeOffset spelling: ``2024-03-01T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return REASONS.get(self.status, "Unknown")

    def json_value(self) -> Any:
        """The body decoded, for $batch items (Graph nests JSON bodies as objects)."""
        if not self.body:
            return None
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            return json.loads(self.body)
        return self.body.decode()


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return raw_json_response(encode_json(value), status, headers)


def raw_json_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    all_headers = {"Content-Type": JSON_TYPE}
    all_headers.update(headers or {})
    return Response(status, body, all_headers)


def rewritten(response: Response, rewrite: Callable[[Any], Any]) -> Response:
    """A successful JSON answer with its body passed through ``rewrite`` (fault rules); any
    other answer unchanged."""
    if response.status >= 400 or "json" not in response.headers.get("Content-Type", ""):
        return response
    return json_response(rewrite(json.loads(response.body)), response.status, response.headers)


def graph_error(
    status: int,
    message: str | None = None,
    code: str | None = None,
    *,
    request_id: str | None = None,
    client_request_id: str | None = None,
    now: datetime | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    default_code, default_message = GRAPH_ERROR_CODES.get(status, ("UnknownError", "Error."))
    rid = request_id or str(uuid.uuid4())
    inner = {
        "date": error_date(now or datetime.now(UTC)),
        "request-id": rid,
        "client-request-id": client_request_id or rid,
    }
    body = {
        "error": {
            "code": code or default_code,
            "message": message or default_message,
            "innerError": inner,
        }
    }
    return json_response(body, status, {"Content-Type": ERROR_TYPE, **(headers or {})})


def throttled_error(headers: Mapping[str, str], now: datetime | None = None) -> Response:
    """A 429 as throttling.md's sample shows it: the throttling layer's innerError (``code``
    and ``status`` as strings, its own ``message``, no ``client-request-id``), not the
    directory's."""
    inner = {
        "code": "429",
        "date": error_date(now or datetime.now(UTC)),
        "message": "Please retry after",
        "request-id": str(uuid.uuid4()),
        "status": "429",
    }
    body = {
        "error": {
            "code": "TooManyRequests",
            "innerError": inner,
            "message": "Please retry again later.",
        }
    }
    return json_response(body, 429, {"Content-Type": ERROR_TYPE, **headers})


def error_date(moment: datetime) -> str:
    """innerError.date: UTC, whole seconds, no trailing ``Z`` (unlike DateTimeOffset values)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def stamp_request_ids(response: Response, request_id: str, client_request_id: str) -> None:
    """Make an error body's innerError name the ids its headers carry (an answer has one
    request-id, whichever handler built the error)."""
    if response.status < 400 or "json" not in response.headers.get("Content-Type", ""):
        return
    try:
        body = json.loads(response.body)
    except ValueError:
        return  # a fault rule's deliberately broken body stays broken
    inner = body.get("error", {}).get("innerError") if isinstance(body, dict) else None
    if isinstance(inner, dict):
        inner["request-id"] = request_id
        if "client-request-id" in inner:  # a throttled innerError has none (throttling.md)
            inner["client-request-id"] = client_request_id
        response.body = encode_json(body)


def identity_error(
    status: int, error: str, aadsts: int, description: str, now: datetime | None = None
) -> Response:
    trace = str(uuid.uuid4())
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{aadsts}: {description} Trace ID: {trace} "
            f"Correlation ID: {trace} Timestamp: {moment.strftime('%Y-%m-%d %H:%M:%SZ')}"
        ),
        "error_codes": [aadsts],
        "timestamp": moment.strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": trace,
        "correlation_id": trace,
    }
    return Response(status, encode_json(body), {"Content-Type": "application/json; charset=utf-8"})


def html_response(status: int, page: str) -> Response:
    """A page for a person's browser (the sign-in pages), never cached."""
    return Response(
        status,
        page.encode(),
        {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


class GraphRequestError(Exception):
    """Raised inside route handlers; the server turns it into Graph's error body."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message or code or str(status))
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})
