"""One-line errors and bounded waiting in the SCIM transport: an https server whose certificate
the client does not trust is named (and not retried), and a server that throttles forever
ends at the per-request retry budget or the run's deadline instead of waiting it out."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from syncctl import deadline
from syncctl.errors import TargetError, TransientTargetError
from syncctl.policy.model import ScimTarget, SecretRef
from syncctl.targets.scim import ScimDirectory
from tests.integration.scim.helpers import make_policy

SPC = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
    "patch": {"supported": True},
    "filter": {"supported": True, "maxResults": 100},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        server: Any = self.server
        server.requests += 1
        status, headers, body = server.answer(self.path)
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/scim+json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    """Counts connections; with ``tls``, the handshake happens per connection (in its thread)."""

    daemon_threads = True

    def __init__(self, answer: Any, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer, self.tls = answer, tls
        self.connections = self.requests = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        self.connections += 1
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused our certificate
        super().finish_request(request, client_address)


def _serve(answer: Any, tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    server = _Server(answer, tls)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> SecretRef:
    monkeypatch.setenv("SCIM_T", "tls-test-token-value")
    return SecretRef(env="SCIM_T")


def _directory(tmp_path: Path, target: ScimTarget) -> ScimDirectory:
    import dataclasses

    return ScimDirectory(dataclasses.replace(make_policy(tmp_path), target=target))


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture
def https_server() -> Iterator[tuple[_Server, trustme.CA]]:
    ca = trustme.CA(organization_name="syncctl SCIM test CA")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    yield from ((s, ca) for s in _serve(lambda path: (200, {}, SPC), context))


def test_untrusted_certificate_is_named_and_not_retried(
    tmp_path: Path, https_server: tuple[_Server, trustme.CA], token: SecretRef
) -> None:
    server, _ = https_server
    url = f"https://127.0.0.1:{server.server_address[1]}/scim/v2"
    directory = _directory(tmp_path, ScimTarget(url=url, token=token))
    with pytest.raises(TargetError) as info:
        directory.check()
    directory.close()
    message = str(info.value)
    assert message == (
        f"{url}/ServiceProviderConfig: TLS certificate not trusted (CERTIFICATE_VERIFY_FAILED: "
        "unable to get local issuer certificate); set target.ca_bundle to the CA that signed it"
    )
    assert "\n" not in message and "tls-test-token-value" not in message
    assert server.connections == 1  # a certificate problem does not go away on retry


def test_ca_bundle_with_another_ca_is_named(
    tmp_path: Path, https_server: tuple[_Server, trustme.CA], token: SecretRef
) -> None:
    server, _ = https_server
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    url = f"https://127.0.0.1:{server.server_address[1]}/scim/v2"
    directory = _directory(tmp_path, ScimTarget(url=url, token=token, ca_bundle=other))
    with pytest.raises(TargetError, match=rf"target.ca_bundle \({other}\) does not hold the CA"):
        directory.check()
    directory.close()


def test_ca_bundle_with_the_signing_ca_is_trusted(
    tmp_path: Path, https_server: tuple[_Server, trustme.CA], token: SecretRef
) -> None:
    server, ca = https_server
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    url = f"https://127.0.0.1:{server.server_address[1]}/scim/v2"
    directory = _directory(tmp_path, ScimTarget(url=url, token=token, ca_bundle=bundle))
    assert directory.service_provider.patch is True
    directory.close()


# -- bounded waiting -------------------------------------------------------------------------


@pytest.fixture
def throttling(tmp_path: Path, token: SecretRef) -> Iterator[tuple[_Server, ScimDirectory]]:
    """A server that answers every request 429 with Retry-After: 300."""
    for server in _serve(lambda path: (429, {"Retry-After": "300"}, {"status": "429"})):
        url = f"http://127.0.0.1:{server.server_address[1]}/scim/v2"
        directory = _directory(tmp_path, ScimTarget(url=url, token=token))
        try:
            yield server, directory
        finally:
            directory.close()


def test_endless_throttling_stops_at_the_runs_deadline(
    throttling: tuple[_Server, ScimDirectory],
) -> None:
    server, directory = throttling
    deadline.set_deadline(0.3)
    try:
        with pytest.raises(deadline.DeadlineExceeded) as info:
            directory.check()
    finally:
        deadline.set_deadline(None)
    assert str(info.value).startswith(
        f"GET {directory._http.url('/ServiceProviderConfig')}: the run's deadline "
        "(--timeout 0.3s) passed"
    )
    # The Retry-After wait was cut to what was left of the deadline; after it no request is
    # started, because it could not finish in time.
    assert server.requests == 1


def test_endless_throttling_stops_at_the_per_request_budget(
    throttling: tuple[_Server, ScimDirectory], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, directory = throttling
    monkeypatch.setattr(deadline, "MAX_RETRY_WAIT_PER_REQUEST", 0.2)
    with pytest.raises(TransientTargetError) as info:
        directory.check()
    assert str(info.value) == (
        f"GET {directory._http.url('/ServiceProviderConfig')}: status 429, "
        "gave up after 0.2s of waiting (attempt 2 of 5)"
    )
    assert server.requests == 2
