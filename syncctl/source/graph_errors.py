"""Graph's error answers as one-line GraphErrors that carry both ids Microsoft support asks
for: the ``request-id`` Graph assigned and the ``client-request-id`` syncctl sent.

Graph's error body (https://learn.microsoft.com/graph/errors) is ``{"error": {"code",
"message", "innerError": {"request-id", "client-request-id", "date"}}}``; some services spell
``innererror`` and ``requestId`` / ``clientRequestId`` in camelCase, so every spelling is read.
"""

from __future__ import annotations

from typing import Any

from syncctl import deadline
from syncctl.errors import GraphError
from syncctl.source import permissions

DENIED = "Authorization_RequestDenied"


def reworded(error: GraphError, message: str) -> GraphError:
    """The same request, status and ids with another message."""
    return GraphError(
        message,
        request=error.request,
        status=error.status,
        code=error.code,
        request_id=error.request_id,
        client_request_id=error.client_request_id,
    )


def graph_error(
    label: str,
    status: Any,
    body: Any,
    headers: dict[str, str],
    client_request_id: str | None,
) -> GraphError:
    """Graph's error answer -> GraphError; a 403 names the permission the request
    needed (from ``permissions.ENDPOINTS``). ``headers`` are lower-cased."""
    code: str | None = None
    message = f"HTTP {status}"
    request_id = headers.get("request-id")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), str) else None
        if isinstance(error.get("message"), str) and error["message"].strip():
            message = error["message"].strip().splitlines()[0][:300]
        inner = error.get("innerError", error.get("innererror"))
        if isinstance(inner, dict):
            request_id = _first_text(inner, "request-id", "requestId") or request_id
            client_request_id = client_request_id or _first_text(
                inner, "client-request-id", "clientRequestId"
            )
    client_request_id = client_request_id or headers.get("client-request-id")
    if status == 403 and code in (DENIED, None):
        message = _denied(label, code, message)
    return GraphError(
        message,
        request=label,
        status=status if isinstance(status, int) else None,
        code=code,
        request_id=request_id,
        client_request_id=client_request_id,
    )


def _denied(label: str, code: str | None, message: str) -> str:
    """``403 Authorization_RequestDenied: the app registration lacks X (grant it and
    admin-consent; needed to ...)``; Graph's own message when the request is not in the table
    (a 403 with another code, e.g. from a Conditional Access policy, is not mapped)."""
    method, _, path = label.partition(" ")
    endpoint = permissions.endpoint_for(method, path)
    prefix = f"403 {code}" if code else "403"
    if endpoint is None:
        return f"{prefix}: {message}"
    return f"{prefix}: {permissions.lacks_message(endpoint)}"


def _first_text(mapping: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def error_reason(error: GraphError) -> str:
    """The error's text without its request prefix (the caller names the request)."""
    return str(error).removeprefix(f"{error.request}: ")


def gave_up(error: GraphError, attempts: int) -> GraphError:
    """The last transient error, reworded: the read failed for good."""
    text = error_reason(error)
    ids = (error.status, error.code, error.request_id, error.client_request_id)
    if any(v is not None for v in ids):
        text = text[: text.rfind(" (")]  # GraphError appends the details again below
    return reworded(error, f"gave up after {attempts} attempts: {text}")


def cannot_wait(label: str, asked: float, waited: float, error: GraphError) -> Exception:
    """The server asked for a longer pause than the retry budget or the deadline leaves."""
    budget_left = deadline.MAX_RETRY_WAIT_PER_REQUEST - waited
    left = deadline.remaining()
    if left is not None and left < budget_left:
        return deadline.DeadlineExceeded(
            f"{label}: throttled with Retry-After {asked:g}s, but the run's deadline "
            f"(--timeout) passes in {max(left, 0):.0f}s; raise --timeout or check why the "
            f"service is slow; last answer: {error_reason(error)}"
        )
    return deadline.RetryBudgetExceeded(
        f"{label}: throttled with Retry-After {asked:g}s, more than the {max(budget_left, 0):.0f}s "
        f"left of its retry budget ({deadline.MAX_RETRY_WAIT_PER_REQUEST:.0f}s of waiting per "
        f"request); last answer: {error_reason(error)}"
    )
