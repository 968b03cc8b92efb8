"""GraphClient against httpx.MockTransport: paging, retries, errors, batching.

MockTransport stands in for Graph here so each failure can be placed exactly; the same
behaviours are exercised end to end against the TLS emulator in tests/integration/source.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from syncctl import deadline
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
    # The client-request-id is the GUID syncctl sent: support asks for it next to request-id.
    sent = harness.seen[0].headers["client-request-id"]
    assert str(error) == (
        "GET /groups/x/members: Resource 'x' does not exist. "
        f"(status 404, code Request_ResourceNotFound, request-id abc-123, client-request-id {sent})"
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
    headers = batches[0]["requests"][0]["headers"]
    assert headers["ConsistencyLevel"] == "eventual"
    # Each item carries its own client-request-id (a GUID), distinct from its neighbours'.
    item_ids = {item["headers"]["client-request-id"] for item in batches[0]["requests"]}
    assert len(item_ids) == 20 and all(uuid.UUID(i).version == 4 for i in item_ids)
    assert len(harness.seen) == 3  # 2 batches + 1 second page of g0


def test_throttled_batch_items_are_resent_after_retry_after() -> None:
    handler, batches = _batch_handler(lambda url, n: 429 if "g1/" in url and n == 1 else 200)
    harness = Harness(handler)
    results = harness.client.get_many([Request(f"/groups/g{i}/members") for i in range(3)])
    assert results[1] == [{"id": "g1-m0"}]
    assert [len(b["requests"]) for b in batches] == [3, 1]
    assert harness.sleeps == [0.5]


def test_a_throttled_batch_that_makes_progress_is_not_given_up() -> None:
    # Each attempt lets one more item through (g{k} is throttled until attempt k): six
    # attempts for six items, more than max_attempts, yet every attempt made progress.
    handler, batches = _batch_handler(lambda url, n: 200 if n >= int(url[9]) else 429)
    harness = Harness(handler, max_attempts=3)
    results = harness.client.get_many([Request(f"/groups/g{i}/members") for i in range(1, 7)])
    assert [r[0]["id"] for r in results] == [f"g{i}-m0" for i in range(1, 7)]
    assert [len(b["requests"]) for b in batches] == [6, 5, 4, 3, 2, 1]


def test_a_throttled_batch_without_progress_gives_up_after_max_attempts() -> None:
    handler, batches = _batch_handler(lambda url, n: 429)
    harness = Harness(handler, max_attempts=3)
    with pytest.raises(GraphError, match="gave up after 3 attempts"):
        harness.client.get_many([Request(f"/groups/g{i}/members") for i in range(1, 4)])
    assert len(batches) == 3


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


# -- answers that are not what Graph sends: one-line GraphErrors naming the request ----------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "page is null, not a JSON object"),
        ([], "page is an array, not a JSON object"),
        ({"value": {"id": "u1"}}, "response has no `value` array"),
        ({"value": ["u1"]}, "item 0 of a page is a string, not an object"),
        ({"value": [{"id": "u1"}, {"displayName": "x"}]}, "item 1 of a page has no `id`"),
        ({"value": [{"id": ""}]}, "item 0 of a page has no `id`"),
    ],
)
def test_malformed_pages_are_graph_errors_naming_the_request(body: Any, message: str) -> None:
    harness = Harness(lambda r: httpx.Response(200, content=json.dumps(body).encode()))
    with pytest.raises(GraphError) as caught:
        harness.client.get_all(Request("/groups/g1/members"))
    assert str(caught.value) == f"GET /groups/g1/members: {message}"


def test_malformed_later_page_is_an_error_too() -> None:
    answers = iter([page(users(0, 2), f"{BASE}/users?$skiptoken=1"), httpx.Response(200, json=[])])
    harness = Harness(lambda r: next(answers))
    with pytest.raises(GraphError, match=r"^GET /users: page is an array"):
        harness.client.get_all(Request("/users"))


def test_batch_item_with_a_null_body_names_its_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["requests"]
        return httpx.Response(
            200, json={"responses": [{"id": i["id"], "status": 200, "body": None} for i in items]}
        )

    harness = Harness(handler)
    with pytest.raises(GraphError, match=r"^GET /groups/g0/members: answered 200 with a body that"):
        harness.client.get_many([Request("/groups/g0/members")])


# -- counted collections --------------------------------------------------------------------


def counted_handler(count: int | None, pages: list[list[dict[str, Any]]]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("$skiptoken", "0"))
        body: dict[str, Any] = {"value": pages[number]}
        if number == 0 and count is not None:
            body["@odata.count"] = count
        if number + 1 < len(pages):
            body["@odata.nextLink"] = f"{BASE}/groups/g/members?$skiptoken={number + 1}"
        return httpx.Response(200, json=body)

    return handler


COUNTED = Request("/groups/g/members", {"$count": "true"}, advanced=True)


def test_a_counted_read_short_of_its_count_fails() -> None:
    harness = Harness(counted_handler(190, [users(0, 100), users(100, 80)]))
    with pytest.raises(GraphError) as caught:
        harness.client.get_all(COUNTED)
    assert str(caught.value) == (
        "GET /groups/g/members: incomplete answer: 180 distinct objects read, but the first "
        "page counted 190 (@odata.count); not using a partial collection"
    )


def test_duplicates_do_not_make_up_for_lost_items() -> None:
    harness = Harness(counted_handler(4, [users(0, 2), users(1, 2)]))  # u0 u1, u1 u2
    with pytest.raises(GraphError, match="3 distinct objects read, but the first page counted 4"):
        harness.client.get_all(COUNTED)


def test_a_counted_read_that_matches_or_exceeds_its_count_passes() -> None:
    exact = Harness(counted_handler(4, [users(0, 2), users(2, 2)]))
    assert len(exact.client.get_all(COUNTED)) == 4
    # One more than counted: a member added while paging is a real answer, not a partial one.
    grown = Harness(counted_handler(3, [users(0, 2), users(2, 2)]))
    assert len(grown.client.get_all(COUNTED)) == 4
    # Only requests that ask for $count are checked.
    uncounted = Harness(counted_handler(None, [users(0, 2)]))
    assert len(uncounted.client.get_all(Request("/groups/g/members"))) == 2


@pytest.mark.parametrize("count", [None, "190", -1, True])
def test_a_counted_read_without_a_valid_count_fails(count: Any) -> None:
    body: dict[str, Any] = {"value": users(0, 2)}
    if count is not None:
        body["@odata.count"] = count
    harness = Harness(lambda r: httpx.Response(200, json=body))
    with pytest.raises(GraphError, match="asked for \\$count=true, but the first page has no"):
        harness.client.get_all(COUNTED)


def test_a_counted_first_page_from_a_batch_is_checked() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["requests"]
        body = {"@odata.count": 3, "value": users(0, 2)}
        return httpx.Response(
            200, json={"responses": [{"id": i["id"], "status": 200, "body": body} for i in items]}
        )

    harness = Harness(handler)
    with pytest.raises(GraphError, match="2 distinct objects read, but the first page counted 3"):
        harness.client.get_many([COUNTED])


# -- single-object lookups ------------------------------------------------------------------


def _lookup_handler(status_of: Callable[[str, int], int]) -> Handler:
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        responses = []
        for item in json.loads(request.content)["requests"]:
            calls[item["url"]] = calls.get(item["url"], 0) + 1
            status = status_of(item["url"], calls[item["url"]])
            object_id = item["url"].split("/")[-1].split("?")[0]
            body: dict[str, Any] = (
                {"id": object_id}
                if status == 200
                else {"error": {"code": "Request_ResourceNotFound" if status == 404 else "X"}}
            )
            responses.append({"id": item["id"], "status": status, "body": body})
        return httpx.Response(200, json={"responses": responses})

    return handler


def test_get_each_returns_200_and_404_answers_in_order_20_to_a_batch() -> None:
    harness = Harness(_lookup_handler(lambda url, n: 404 if url.endswith("odd") else 200))
    requests = [Request(f"/directoryObjects/{i}-{'odd' if i % 2 else 'even'}") for i in range(45)]
    answers = harness.client.get_each(requests)
    assert [a.status for a in answers] == [404 if i % 2 else 200 for i in range(45)]
    assert answers[0].body == {"id": "0-even"} and answers[0].error is None
    assert answers[1].body is None and answers[1].error is not None
    assert answers[1].error.code == "Request_ResourceNotFound"
    assert len(harness.seen) == 3  # ceil(45 / 20) batches


def test_get_each_retries_throttled_items_and_fails_on_other_statuses() -> None:
    harness = Harness(_lookup_handler(lambda url, n: 429 if n == 1 else 200))
    assert [a.status for a in harness.client.get_each([Request("/directoryObjects/a")])] == [200]
    assert len(harness.seen) == 2
    refused = Harness(_lookup_handler(lambda url, n: 403))
    with pytest.raises(GraphError, match=r"^GET /directoryObjects/a: HTTP 403"):
        refused.client.get_each([Request("/directoryObjects/a")])


# -- bounded waiting: the run's deadline and each request's retry budget ---------------------


@pytest.fixture
def run_deadline() -> Iterator[Callable[[float | None], None]]:
    yield deadline.set_deadline
    deadline.set_deadline(None)


def test_retry_after_is_honoured_only_within_the_request_retry_budget(
    run_deadline: Callable[[float | None], None],
) -> None:
    harness = Harness(lambda r: httpx.Response(429, headers={"Retry-After": "50"}))
    with pytest.raises(deadline.RetryBudgetExceeded) as caught:
        harness.client.get_all(Request("/users"))
    assert harness.sleeps == [50.0, 50.0]  # a third 50 s would pass the 120 s budget
    assert len(harness.seen) == 3
    message = str(caught.value)
    assert message.startswith("GET /users: throttled with Retry-After 50s, more than the 20s")
    assert "last answer: HTTP 429" in message and "\n" not in message


def test_backoff_pauses_stop_at_the_retry_budget(
    run_deadline: Callable[[float | None], None],
) -> None:
    harness = Harness(
        lambda r: httpx.Response(503), max_attempts=100, base_delay=30.0, max_delay=30.0
    )
    with pytest.raises(deadline.RetryBudgetExceeded, match=r"^GET /users: still failing after"):
        harness.client.get_all(Request("/users"))
    # (the real time the failed attempts took counts against the budget too)
    assert sum(harness.sleeps) == pytest.approx(deadline.MAX_RETRY_WAIT_PER_REQUEST, abs=0.5)


def test_a_passed_deadline_stops_the_next_attempt(
    run_deadline: Callable[[float | None], None],
) -> None:
    run_deadline(0.0)
    harness = Harness(lambda r: page(users(0, 1)))
    with pytest.raises(deadline.DeadlineExceeded, match=r"^GET /users: the run's deadline"):
        harness.client.get_all(Request("/users"))
    assert harness.seen == []


def test_retry_after_past_the_deadline_fails_at_once(
    run_deadline: Callable[[float | None], None],
) -> None:
    run_deadline(30.0)
    harness = Harness(lambda r: httpx.Response(429, headers={"Retry-After": "60"}))
    with pytest.raises(deadline.DeadlineExceeded, match="Retry-After 60s, but the run's deadline"):
        harness.client.get_all(Request("/users"))
    assert harness.sleeps == []


def test_request_timeouts_never_outlive_the_deadline(
    run_deadline: Callable[[float | None], None],
) -> None:
    harness = Harness(lambda r: page(users(0, 1)))
    harness.client.get_all(Request("/users"))
    assert harness.seen[-1].extensions["timeout"]["read"] == 60.0
    run_deadline(5.0)
    harness.client.get_all(Request("/users"))
    timeouts = harness.seen[-1].extensions["timeout"]
    assert 0 < timeouts["read"] <= 5.0 and timeouts["connect"] <= 5.0


# -- what counts as evidence that an object is gone ----------------------------------------


def test_only_graphs_own_not_found_is_evidence() -> None:
    from syncctl.source.graph import Answer
    from syncctl.source.removals import _is_found

    request = Request("/directoryObjects/x")
    assert _is_found(request, Answer(200, {"id": "x"}, None), "x") is True
    not_found = GraphError(
        "gone", request="GET /directoryObjects/x", status=404, code="Request_ResourceNotFound"
    )
    assert _is_found(request, Answer(404, None, not_found), "x") is False
    for answer in (
        Answer(404, None, GraphError("HTTP 404", request="GET /directoryObjects/x", status=404)),
        Answer(404, None, GraphError("no", status=404, code="BadRequest")),
    ):
        with pytest.raises(GraphError, match="no usable answer about x, so it is not known"):
            _is_found(request, answer, "x")
    with pytest.raises(GraphError, match="answered with object 'y', not the one asked for"):
        _is_found(request, Answer(200, {"id": "y"}, None), "x")


def test_a_server_that_never_answers_is_given_up_on_after_the_retry_budget(
    monkeypatch: pytest.MonkeyPatch, run_deadline: Callable[[float | None], None]
) -> None:
    """Before: 8 attempts of a 60 s read timeout plus backoff, 518 s for one request. Time
    lost to timed-out attempts counts against the request's retry budget."""
    now = [1000.0]
    monkeypatch.setattr("syncctl.source.graph.time.monotonic", lambda: now[0])

    def handler(request: httpx.Request) -> httpx.Response:
        now[0] += 60.0  # the read timeout ran out
        raise httpx.ReadTimeout("timed out", request=request)

    harness = Harness(handler)
    with pytest.raises(deadline.RetryBudgetExceeded) as caught:
        harness.client.get_all(Request("/users"))
    assert len(harness.seen) == 2 and len(harness.sleeps) == 1
    assert "last answer: connection failed: ReadTimeout" in str(caught.value)
