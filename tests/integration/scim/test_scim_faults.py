"""Faults injected between syncctl and a real scim2-server by a loopback proxy."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from syncctl.errors import TargetError, TransientTargetError
from syncctl.plan.model import Action, AttributeChange
from syncctl.targets import scim as scim_module
from syncctl.targets.base import OutcomeStatus
from syncctl.targets.scim import ScimDirectory
from syncctl.targets.scim_http import RetryPolicy
from tests.contract.scim_harness import ScimServer
from tests.integration.scim.conftest import DirectoryFactory
from tests.integration.scim.fault_proxy import FaultProxy, Rule
from tests.integration.scim.helpers import create_group, create_user, eid, member, object_change

OWNER = "scim-test"
FAST_RETRY = RetryPolicy(attempts=4, backoff=0.01)


@pytest.fixture
def proxy(scim_server: ScimServer) -> Iterator[FaultProxy]:
    with FaultProxy(scim_server.root) as running:
        yield running


@pytest.fixture
def via_proxy(
    proxy: FaultProxy, tenant_url: str, make_directory: DirectoryFactory
) -> ScimDirectory:
    url = tenant_url.replace(proxy.upstream, proxy.root)
    directory = make_directory(url=url)
    directory._http.retry = FAST_RETRY
    return directory


def _users(raw: httpx.Client) -> list[dict]:
    return list(raw.get("/Users", params={"count": "1000"}).json().get("Resources", []))


def _groups(raw: httpx.Client) -> list[dict]:
    return list(raw.get("/Groups", params={"count": "1000"}).json().get("Resources", []))


def test_429_storm_honours_retry_after(via_proxy: ScimDirectory, proxy: FaultProxy) -> None:
    proxy.add(Rule("status", "POST", "/Users", times=1, status=429, headers={"Retry-After": "1"}))
    proxy.add(Rule("status", "POST", "/Users", times=2, status=429, headers={"Retry-After": "0"}))
    started = time.monotonic()
    (outcome,) = via_proxy.apply([create_user(1)], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED
    assert time.monotonic() - started >= 1.0
    assert proxy.count("POST", "/Users", 429) == 3
    assert proxy.count("POST", "/Users", 201) == 1


def test_endless_429_stops_the_run(via_proxy: ScimDirectory, proxy: FaultProxy) -> None:
    proxy.add(Rule("status", None, "/Users", status=429, headers={"Retry-After": "0"}))
    with pytest.raises(TransientTargetError, match="status 429"):
        via_proxy.read(OWNER, [])
    with pytest.raises(TargetError, match="status 429"):
        via_proxy.apply([create_user(1)], OWNER)


def test_5xx_and_dropped_connections_on_reads_are_retried(
    via_proxy: ScimDirectory, proxy: FaultProxy, raw: httpx.Client
) -> None:
    via_proxy.apply([create_user(n) for n in range(1, 4)], OWNER)
    proxy.add(Rule("status", "GET", "/Users?", times=1, status=503))
    proxy.add(Rule("status", "GET", "/Users?", times=1, status=502))
    proxy.add(Rule("drop", "GET", "/Groups?", times=2))
    snapshot = via_proxy.read(OWNER, [eid("user", n) for n in range(1, 4)])
    assert len(snapshot.users) == 3
    assert proxy.count("GET", "/Groups?", 0) == 2


def test_persistent_500_on_one_object_is_a_per_change_failure(
    via_proxy: ScimDirectory, proxy: FaultProxy
) -> None:
    via_proxy.read(OWNER, [])
    first, second = via_proxy.apply([create_user(1), create_user(2)], OWNER)
    assert first.target_id and second.target_id
    proxy.add(Rule("status", "PATCH", first.target_id, status=500, body=b'{"detail":"boom"}'))
    changes = [
        object_change(
            Action.UPDATE,
            target_id,
            f"user/{target_id}",
            attributes=(AttributeChange("title", "Engineer", "Boss"),),
        )
        for target_id in (first.target_id, second.target_id)
    ]
    broken, fine = via_proxy.apply(changes, OWNER)
    assert broken.status is OutcomeStatus.FAILED and "status 500: boom" in (broken.message or "")
    assert fine.status is OutcomeStatus.APPLIED


@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
def test_answer_lost_after_create_does_not_duplicate(
    via_proxy: ScimDirectory, proxy: FaultProxy, raw: httpx.Client, endpoint: str
) -> None:
    """The server created it but the answer never arrived: found by externalId, not re-POSTed
    (scim2-server does not keep group names unique, so a blind retry would duplicate)."""
    via_proxy.read(OWNER, [])
    proxy.add(Rule("drop_after", "POST", endpoint, times=1))
    change = create_user(1) if endpoint == "/Users" else create_group(1)
    (outcome,) = via_proxy.apply([change], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED and outcome.target_id
    stored = _users(raw) if endpoint == "/Users" else _groups(raw)
    assert [r["id"] for r in stored] == [outcome.target_id]
    assert proxy.count("POST", endpoint) == 1


def test_connection_refused_before_create_is_sent_again(
    via_proxy: ScimDirectory, proxy: FaultProxy, raw: httpx.Client
) -> None:
    via_proxy.read(OWNER, [])
    proxy.add(Rule("drop", "POST", "/Groups", times=1))
    (outcome,) = via_proxy.apply([create_group(1)], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED
    assert len(_groups(raw)) == 1
    assert proxy.count("POST", "/Groups") == 2


def test_injected_412_is_stale(via_proxy: ScimDirectory, proxy: FaultProxy) -> None:
    via_proxy.read(OWNER, [])
    (created,) = via_proxy.apply([create_user(1)], OWNER)
    assert created.target_id
    proxy.add(Rule("status", "DELETE", created.target_id, times=1, status=412))
    delete = object_change(Action.DELETE, created.target_id, "user/user1", version='W/"1"')
    (outcome,) = via_proxy.apply([delete], OWNER)
    assert outcome.status is OutcomeStatus.STALE


def test_injected_409_without_match_fails_that_object_only(
    via_proxy: ScimDirectory, proxy: FaultProxy
) -> None:
    via_proxy.read(OWNER, [])
    body = b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409"}'
    proxy.add(Rule("status", "POST", "/Groups", times=1, status=409, body=body))
    failed, created = via_proxy.apply([create_group(1), create_group(2)], OWNER)
    assert failed.status is OutcomeStatus.FAILED and "409" in (failed.message or "")
    assert created.status is OutcomeStatus.APPLIED


def test_server_that_ignores_count(
    via_proxy: ScimDirectory,
    proxy: FaultProxy,
    raw: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    via_proxy.apply([create_user(n) for n in range(1, 8)], OWNER)
    monkeypatch.setattr(scim_module, "PAGE_SIZE", 3)
    proxy.add(Rule("ignore_count", "GET", "/Users?"))
    snapshot = via_proxy.read(OWNER, [eid("user", n) for n in range(1, 8)])
    assert len(snapshot.users) == 7
    listings = [p for m, p, _ in proxy.log if p.startswith(("/t",)) and "/Users?" in p]
    assert len([p for p in listings if "startIndex=" in p]) == 1  # one big page, then done


def test_server_that_ignores_start_index_is_an_error(
    via_proxy: ScimDirectory,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paging that repeats itself must not be read as a complete (or endless) directory."""
    via_proxy.apply([create_user(n) for n in range(1, 5)], OWNER)
    monkeypatch.setattr(scim_module, "PAGE_SIZE", 2)
    original = via_proxy._http.request

    def first_page_only(method: str, path: str, **kw: object) -> httpx.Response:
        params = dict(kw.get("params") or {})  # type: ignore[call-overload]
        params["startIndex"] = "1"
        return original(method, path, **{**kw, "params": params})  # type: ignore[arg-type]

    monkeypatch.setattr(via_proxy._http, "request", first_page_only)
    with pytest.raises(TargetError, match="listed twice"):
        via_proxy.read(OWNER, [])


def test_membership_patch_survives_a_dropped_connection(
    via_proxy: ScimDirectory, proxy: FaultProxy, raw: httpx.Client
) -> None:
    via_proxy.read(OWNER, [])
    via_proxy.apply([create_user(1), create_group(1)], OWNER)
    proxy.add(Rule("drop_after", "PATCH", "/Groups/", times=1))
    (outcome,) = via_proxy.apply([member(Action.ADD, 1, 1)], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED
    (group,) = _groups(raw)
    assert len(group["members"]) == 1  # the retried add did not duplicate the member
