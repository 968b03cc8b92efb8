"""A tiny HTTPS Graph that answers only with Microsoft's published example responses.

Each fixture of ``tests/fixtures/graph-published`` pairs a published request with the body
Microsoft published for it. ``running_replay(fixtures)`` serves them over TLS (a trustme test
CA, as the emulator does) so that syncctl's real client, real httpx and real TLS read them.
The published host is rewritten to the replay's own origin in every body, so nextLinks and
deltaLinks lead back here and paging follows. A ``$batch`` is answered item by item from the
batch fixtures whose published requests hold the same method and url, under the client's
item ids. Anything unmatched gets a 404 ``ReplayNoFixture``: never an invented answer.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import trustme

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "graph-published"
PUBLISHED_ORIGIN = "https://graph.microsoft.com"
NO_FIXTURE = "ReplayNoFixture"

MatchKey = tuple[str, str, tuple[tuple[str, str], ...]]


def load_fixture(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    fixture["name"] = name
    return fixture


def all_fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


def match_key(method: str, url: str) -> MatchKey:
    """Method, path below the version root and query pairs, all percent-decoded: the
    published spelling (spaces, quotes) and the client's encoding compare equal."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    path = "/" + path.lstrip("/")  # batch item urls may omit the leading slash
    if path.startswith("/v1.0/"):
        path = path.removeprefix("/v1.0")
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return method.upper(), path, query


def published_path(url: str) -> tuple[str, dict[str, str]]:
    """A fixture's request url as the client's (path below /v1.0, query parameters)."""
    _, path, query = match_key("GET", url)
    return path, dict(query)


@dataclass
class Replay:
    origin: str
    ca_bundle: Path
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, target)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1.0"

    def rewrite(self, value: Any) -> Any:
        """A published body as this replay serves it: the published host replaced."""
        text = json.dumps(value).replace(f"{PUBLISHED_ORIGIN}/", f"{self.origin}/")
        return json.loads(text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext, fixtures: Sequence[dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.replay: Replay | None = None
        self.lock = threading.Lock()
        # Fixtures of one request are answered in the given order; the last one repeats.
        self.answers: dict[MatchKey, list[dict[str, Any]]] = {}
        self.batch_items: dict[MatchKey, dict[str, Any]] = {}
        for fixture in fixtures:
            request = fixture["request"]
            key = match_key(request["method"], request["url"])
            self.answers.setdefault(key, []).append(fixture)
            if key[1] == "/$batch":
                self._index_batch(fixture)

    def _index_batch(self, fixture: dict[str, Any]) -> None:
        by_id = {str(r["id"]): r for r in fixture["body"]["responses"]}
        for item in fixture["request"]["body"]["requests"]:
            key = match_key(item["method"], item["url"])
            if key in self.batch_items:
                raise ValueError(f"{fixture['name']}: batch item {key} is in two fixtures")
            if str(item["id"]) in by_id:
                self.batch_items[key] = by_id[str(item["id"])]

    def get_request(self) -> tuple[Any, Any]:
        raw, address = self.socket.accept()
        return self.context.wrap_socket(raw, server_side=True), address

    def next_answer(self, key: MatchKey) -> dict[str, Any] | None:
        with self.lock:
            queue = self.answers.get(key)
            if not queue:
                return None
            return queue.pop(0) if len(queue) > 1 else queue[0]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        replay = self.server.replay
        assert replay is not None
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with self.server.lock:
            replay.requests.append((self.command, self.path))
        key = match_key(self.command, self.path)
        if key[1] == "/$batch" and self.command == "POST":
            self._send(200, {"Content-Type": "application/json"}, self._batch(raw))
            return
        fixture = self.server.next_answer(key)
        if fixture is None:
            self._send(404, {"Content-Type": "application/json"}, _no_fixture(key))
            return
        headers = {k: str(v) for k, v in fixture["headers"].items()}
        self._send(fixture["status"], headers, replay.rewrite(fixture["body"]))

    def _batch(self, raw: bytes) -> dict[str, Any]:
        replay = self.server.replay
        assert replay is not None
        responses = []
        for item in json.loads(raw)["requests"]:
            key = match_key(item["method"], item["url"])
            published = self.server.batch_items.get(key)
            if published is None and (single := self.server.next_answer(key)) is not None:
                # A batch item is answered as the same request sent on its own.
                published = {k: single[k] for k in ("status", "headers", "body")}
            if published is None:
                responses.append({"id": item["id"], "status": 404, "body": _no_fixture(key)})
                continue
            responses.append({**replay.rewrite(published), "id": item["id"]})
        return {"responses": responses}

    def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _no_fixture(key: MatchKey) -> dict[str, Any]:
    return {"error": {"code": NO_FIXTURE, "message": f"no published answer for {key}"}}


@contextlib.contextmanager
def running_replay(fixtures: Sequence[dict[str, Any]]) -> Iterator[Replay]:
    workdir = Path(tempfile.mkdtemp(prefix="syncctl-replay-"))
    ca = trustme.CA(organization_name="syncctl replay test CA")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = workdir / "replay-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = _Server(context, fixtures)
    server.replay = Replay(f"https://127.0.0.1:{server.server_address[1]}", bundle)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server.replay
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        shutil.rmtree(workdir, ignore_errors=True)
