"""GraphClient against httpx.MockTransport: paging, retries, errors, batching.

MockTransport stands in for Graph here so each failure can be placed exactly; the same
behaviours are exercised end to end against the TLS emulator in tests/integration/source.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from syncctl.errors import GraphError
from syncctl.source.graph import GraphClient, Request, RetryPolicy
from syncctl.transport import parse_retry_after

BASE = "https://graph.test/v1.0"
Handler = Callable[[httpx.Request], httpx.Response]


class Tokens:
    def __init__(self) -> None:
        self.current = "token-1"
        self.refreshes = 0

    def token(self) -> str:
        return self.current

    def refresh(self) -> str:
        self.refreshes += 1
        self.current = f"token-{self.refreshes + 1}"
        return self.current


class Harness:
    def __init__(self, handler: Handler, **retry: Any) -> None:
        self.seen: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.tokens = Tokens()

        def record(request: httpx.Request) -> httpx.Response:
            self.seen.append(request)
            return handler(request)

        self.http = httpx.Client(transport=httpx.MockTransport(record))
        self.client = GraphClient(
            self.http,
            BASE,
            self.tokens,
            retry=RetryPolicy(**retry),
            sleep=self.sleeps.append,
            jitter=lambda: 1.0,
        )


def page(values: list[dict[str, Any]], next_link: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"value": values}
    if next_link:
        body["@odata.nextLink"] = next_link
    return httpx.Response(200, json=body)


def users(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": f"u{i}"} for i in range(start, start + count)]


def paged_handler(pages: int = 3, per_page: int = 2) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("$skiptoken", "0"))
        following = f"{BASE}/users?$skiptoken={number + 1}" if number + 1 < pages else None
        return page(users(number * per_page, per_page), following)

    return handler


def test_follows_next_links_to_the_end_and_resends_consistency_level() -> None:
    harness = Harness(paged_handler(pages=3))
    items = harness.client.get_all(Request("/users", {"$top": "999"}, advanced=True))
    assert [i["id"] for i in items] == [f"u{i}" for i in range(6)]
    assert len(harness.seen) == 3
    assert all(r.headers["ConsistencyLevel"] == "eventual" for r in harness.seen)
    assert all(r.headers["Authorization"] == "Bearer token-1" for r in harness.seen)
    assert harness.client.pages == 3 and harness.client.objects == 6


def test_query_is_spelled_like_graph_examples() -> None:
    harness = Harness(lambda r: page([]))
    harness.client.get_all(
        Request(
            "/groups", {"$filter": "displayName eq 'Vault Admins'", "$select": "id,displayName"}
        )
    )
    assert harness.seen[0].url.raw_path.decode() == (
        "/v1.0/groups?$filter=displayName%20eq%20'Vault%20Admins'&$select=id,displayName"
    )


@pytest.mark.parametrize(
    ("retry_after", "expected"), [("0.25", 0.25), ("2", 2.0), (None, 0.5), ("soon", 0.5)]
)
def test_throttling_honours_retry_after_including_fractions(
    retry_after: str | None, expected: float
) -> None:
    answers = iter([429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        if status == 429:
            headers = {"Retry-After": retry_after} if retry_after else {}
            return httpx.Response(429, headers=headers, json={"error": {"code": "TooManyRequests"}})
        return page(users(0, 1))

    harness = Harness(handler)
    assert harness.client.get_all(Request("/users")) == [{"id": "u0"}]
    assert harness.sleeps == [expected]


def test_backoff_is_exponential_and_capped_then_gives_up_with_details() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503,
            headers={"request-id": "hdr-id"},
            json={"error": {"code": "serviceUnavailable", "message": "busy\nmore"}},
        )

    harness = Harness(handler, max_attempts=6, base_delay=1.0, max_delay=5.0)
    with pytest.raises(GraphError) as caught:
        harness.client.get_all(Request("/users"))
    assert harness.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(harness.seen) == 6
    message = str(caught.value)
    assert message.startswith("GET /users: gave up after 6 attempts: busy")
    assert "code serviceUnavailable" in message and "request-id hdr-id" in message
    assert (caught.value.status, caught.value.code) == (503, "serviceUnavailable")
    assert "\n" not in message


def test_jitter_stays_within_half_to_full_backoff() -> None:
    answers = iter([503, 503, 200])
    harness = Harness(lambda r: httpx.Response(next(answers), json={"value": []}))
    harness.client._jitter = lambda: 0.0
    harness.client.get_all(Request("/users"))
    assert harness.sleeps == [0.25, 0.5]


def test_too_long_retry_after_fails_instead_of_hanging() -> None:
    harness = Harness(lambda r: httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(GraphError, match="Retry-After 3600s"):
        harness.client.get_all(Request("/users"))
    assert harness.sleeps == []


def test_connection_reset_mid_paging_is_retried_and_nothing_is_lost() -> None:
    inner = paged_handler(pages=3)
    failed: set[str] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("$skiptoken")
        if token == "1" and token not in failed:
            failed.add(token)
            raise httpx.ReadError("connection reset by peer")
        return inner(request)

    harness = Harness(handler)
    items = harness.client.get_all(Request("/users"))
    assert [i["id"] for i in items] == [f"u{i}" for i in range(6)]
    assert len(harness.seen) == 4


def test_truncated_body_is_retried_not_taken_as_a_short_page() -> None:
    answers = iter(
        [httpx.Response(200, content=b'{"value": [{"id": "u0"}, {"id": "u'), page(users(0, 2))]
    )
    harness = Harness(lambda r: next(answers))
    assert [i["id"] for i in harness.client.get_all(Request("/users"))] == ["u0", "u1"]


def test_missing_value_array_is_an_error() -> None:
    harness = Harness(lambda r: httpx.Response(200, json={"something": []}))
    with pytest.raises(GraphError, match="no `value` array"):
        harness.client.get_all(Request("/users"))


def test_401_refreshes_the_token_once_then_fails_clearly() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer token-1":
            return httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}})
        return page(users(0, 1))

    harness = Harness(handler)
    assert harness.client.get_all(Request("/users")) == [{"id": "u0"}]
    assert harness.tokens.refreshes == 1

    always = Harness(
        lambda r: httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}})
    )
    with pytest.raises(GraphError, match="rejected again after a refresh") as caught:
        always.client.get_all(Request("/users"))
    assert always.tokens.refreshes == 1
    assert caught.value.code == "InvalidAuthenticationToken"


@pytest.mark.parametrize("spelling", ["innerError", "innererror"])
def test_error_body_becomes_typed_error_with_request_id(spelling: str) -> None:
    body = {
        "error": {
            "code": "Request_ResourceNotFound",
            "message": "Resource 'x' does not exist.",
            spelling: {"request-id": "abc-123", "date": "2026-01-01T00:00:00"},
        }
    }
    harness = Harness(lambda r: httpx.Response(404, json=body))
    with pytest.raises(GraphError) as caught:
        harness.client.get_all(Request("/groups/x/members"))
    error = caught.value
    assert (error.status, error.code, error.request_id) == (
        404,
        "Request_ResourceNotFound",
        "abc-123",
    )
    assert str(error) == (
        "GET /groups/x/members: Resource 'x' does not exist. "
        "(status 404, code Request_ResourceNotFound, request-id abc-123)"
    )
    assert len(harness.seen) == 1  # a 404 is not retried


def test_next_link_to_another_host_is_refused() -> None:
    harness = Harness(lambda r: page([], "https://evil.test/v1.0/users?$skiptoken=1"))
    with pytest.raises(GraphError, match="outside Graph"):
        harness.client.get_all(Request("/users"))
    assert len(harness.seen) == 1


def _batch_handler(item_status: Callable[[str, int], int]) -> tuple[Handler, list[dict[str, Any]]]:
    batches: list[dict[str, Any]] = []
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/$batch"):
            payload = json.loads(request.content)
            batches.append(payload)
            responses = []
            for item in payload["requests"]:
                calls[item["url"]] = calls.get(item["url"], 0) + 1
                status = item_status(item["url"], calls[item["url"]])
                group = item["url"].split("/")[2].split("?")[0]
                body: dict[str, Any] = {"value": [{"id": f"{group}-m0"}]}
                if status == 200 and group == "g0":
                    body["@odata.nextLink"] = f"{BASE}/groups/g0/members?$skiptoken=1"
                responses.append(
                    {
                        "id": item["id"],
                        "status": status,
                        "headers": {"Retry-After": "0.5"} if status == 429 else {},
                        "body": body if status == 200 else {"error": {"code": "TooManyRequests"}},
                    }
                )
            return httpx.Response(200, json={"responses": list(reversed(responses))})
        return page([{"id": "g0-m1"}])

    return handler, batches


def test_get_many_batches_first_pages_and_follows_the_rest() -> None:
    handler, batches = _batch_handler(lambda url, n: 200)
    harness = Harness(handler)
    requests = [Request(f"/groups/g{i}/members", {"$top": "999"}, advanced=True) for i in range(25)]
    results = harness.client.get_many(requests)
    assert [len(r) for r in results] == [2] + [1] * 24
    assert results[3] == [{"id": "g3-m0"}]
    assert [len(b["requests"]) for b in batches] == [20, 5]
    assert batches[0]["requests"][0]["headers"] == {"ConsistencyLevel": "eventual"}
    assert len(harness.seen) == 3  # 2 batches + 1 second page of g0


def test_throttled_batch_items_are_resent_after_retry_after() -> None:
    handler, batches = _batch_handler(lambda url, n: 429 if "g1/" in url and n == 1 else 200)
    harness = Harness(handler)
    results = harness.client.get_many([Request(f"/groups/g{i}/members") for i in range(3)])
    assert results[1] == [{"id": "g1-m0"}]
    assert [len(b["requests"]) for b in batches] == [3, 1]
    assert harness.sleeps == [0.5]


def test_failed_batch_item_names_its_request() -> None:
    handler, _ = _batch_handler(lambda url, n: 403 if "g2/" in url else 200)
    harness = Harness(handler)
    with pytest.raises(GraphError, match=r"GET /groups/g2/members: HTTP 403"):
        harness.client.get_many([Request(f"/groups/g{i}/members") for i in range(3)])


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
