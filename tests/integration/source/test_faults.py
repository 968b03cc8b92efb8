"""Faults against the TLS emulator: every read either recovers with exactly the snapshot of a
clean run or fails with a clear error. Never a smaller snapshot."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.errors import GraphError
from syncctl.model import SourceSnapshot
from syncctl.policy.model import GroupSelector, ManagedIdentityCredential, Policy
from syncctl.source import read_source
from tests.integration.source.conftest import SECRET_ENV, emulator_policy, graph_requests


@pytest.fixture(scope="module")
def paged_emulator() -> Iterator[Emulator]:
    # "All Company" holds ~2,400 users: three pages of 999, so faults can land mid-paging.
    with running_emulator(generate_tenant(users=2500, groups=15, seed=3)) as emu:
        yield emu


@pytest.fixture
def emu(paged_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv(SECRET_ENV, paged_emulator.client_secret)
    paged_emulator.faults.clear()
    paged_emulator.throttle(None)
    yield paged_emulator
    paged_emulator.faults.clear()
    paged_emulator.throttle(None)


def _policy(emu: Emulator) -> Policy:
    return emulator_policy(
        emu,
        scope_groups=("All Company", "Password Manager Users"),
        groups=(GroupSelector(name="Vault Admins"), GroupSelector(pattern="^PM-")),
    )


@pytest.fixture
def clean(emu: Emulator) -> SourceSnapshot:
    snapshot = read_source(_policy(emu), ())
    assert len(snapshot.users) > 2000
    return snapshot


def _read(emu: Emulator) -> SourceSnapshot:
    emu.reset_requests()
    return read_source(_policy(emu), ())


Setup = Callable[[Emulator], None]
RECOVERABLE: dict[str, Setup] = {
    "503s on member pages": lambda e: e.faults.add(path="skiptoken", status=503, times=2),
    "503 on the batch": lambda e: e.faults.add(path=r"\$batch", method="POST", times=2),
    "504 with Retry-After": lambda e: e.faults.add(
        path="transitiveMembers", status=504, retry_after=0, times=2
    ),
    "connection reset mid-paging": lambda e: e.faults.add(path="skiptoken", reset=True, times=2),
    "truncated body mid-paging": lambda e: e.faults.add(path="skiptoken", truncate=True, times=2),
    "truncated batch body": lambda e: e.faults.add(
        path=r"\$batch", method="POST", truncate=True, times=1
    ),
    "sign-in busy": lambda e: e.faults.add(path="oauth2/v2.0/token", method="POST", times=1),
    "unexpected 401": lambda e: e.faults.add(path="skiptoken", status=401, times=1),
    "throttling storm": lambda e: e.throttle(resource_units_per_10s=6, window_seconds=0.5),
}
SLOW = {"throttling storm"}  # every throttled request waits Retry-After (>= 1 s)


@pytest.mark.parametrize(
    "fault",
    [pytest.param(f, marks=[pytest.mark.slow] if f in SLOW else []) for f in sorted(RECOVERABLE)],
)
def test_recovers_with_the_same_snapshot(emu: Emulator, clean: SourceSnapshot, fault: str) -> None:
    RECOVERABLE[fault](emu)
    faulted = _read(emu)
    assert faulted.fingerprint() == clean.fingerprint()
    if fault == "throttling storm":
        assert len(graph_requests(emu)) > 6  # throttled requests were really sent again


def test_persistent_failure_is_a_clear_error_never_a_smaller_snapshot(emu: Emulator) -> None:
    emu.faults.add(path="skiptoken", status=503, retry_after=0, times=None)
    with pytest.raises(GraphError) as caught:
        _read(emu)
    message = str(caught.value)
    assert message.startswith(
        "GET /groups/" + (emu.tenant.group_by_name("All Company") or {})["id"]
    )
    assert "transitiveMembers/microsoft.graph.user: gave up after 8 attempts" in message
    assert "status 503" in message and "\n" not in message


def test_a_throttled_out_read_fails_clearly(emu: Emulator) -> None:
    emu.faults.add(path="skiptoken", status=429, retry_after=3600, times=None)
    with pytest.raises(GraphError, match=r"Retry-After 3600s, longer than the 300s"):
        _read(emu)


def test_permission_error_is_not_retried(emu: Emulator) -> None:
    emu.faults.add(path="skiptoken", status=403, times=None)
    with pytest.raises(GraphError, match="status 403"):
        _read(emu)
    assert len([r for r in graph_requests(emu) if "skiptoken" in r[2]]) == 1


class _ShortLivedTokens(BaseHTTPRequestHandler):
    """A managed identity endpoint that advertises an hour but hands out 2-second tokens,
    so Graph (not MSAL) is the first to notice they expired: the mid-run 401 path."""

    server: Any

    def do_GET(self) -> None:
        self.server.issued += 1
        body = json.dumps(
            {
                "access_token": self.server.mint(2),
                "expires_on": str(int(time.time()) + 3600),
                "resource": "graph",
                "token_type": "Bearer",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_token_expiring_mid_run_is_refreshed(
    emu: Emulator, clean: SourceSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _ShortLivedTokens)
    server.mint = emu.mint_token
    server.issued = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server.server_port}/token")
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    # Tokens live 1-2 s (exp is whole seconds); four sequential requests at 0.6 s each
    # (lookup, batch, two further pages) outlive the first token whatever the timing.
    emu.faults.latency = 0.6
    try:
        emu.reset_requests()
        policy = emulator_policy(
            emu,
            ManagedIdentityCredential(),
            scope_groups=("All Company", "Password Manager Users"),
            groups=(GroupSelector(name="Vault Admins"), GroupSelector(pattern="^PM-")),
        )
        snapshot = read_source(policy, ())
    finally:
        emu.faults.latency = 0.0
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert server.issued >= 2  # a new token was fetched after Graph rejected the old one
    assert snapshot.fingerprint() == clean.fingerprint()
