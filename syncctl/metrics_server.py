"""``watch --metrics-listen HOST:PORT``: ``/metrics`` for Prometheus, ``/healthz`` for probes.

A plain ``http.server`` on its own daemon thread: two read-only endpoints do not need a web
framework, and prometheus-client's own server has no health endpoint.
"""

from __future__ import annotations

import errno
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from syncctl.errors import SyncctlError
from syncctl.metrics import RunMetrics
from syncctl.watch import Health


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (every interface) -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9185 or :9185)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)  # ":PORT": every interface


class MetricsServer:
    """Serves until ``close``; ``url`` names the bound address (port 0 picks a free one)."""

    def __init__(self, listen: str, metrics: RunMetrics, health: Health) -> None:
        host, port = parse_listen(listen)
        handler = _handler(metrics, health)
        server_class = _V6Server if ":" in host else ThreadingHTTPServer
        try:
            self._server = server_class((host, port), handler)
        except OSError as exc:
            why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise SyncctlError(f"--metrics-listen {listen}: cannot listen: {why}") from None
        self._server.daemon_threads = True
        bound_host, bound_port = str(self._server.server_address[0]), self._server.server_port
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="syncctl-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler(metrics: RunMetrics, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "syncctl"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.exposition())
            elif path == "/healthz":
                if health.healthy():
                    self._send(200, "text/plain; charset=utf-8", b"ok\n")
                else:
                    text = f"stuck: the loop is {health.overdue():.0f}s overdue\n"
                    self._send(503, "text/plain; charset=utf-8", text.encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # a scrape every 15 s is not worth a log line

    return Handler
