"""A small loopback HTTP proxy in front of a real SCIM server that injects faults.

Each request is matched against ``rules`` in order; the first rule whose ``method`` and
``path_contains`` match and that still has ``times`` left decides what happens:
- ``status``: answer with this status (and ``headers``/``body``) without forwarding;
- ``drop``: close the connection without answering (nothing reaches the server);
- ``drop_after``: forward, let the server act, then close without answering (the dangerous
  case for creates: it happened, but the client cannot know);
- ``ignore_count``: forward without the ``count`` query parameter (a server that ignores it).
Everything else is forwarded unchanged. ``log`` records (method, path-with-query, status),
``bodies`` (method, path, request body) for tests that check what was sent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx


@dataclass
class Rule:
    kind: str  # "status" | "drop" | "drop_after" | "ignore_count"
    method: str | None = None
    path_contains: str = ""
    times: int = 1_000_000
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method)
            and self.path_contains in path
        )


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, int]] = []
        self.bodies: list[tuple[str, str, bytes]] = []  # (method, path, request body)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                proxy.handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def _pick(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    return rule
        return None

    def count(self, method: str, path_contains: str = "", status: int | None = None) -> int:
        with self._lock:
            return sum(
                1
                for m, p, s in self.log
                if m == method and path_contains in p and (status is None or s == status)
            )

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        rule = self._pick(method, path)
        with self._lock:
            self.bodies.append((method, path, body))
        if rule is not None and rule.kind == "drop":
            self._record(method, path, 0)
            handler.close_connection = True
            handler.connection.close()
            return
        if rule is not None and rule.kind == "status":
            self._record(method, path, rule.status)
            handler.send_response(rule.status)
            for name, value in rule.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(rule.body)))
            handler.end_headers()
            handler.wfile.write(rule.body)
            return
        forward = path
        if rule is not None and rule.kind == "ignore_count":
            parts = urlsplit(path)
            query = [(k, v) for k, v in parse_qsl(parts.query) if k != "count"]
            forward = parts.path + ("?" + urlencode(query) if query else "")
        headers = {
            k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")
        }
        response = self._client.request(
            method, self.upstream + forward, content=body, headers=headers
        )
        self._record(method, path, response.status_code)
        if rule is not None and rule.kind == "drop_after":
            handler.close_connection = True
            handler.connection.close()
            return
        handler.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "date",
                "server",
            ):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(response.content)))
        handler.end_headers()
        handler.wfile.write(response.content)

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((method, path, status))
