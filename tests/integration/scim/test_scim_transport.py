"""Transport rules: which URLs are allowed, auth (bearer, OAuth client credentials), and the
clear errors for endpoints that are not SCIM, not reachable, or refuse the token."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from syncctl.errors import TargetError
from syncctl.policy.model import OAuthClientCredentials, ScimTarget, SecretRef
from syncctl.targets.scim import ScimDirectory
from syncctl.targets.scim_http import check_url
from syncctl.transport import parse_retry_after as retry_after_seconds
from tests.contract.scim_harness import ScimServer, free_port, scim_policy
from tests.integration.scim.helpers import make_policy


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/scim/v2",
        "http://localhost/v2/",
        "http://[::1]:9/v2",
        "https://vault.example.com/scim/v2",
    ],
)
def test_allowed_urls(url: str) -> None:
    assert check_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://vault.example.com/scim/v2", "plain http is refused"),
        ("http://10.0.0.5/scim/v2", "plain http is refused"),
        ("ftp://vault.example.com/", "not an https URL"),
        ("vault.example.com/scim", "not an https URL"),
    ],
)
def test_refused_urls(url: str, why: str) -> None:
    with pytest.raises(TargetError, match=why):
        check_url(url)


def test_loopback_http_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_url("http://127.0.0.1:1/v2")
    assert "plain http" in caplog.text


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 31


class _Canned(BaseHTTPRequestHandler):
    """Answers from the server's ``routes`` (path -> (status, JSON)); records form posts."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        server.seen.append((self.command, self.path, dict(self.headers), body))
        status, payload = server.routes(self.command, self.path.split("?")[0], self.headers, body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


def _serve(routes: Any) -> Iterator[ThreadingHTTPServer]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.routes, server.seen = routes, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _policy_for(tmp_path: Path, target: ScimTarget) -> Any:
    import dataclasses

    return dataclasses.replace(make_policy(tmp_path), target=target)


def test_not_scim_is_named(tmp_path: Path, token_env: None) -> None:
    for server in _serve(lambda *a: (200, b"<html>hello</html>")):
        url = f"http://127.0.0.1:{server.server_address[1]}/scim/v2"
        directory = ScimDirectory(
            _policy_for(tmp_path, ScimTarget(url=url, token=SecretRef(env="T")))
        )
        with pytest.raises(TargetError, match="not a SCIM endpoint"):
            directory.check()
        directory.close()
    for server in _serve(lambda *a: (404, {"error": "nope"})):
        url = f"http://127.0.0.1:{server.server_address[1]}/scim/v2"
        directory = ScimDirectory(
            _policy_for(tmp_path, ScimTarget(url=url, token=SecretRef(env="T")))
        )
        with pytest.raises(TargetError, match=r"ServiceProviderConfig: not a SCIM endpoint \(404"):
            directory.check()
        directory.close()


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T", "value")


def test_unreachable_is_named(tmp_path: Path, token_env: None) -> None:
    url = f"http://127.0.0.1:{free_port()}/v2"
    directory = ScimDirectory(_policy_for(tmp_path, ScimTarget(url=url, token=SecretRef(env="T"))))
    directory._http.retry = type(directory._http.retry)(attempts=2, backoff=0.01)
    with pytest.raises(TargetError, match="connection failed"):
        directory.read("p", [])
    directory.close()


def test_oauth_client_credentials_against_scim2_server(
    tmp_path: Path, scim_server: ScimServer, tenant_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token endpoint that issues the server's token; syncctl fetches it once, reuses it,
    and never shows the secret in errors."""
    issued: list[dict[str, list[str]]] = []

    def routes(method: str, path: str, headers: Any, body: str) -> tuple[int, Any]:
        form = parse_qs(body)
        issued.append(form)
        if form.get("client_secret") != ["s3cret-value"]:
            return 401, {"error": "invalid_client"}
        return 200, {"access_token": scim_server.token, "token_type": "Bearer", "expires_in": 3600}

    monkeypatch.setenv("SCIM_CLIENT_SECRET", "s3cret-value")
    for token_server in _serve(routes):
        token_url = f"http://127.0.0.1:{token_server.server_address[1]}/oauth/token"
        oauth = OAuthClientCredentials(
            token_url=token_url,
            client_id="syncctl",
            client_secret=SecretRef(env="SCIM_CLIENT_SECRET"),
            scope="scim",
        )
        directory = ScimDirectory(_policy_for(tmp_path, ScimTarget(url=tenant_url, oauth=oauth)))
        directory.check()
        directory.read("p", [])
        directory.close()
        assert len(issued) == 1
        assert issued[0]["grant_type"] == ["client_credentials"]
        assert issued[0]["scope"] == ["scim"]

        monkeypatch.setenv("SCIM_CLIENT_SECRET", "wrong-secret")
        refused = ScimDirectory(_policy_for(tmp_path, ScimTarget(url=tenant_url, oauth=oauth)))
        with pytest.raises(TargetError, match=r"token request refused \(status 401\)") as info:
            refused.check()
        assert "wrong-secret" not in str(info.value)
        refused.close()


def test_token_file_is_used(tmp_path: Path, scim_server: ScimServer, tenant_url: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(scim_server.token + "\n", encoding="utf-8")
    directory = ScimDirectory(scim_policy(make_policy(tmp_path), tenant_url, token_file))
    directory.check()
    directory.close()


def test_ca_bundle_that_cannot_be_read_is_named(tmp_path: Path, token_env: None) -> None:
    target = ScimTarget(
        url="https://vault.example.com/v2", token=SecretRef(env="T"), ca_bundle=tmp_path / "x.pem"
    )
    with pytest.raises(TargetError, match="ca_bundle"):
        ScimDirectory(_policy_for(tmp_path, target))
