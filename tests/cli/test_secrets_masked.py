"""The last line of defence for secrets: a server that echoes the bearer token back in an
error gets it printed as (redacted), in the output and in the state (``syncctl status``)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli.binary import run_syncctl

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cr3t-scim-token-4f9a2c"


SERVICE_PROVIDER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
    "patch": {"supported": True},
    "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
    "filter": {"supported": True, "maxResults": 100},
    "changePassword": {"supported": False},
    "sort": {"supported": False},
    "etag": {"supported": False},
    "authenticationSchemes": [],
}


class EchoingHandler(BaseHTTPRequestHandler):
    """A careless SCIM server: every error quotes the request's Authorization header."""

    def do_GET(self) -> None:
        if self.path.endswith("/ServiceProviderConfig"):
            status, document = 200, SERVICE_PROVIDER
        else:
            status, document = (
                400,
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "400",
                    "detail": f"cannot parse header Authorization: {self.headers['Authorization']}",
                },
            )
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echoing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/scim/v2"
    finally:
        server.shutdown()
        server.server_close()


def test_an_echoed_token_is_masked_everywhere(tmp_path: Path, echoing_server: str) -> None:
    shutil.copytree(REPO / "policies" / "snapshots", tmp_path / "snapshots")
    demo = (REPO / "policies" / "demo.yaml").read_text()
    start = demo.index("target:")
    end = demo.index("\n\n", start)
    policy = tmp_path / "demo.yaml"
    policy.write_text(
        demo[:start]
        + f"target:\n  type: scim\n  url: {echoing_server}\n  token: {{env: VAULT_TOKEN}}"
        + demo[end:]
    )
    result = run_syncctl("plan", "demo.yaml", cwd=tmp_path, VAULT_TOKEN=TOKEN)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot parse header Authorization" in result.stderr  # the server's words, kept
    assert TOKEN not in result.stdout + result.stderr
    assert "(redacted)" in result.stderr
    state = (tmp_path / ".syncctl" / "demo.state.json").read_text()
    assert TOKEN not in state
    assert "(redacted)" in state
