"""The emulator's control endpoint (``syncctl emulator serve --control``): what a harness in
another process needs and Graph has no API for.

Under ``/_emulator/``, with ``Authorization: Bearer <control key>`` (printed once at start):
  GET    /_emulator/requests   the requests served so far (method, path, query) and the Graph
                               ones counted by method
  DELETE /_emulator/requests   forget them (start counting a new run)
  POST   /_emulator/changes    ``{"changes": [{"op": ..., "args": [...], "properties": {...}}]}``
                               applied in order through the tenant's own mutation methods, so
                               caches, delta tokens and the change log see them as any change
  GET    /_emulator/device/pending  ``{"user_codes": [...]}``: device sign-ins waiting
  POST   /_emulator/device/approve  ``{"user_code": ..., "user": UPN or id (optional)}``
  POST   /_emulator/device/decline  ``{"user_code": ...}``
  PUT    /_emulator/interactive-user  ``{"user": UPN, id or null}``: who /authorize signs in
  POST   /_emulator/refresh-tokens/revoke  ``{"user": ... (optional)}``: invalid_grant after

Control requests are neither recorded nor subject to faults or latency, so counts are Graph's.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from syncctl.emulator.responses import Response, graph_error, json_response
from syncctl.emulator.tenant import EmulatorTenant, TenantError

if TYPE_CHECKING:
    from syncctl.emulator.delegated import DelegatedFlows

PREFIX = "/_emulator/"
# The tenant's public mutations, by name: nothing else is reachable (no private methods,
# no loading of documents or files).
OPERATIONS = frozenset(
    {
        "create_user",
        "update_user",
        "disable_user",
        "soft_delete_user",
        "restore_user",
        "hard_delete_user",
        "create_group",
        "update_group",
        "soft_delete_group",
        "restore_group",
        "hard_delete_group",
        "add_member",
        "remove_member",
    }
)

RequestRecord = tuple[str, str, str]  # (method, path, query string)
_SIGN_IN_ROUTES = frozenset(
    {
        "device/pending",
        "device/approve",
        "device/decline",
        "interactive-user",
        "refresh-tokens/revoke",
    }
)


class Control:
    def __init__(
        self,
        key: str,
        tenant: EmulatorTenant,
        requests: Callable[[], Sequence[RequestRecord]],
        reset: Callable[[], None],
        *,
        delegated: DelegatedFlows | None = None,
    ) -> None:
        self._key = key
        self._delegated = delegated
        self._tenant = tenant
        self._requests = requests
        self._reset = reset

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        given = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._key}".encode()):
            return _error(401, "control requests need Authorization: Bearer <control key>")
        route = (method, path.removeprefix(PREFIX).rstrip("/"))
        if route == ("GET", "requests"):
            return json_response(self._listing())
        if route == ("DELETE", "requests"):
            self._reset()
            return Response(204)
        if route == ("POST", "changes"):
            return self._changes(body)
        if self._delegated is not None and route[1] in _SIGN_IN_ROUTES:
            return self._sign_in(self._delegated, route, body)
        return _error(404, f"no control endpoint {method} {path}")

    def _listing(self) -> dict[str, Any]:
        records = list(self._requests())
        graph: dict[str, int] = {}
        for method, path, _ in records:
            if path.startswith("/v1.0/"):
                graph[method] = graph.get(method, 0) + 1
        return {
            "requests": [{"method": m, "path": p, "query": q} for m, p, q in records],
            "graph": graph,
        }

    def _sign_in(self, flows: DelegatedFlows, route: tuple[str, str], body: bytes) -> Response:
        from syncctl.emulator.delegated import DelegatedError

        if route == ("GET", "device/pending"):
            return json_response({"user_codes": flows.pending_device_codes()})
        try:
            document = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, f"{route[0]} {PREFIX}{route[1]}: body is not JSON")
        if not isinstance(document, dict):
            return _error(400, f"{route[0]} {PREFIX}{route[1]}: want a JSON object")
        user = document.get("user")
        user_code = document.get("user_code")
        if user is not None and not isinstance(user, str):
            return _error(400, "user: a UPN or object id")
        try:
            if route == ("POST", "device/approve") and isinstance(user_code, str):
                return json_response({"user": flows.approve_device_code(user_code, user)})
            if route == ("POST", "device/decline") and isinstance(user_code, str):
                flows.decline_device_code(user_code)
                return Response(204)
            if route == ("PUT", "interactive-user"):
                flows.interactive_user = user
                return Response(204)
            if route == ("POST", "refresh-tokens/revoke"):
                return json_response({"revoked": flows.revoke_refresh_tokens(user)})
        except DelegatedError as exc:
            return _error(400, str(exc))
        return _error(400, f"{route[0]} {PREFIX}{route[1]}: see syncctl/emulator/control.py")

    def _changes(self, body: bytes) -> Response:
        try:
            document = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "POST /_emulator/changes: body is not JSON")
        changes = document.get("changes") if isinstance(document, dict) else None
        if not isinstance(changes, list):
            return _error(400, 'POST /_emulator/changes: want {"changes": [...]}')
        results: list[Any] = []
        for index, change in enumerate(changes):
            try:
                results.append(self._apply(change))
            except (TenantError, TypeError, ValueError) as exc:
                # Earlier changes stay applied (as in Entra, nothing is rolled back): say so.
                return _error(400, f"change {index}: {exc}; changes before it were applied")
        return json_response({"applied": len(results), "results": results})

    def _apply(self, change: Any) -> Any:
        if not isinstance(change, dict):
            raise ValueError("not an object")
        op = change.get("op")
        args = change.get("args", [])
        properties = change.get("properties", {})
        if op not in OPERATIONS:
            raise ValueError(f"unknown op {op!r} (known: {', '.join(sorted(OPERATIONS))})")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"{op}: args must be a list of strings")
        if not isinstance(properties, dict):
            raise ValueError(f"{op}: properties must be an object")
        return getattr(self._tenant, op)(*args, **properties)


def _error(status: int, message: str) -> Response:
    return graph_error(status, message)
