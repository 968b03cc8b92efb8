"""Faults injected between syncctl and a real scim2-server by a loopback proxy."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from syncctl.errors import TargetError, TransientTargetError
from syncctl.plan.model import Action, AttributeChange
from syncctl.targets import scim_bulk, scim_read
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
    """Single requests (no /Bulk), so each fault hits one object's request."""
    url = tenant_url.replace(proxy.upstream, proxy.root)
    directory = make_directory(url=url, bulk=False)
    directory._http.retry = FAST_RETRY
    return directory


@pytest.fixture
def bulk_via_proxy(
    proxy: FaultProxy, tenant_url: str, make_directory: DirectoryFactory
) -> ScimDirectory:
    url = tenant_url.replace(proxy.upstream, proxy.root)
    directory = make_directory(url=url)
    directory._http.retry = FAST_RETRY
    directory.read(OWNER, [])
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
    monkeypatch.setattr(scim_read, "PAGE_SIZE", 3)
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
    monkeypatch.setattr(scim_read, "PAGE_SIZE", 2)
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


def test_creates_use_bulk_when_offered(
    bulk_via_proxy: ScimDirectory,
    proxy: FaultProxy,
    raw: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scim_bulk, "BULK_CHUNK", 2)
    changes = [create_user(n) for n in range(1, 5)] + [create_group(1)]
    outcomes = bulk_via_proxy.apply(changes, OWNER)
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * 5
    assert proxy.count("POST", "/Bulk", 200) == 3  # 5 operations, 2 per request
    assert proxy.count("POST", "/Users") == proxy.count("POST", "/Groups") == 0
    stored = {u["externalId"]: u["id"] for u in _users(raw)}
    assert stored == {
        eid("user", n): o.target_id for n, o in zip(range(1, 5), outcomes[:4], strict=True)
    }
    # Memberships resolve to the ids Bulk returned.
    (added,) = bulk_via_proxy.apply([member(Action.ADD, 1, 2)], OWNER)
    assert added.status is OutcomeStatus.APPLIED
    assert _groups(raw)[0]["members"] == [{"value": stored[eid("user", 2)]}]


def test_bulk_conflict_goes_through_the_single_create_path(
    bulk_via_proxy: ScimDirectory, proxy: FaultProxy, raw: httpx.Client
) -> None:
    raw.post("/Users", json={"userName": "user2@contoso.test", "externalId": "hr-2"})
    bulk_via_proxy.read(OWNER, [])
    ok, conflict = bulk_via_proxy.apply([create_user(1), create_user(2)], OWNER)
    assert ok.status is OutcomeStatus.APPLIED
    assert conflict.status is OutcomeStatus.FAILED
    assert "409" in (conflict.message or "") and "mappings.user.match" in (conflict.message or "")
    assert len(_users(raw)) == 2


def test_bulk_answer_lost_does_not_duplicate(
    bulk_via_proxy: ScimDirectory, proxy: FaultProxy, raw: httpx.Client
) -> None:
    proxy.add(Rule("drop_after", "POST", "/Bulk", times=1))
    outcomes = bulk_via_proxy.apply([create_group(1), create_group(2)], OWNER)
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * 2
    assert sorted(g["displayName"] for g in _groups(raw)) == ["Group 1", "Group 2"]
    assert proxy.count("POST", "/Groups") == 0  # both were found by externalId


def test_bulk_claimed_but_missing_falls_back(
    bulk_via_proxy: ScimDirectory, proxy: FaultProxy, raw: httpx.Client
) -> None:
    proxy.add(Rule("status", "POST", "/Bulk", status=501))
    first = bulk_via_proxy.apply([create_user(1), create_user(2)], OWNER)
    second = bulk_via_proxy.apply([create_user(3), create_user(4)], OWNER)
    assert [o.status for o in first + second] == [OutcomeStatus.APPLIED] * 4
    assert proxy.count("POST", "/Bulk") == 1  # not tried again after the 501
    assert len(_users(raw)) == 4


def test_bulk_respects_max_payload_and_retries_throttled_operations(
    bulk_via_proxy: ScimDirectory, proxy: FaultProxy, raw: httpx.Client
) -> None:
    sp = bulk_via_proxy.service_provider
    bulk_via_proxy._ctx.discovered = dataclasses.replace(sp, bulk_max_payload=1024 + 1200)
    outcomes = bulk_via_proxy.apply([create_user(n) for n in range(1, 7)], OWNER)
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * 6
    bulk_requests = [body for m, p, body in proxy.bodies if m == "POST" and p.endswith("/Bulk")]
    assert len(bulk_requests) >= 3
    assert all(len(body) <= 1024 + 1200 for body in bulk_requests)
    assert len(_users(raw)) == 6


def test_patch_not_claimed_uses_put_of_the_whole_resource(
    proxy: FaultProxy, tenant_url: str, make_directory: DirectoryFactory, raw: httpx.Client
) -> None:
    """A server whose ServiceProviderConfig says patch: false gets PUT, and PUT keeps what
    syncctl does not map (the enterprise block, the home email)."""
    spc = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": False},
        "bulk": {"supported": False},
        "filter": {"supported": True, "maxResults": 100},
        "etag": {"supported": True},
    }
    proxy.add(
        Rule(
            "status",
            "GET",
            "/ServiceProviderConfig",
            status=200,
            headers={"Content-Type": "application/scim+json"},
            body=json.dumps(spc).encode(),
        )
    )
    directory = make_directory(url=tenant_url.replace(proxy.upstream, proxy.root))
    directory.read(OWNER, [])
    (created,) = directory.apply([create_user(1)], OWNER)
    assert created.target_id
    raw.patch(
        f"/Users/{created.target_id}",
        json={
            "Operations": [
                {
                    "op": "add",
                    "path": "emails",
                    "value": [{"type": "home", "value": "home@example.com"}],
                }
            ]
        },
    )
    user = directory.read(OWNER, [eid("user", 1)]).users[0]
    change = object_change(
        Action.DISABLE,
        user.target_id,
        "user/user1@contoso.test",
        version=user.version,
        attributes=(
            AttributeChange("title", "Engineer", None),
            AttributeChange('emails[type eq "work"].value', "user1@contoso.test", "new@x.test"),
        ),
    )
    (outcome,) = directory.apply([change], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED, outcome.message
    assert proxy.count("PATCH", "/Users/") == 0 and proxy.count("PUT", "/Users/") == 1
    stored = raw.get(f"/Users/{user.target_id}").json()
    assert stored["active"] is False and "title" not in stored
    assert stored["externalId"] == eid("user", 1)
    assert sorted((e["type"], e["value"]) for e in stored["emails"]) == [
        ("home", "home@example.com"),
        ("work", "new@x.test"),
    ]
    assert stored["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] == {
        "department": "R&D",
        "employeeNumber": "1001",
    }
    # A stale version is caught before the PUT.
    (stale,) = directory.apply([change], OWNER)
    assert stale.status is OutcomeStatus.STALE
