"""Failure knobs: resource-unit throttling with Retry-After, status rules, connection resets,
truncated bodies, delays, injected latency, rewritten (partial) and non-JSON answers; and the
request log used for counting."""

from __future__ import annotations

import time

import httpx
import pytest

from syncctl.emulator import Emulator
from syncctl.emulator.faults import drop_items, empty_value

from .conftest import Graph, assert_graph_error


def test_resource_unit_costs_follow_microsofts_table(graph: Graph, emu: Emulator) -> None:
    tenant = emu.tenant
    group = sorted(tenant.groups)[0]
    user = sorted(tenant.users)[0]
    expected = {
        "/users": 2,
        "/users?$select=id": 1,
        f"/users/{user}": 2,
        "/groups": 1,
        f"/groups/{group}/members": 3,
        f"/groups/{group}/members?$select=id": 2,
        f"/groups/{group}/transitiveMembers": 5,
        f"/groups/{group}/transitiveMembers?$select=id&$top=10": 3,
        "/users/delta": 1,
    }
    for path, units in expected.items():
        response = graph.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-ms-resource-unit"] == str(units), path
    by_ids = graph.request("POST", "/directoryObjects/getByIds", json={"ids": [user]})
    assert by_ids.headers["x-ms-resource-unit"] == "5"


def test_throttling_answers_429_with_retry_after_then_recovers(graph: Graph, emu: Emulator) -> None:
    graph.token()  # sign in first: the token endpoint is not throttled
    emu.throttle(resource_units_per_10s=6, window_seconds=1.0)
    started = time.monotonic()
    statuses = [graph.get("/users").status_code for _ in range(3)]  # 2 RU each
    assert statuses == [200, 200, 200]
    throttled = graph.get("/users")
    assert throttled.status_code == 429, throttled.text
    # throttling.md's sample: the throttling layer's innerError, not the directory's (no
    # client-request-id; code and status as strings), its request-id the header's
    error = throttled.json()["error"]
    assert (error["code"], error["message"]) == ("TooManyRequests", "Please retry again later.")
    inner = error["innerError"]
    assert set(inner) == {"code", "date", "message", "request-id", "status"}
    assert (inner["code"], inner["status"]) == ("429", "429")
    assert inner["request-id"] == throttled.headers["request-id"]
    # Graph's Retry-After may be fractional ("2.128"): the exact time until the first
    # request's RU leave the 1-second window, so less than the window and more than 0
    retry_after = float(throttled.headers["Retry-After"])
    assert 0 < retry_after <= 1.0
    assert throttled.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert throttled.headers["x-ms-throttle-scope"].startswith("Tenant_Application/")
    # Poll (a throttled request spends no RU) until the budget has room again: that must
    # not happen before Retry-After had passed, and must happen soon after.
    asked_at = time.monotonic()
    while (status := graph.get("/users").status_code) == 429:
        assert time.monotonic() - asked_at < retry_after + 2.0, "never recovered"
        time.sleep(0.02)
    assert status == 200
    assert time.monotonic() - started >= retry_after


def test_throttle_limit_percentage_header_near_the_limit(graph: Graph, emu: Emulator) -> None:
    graph.token()
    emu.throttle(resource_units_per_10s=10)
    headers = [graph.get("/users").headers.get("x-ms-throttle-limit-percentage") for _ in range(5)]
    assert headers[:3] == [None, None, None]
    assert headers[3:] == ["0.8", "1.0"]
    retry_after = float(graph.get("/users").headers["Retry-After"])
    assert 0 < retry_after <= 10
    emu.throttle(None)
    assert graph.get("/users").status_code == 200


def test_batch_items_are_throttled_one_by_one(graph: Graph, emu: Emulator) -> None:
    graph.token()
    emu.throttle(resource_units_per_10s=3, window_seconds=5.0)
    requests = [
        {"id": str(i), "method": "GET", "url": "/users?$select=id&$top=1"} for i in range(5)
    ]
    response = graph.request("POST", "/$batch", json={"requests": requests})
    assert response.status_code == 200
    statuses = sorted(r["status"] for r in response.json()["responses"])
    assert statuses == [200, 200, 200, 429, 429]
    throttled = [r for r in response.json()["responses"] if r["status"] == 429]
    assert all(0 < float(r["headers"]["Retry-After"]) <= 5.0 for r in throttled)


def test_status_fault_fires_the_given_number_of_times(graph: Graph, emu: Emulator) -> None:
    graph.token()
    rule = emu.faults.add(path=r"^/v1\.0/users", status=503, times=2, retry_after=3)
    first = graph.get("/users")
    assert_graph_error(first, 503, "serviceNotAvailable")
    assert first.headers["Retry-After"] == "3"
    assert graph.get("/users").status_code == 503
    assert graph.get("/users").status_code == 200
    assert graph.get("/groups").status_code == 200
    assert rule.fired == 2


def test_fault_on_a_later_page_only(graph: Graph, emu: Emulator) -> None:
    graph.token()
    emu.faults.add(path=r"users\?.*skiptoken", status=500, times=1)
    first = graph.ok("/users?$top=50")
    failed = graph.get(first["@odata.nextLink"])
    assert_graph_error(failed, 500)
    assert graph.get(first["@odata.nextLink"]).status_code == 200  # the retry succeeds


def test_fault_with_other_methods_and_any_method(graph: Graph, emu: Emulator) -> None:
    graph.token()
    user_id = sorted(emu.tenant.users)[0]
    emu.faults.add(path="/users/", method="PATCH", status=403, times=1)
    assert graph.get(f"/users/{user_id}").status_code == 200
    denied = graph.request("PATCH", f"/users/{user_id}", json={"jobTitle": "x"})
    assert_graph_error(denied, 403, "Authorization_RequestDenied")
    emu.faults.add(path="/groups", method=None, status=429, times=1, retry_after=2)
    assert graph.get("/groups").headers["Retry-After"] == "2"


def test_connection_reset(graph: Graph, emu: Emulator, http: httpx.Client) -> None:
    graph.token()
    emu.faults.add(path="/v1.0/users", reset=True, times=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        graph.get("/users")
    assert graph.get("/users").status_code == 200


def test_truncated_body(graph: Graph, emu: Emulator) -> None:
    graph.token()
    emu.faults.add(path="/v1.0/users", truncate=True, status=None, times=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        graph.get("/users")
    assert graph.get("/users").status_code == 200


def test_delay_and_latency(graph: Graph, emu: Emulator) -> None:
    graph.token()
    emu.faults.add(path="/v1.0/groups", status=None, delay=0.4, times=1)
    started = time.monotonic()
    assert graph.get("/groups").status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    graph.get("/groups")
    assert time.monotonic() - started < 0.4
    emu.latency = 0.2
    started = time.monotonic()
    graph.get("/groups")
    assert time.monotonic() - started >= 0.2


def test_token_endpoint_can_fail_too(emu: Emulator, http: httpx.Client) -> None:
    emu.faults.add(path="/oauth2/v2.0/token", method="POST", status=503, times=1)
    form = {
        "grant_type": "client_credentials",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "scope": "https://graph.microsoft.com/.default",
    }
    token_url = f"{emu.authority}/{emu.tenant_id}/oauth2/v2.0/token"
    failed = http.post(token_url, data=form)
    assert failed.status_code == 503 and failed.json()["error"] == "temporarily_unavailable"
    ok = http.post(token_url, data=form)
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"


def test_request_log_counts_what_was_served(graph: Graph, emu: Emulator) -> None:
    graph.token()
    emu.reset_requests()
    graph.all_pages("/users?$top=100&$select=id")
    assert [(m, p) for m, p, _ in emu.requests] == [("GET", "/v1.0/users")] * 3
    assert emu.requests[0][2] == "$top=100&$select=id"
    assert "$skiptoken=" in emu.requests[1][2]


def test_rewrite_makes_a_successful_answer_partial(graph: Graph, emu: Emulator) -> None:
    """Short answers that are not errors, for clients that must not trust them: a page that
    lost items but still counts them all, and an empty getByIds, directly and in $batch."""
    scope = emu.tenant.group_by_name("Password Manager Users")
    assert scope is not None
    url = f"/groups/{scope['id']}/transitiveMembers/microsoft.graph.user?$count=true&$select=id"
    whole = graph.ok(url, eventual=True)
    emu.faults.add(path="transitiveMembers", status=None, rewrite=drop_items(10), times=1)
    short = graph.ok(url, eventual=True)
    assert len(short["value"]) == len(whole["value"]) - 10
    assert short["@odata.count"] == whole["@odata.count"]

    emu.faults.add(path="getByIds", method="POST", status=None, rewrite=empty_value, times=None)
    user_id = sorted(emu.tenant.users)[0]
    answer = graph.request(
        "POST", "/directoryObjects/getByIds", json={"ids": [user_id], "types": ["user"]}
    )
    assert answer.status_code == 200 and answer.json()["value"] == []

    emu.faults.add(path="transitiveMembers", status=None, rewrite=drop_items(1), times=1)
    item = {"id": "1", "method": "GET", "url": url, "headers": {"ConsistencyLevel": "eventual"}}
    (batched,) = graph.request("POST", "/$batch", json={"requests": [item]}).json()["responses"]
    assert len(batched["body"]["value"]) == len(whole["value"]) - 1
    assert len(graph.ok(url, eventual=True)["value"]) == len(whole["value"])  # used up


def test_body_answers_with_bytes_that_are_not_json(emu: Emulator, http: httpx.Client) -> None:
    emu.faults.add(path="/oauth2/v2.0/token", method="POST", status=None, body=b"<html>hi</html>")
    answer = http.post(f"{emu.authority}/{emu.tenant_id}/oauth2/v2.0/token", data={})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/html" and answer.content == b"<html>hi</html>"
