"""Faults against the TLS emulator: every read either recovers with exactly the snapshot of a
clean run or fails with a clear error. Never a smaller snapshot: not from an error, not from
a page that silently lost items, not after waiting past the run's deadline."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from syncctl import deadline
from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.emulator.faults import drop_items, empty_value
from syncctl.errors import AuthError, GraphError
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
        path="members/microsoft.graph.user", status=504, retry_after=0, times=2
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
    assert "members/microsoft.graph.user: gave up after 8 attempts" in message
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
    """A managed identity endpoint that advertises an hour but hands out 1-second tokens,
    so Graph (not MSAL) is the first to notice they expired: the mid-run 401 path."""

    server: Any

    def do_GET(self) -> None:
        self.server.issued += 1
        body = json.dumps(
            {
                "access_token": self.server.mint(1),
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
    # Tokens live 1-2 s (at least the lifetime: exp is rounded up to whole seconds); four
    # sequential requests at 0.6 s each (lookup, batch, two further pages) take at least
    # 2.4 s, so they outlive the first token whatever the timing.
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


# -- partial answers: a read that lost objects fails, it never shrinks the snapshot ----------

PARTIAL: dict[str, tuple[Setup, str]] = {
    "member page lost 10 items": (
        lambda e: e.faults.add(
            path=r"members/microsoft.graph.user.*skiptoken",
            status=None,
            rewrite=drop_items(10),
            times=1,
        ),
        r"members/microsoft.graph.user: incomplete answer: \d+ distinct objects read, "
        r"but the first page counted \d+ \(@odata.count\)",
    ),
    "first member page (in the batch) lost an item": (
        lambda e: e.faults.add(
            path=r"members/microsoft.graph.user(?!.*skiptoken)",
            status=None,
            rewrite=drop_items(1),
            times=1,
        ),
        r"incomplete answer",
    ),
    "group listing came back empty": (
        lambda e: e.faults.add(path=r"^/v1\.0/groups\?", status=None, rewrite=empty_value),
        r"^GET /groups: incomplete answer: 0 distinct objects read",
    ),
    "page body is null": (
        lambda e: e.faults.add(path="skiptoken", status=None, rewrite=lambda b: None, times=1),
        r"members/microsoft.graph.user: page is null, not a JSON object$",
    ),
    "member without an id": (
        lambda e: e.faults.add(
            path="skiptoken",
            status=None,
            rewrite=lambda b: {**b, "value": [{"displayName": "x"}, *b["value"]]},
            times=1,
        ),
        r"item 0 of a page has no `id`$",
    ),
}


@pytest.mark.parametrize("case", sorted(PARTIAL))
def test_partial_or_malformed_answers_fail_the_read(emu: Emulator, case: str) -> None:
    setup, message = PARTIAL[case]
    setup(emu)
    with pytest.raises(GraphError) as caught:
        _read(emu)
    assert re.search(message, str(caught.value)), str(caught.value)
    assert "\n" not in str(caught.value)


# -- bounded waiting: steered by a small deadline or budget, not by racing sleeps -----------


@pytest.fixture
def run_deadline() -> Iterator[Callable[[float | None], None]]:
    yield deadline.set_deadline
    deadline.set_deadline(None)


def test_a_server_that_keeps_throttling_fails_at_the_deadline(
    emu: Emulator, run_deadline: Callable[[float | None], None]
) -> None:
    emu.faults.add(path="skiptoken", status=429, retry_after=1, times=None)
    run_deadline(2.5)
    started = time.monotonic()
    with pytest.raises(deadline.DeadlineExceeded) as caught:
        _read(emu)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    # (which request meets the deadline depends on the machine's speed; usually a later page)
    assert "deadline" in message and "\n" not in message


def test_a_server_that_keeps_throttling_exhausts_the_request_retry_budget(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadline, "MAX_RETRY_WAIT_PER_REQUEST", 1.5)
    emu.faults.add(path="skiptoken", status=429, retry_after=1, times=None)
    started = time.monotonic()
    with pytest.raises(deadline.RetryBudgetExceeded, match="retry budget"):
        _read(emu)
    assert time.monotonic() - started < 10
    skiptoken_requests = [r for r in graph_requests(emu) if "skiptoken" in r[2]]
    assert 1 < len(skiptoken_requests) <= 3 * 2  # waited once per page read, then gave up


def test_a_server_that_never_answers_fails_at_the_deadline(
    emu: Emulator, run_deadline: Callable[[float | None], None]
) -> None:
    policy = _policy(emu)
    emu.faults.add(path="skiptoken", status=None, delay=8.0, times=None)
    run_deadline(2.0)
    started = time.monotonic()
    with pytest.raises(deadline.DeadlineExceeded) as caught:
        read_source(policy, ())
    assert time.monotonic() - started < 6  # the request timeout was cut to the deadline
    assert "deadline" in str(caught.value)


def test_sign_in_that_never_answers_fails_at_the_deadline(
    emu: Emulator, run_deadline: Callable[[float | None], None]
) -> None:
    emu.faults.add(path="oauth2/v2.0/token", method="POST", status=None, delay=8.0, times=None)
    run_deadline(1.5)
    started = time.monotonic()
    with pytest.raises(deadline.DeadlineExceeded, match=r"^sign-in POST 127\.0\.0\.1/"):
        _read(emu)
    assert time.monotonic() - started < 6


def test_a_non_json_token_answer_is_one_auth_error_naming_the_endpoint(emu: Emulator) -> None:
    emu.faults.add(path="oauth2/v2.0/token", method="POST", status=None, body=b"<html>proxy</html>")
    with pytest.raises(AuthError) as caught:
        _read(emu)
    assert str(caught.value) == (
        f"sign-in to tenant {emu.tenant_id} (ClientSecret): POST {emu.authority}/"
        f"{emu.tenant_id}/oauth2/v2.0/token answered HTTP 200 with a body that is not JSON "
        "(text/html); is a proxy or captive portal in the way?"
    )
