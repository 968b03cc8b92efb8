"""GraphClient.each_page: pages handed over one at a time, in order, never two at once; every
check of get_many still holds, and a page that fails one is never handed over."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from syncctl.errors import GraphError
from syncctl.source.graph import Request
from tests.unit.source.test_graph_client import BASE, Handler, Harness

PER_PAGE = 3


def _page_body(group: str, number: int, pages: int, count: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "value": [{"id": f"{group}-m{number * PER_PAGE + i}"} for i in range(PER_PAGE)]
    }
    if number + 1 < pages:
        body["@odata.nextLink"] = f"{BASE}/groups/{group}/members?$skiptoken={number + 1}"
    if count is not None and number == 0:
        body["@odata.count"] = count
    return body


def groups_handler(pages: dict[str, int], count: dict[str, int] | None = None) -> Handler:
    """First pages through $batch, later pages by nextLink."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/$batch"):
            responses = []
            for item in json.loads(request.content)["requests"]:
                group = item["url"].split("/")[2]
                body = _page_body(group, 0, pages[group], (count or {}).get(group))
                responses.append({"id": item["id"], "status": 200, "body": body})
            return httpx.Response(200, json={"responses": responses})
        group = request.url.path.split("/")[-2]
        number = int(request.url.params["$skiptoken"])
        return httpx.Response(200, json=_page_body(group, number, pages[group], None))

    return handler


def _requests(groups: list[str], counted: bool = False) -> list[Request]:
    params = {"$top": str(PER_PAGE), **({"$count": "true"} if counted else {})}
    return [Request(f"/groups/{g}/members", params, advanced=True) for g in groups]


def test_pages_arrive_in_order_per_collection_and_never_two_at_once() -> None:
    pages = {"g0": 4, "g1": 1, "g2": 3, "g3": 2}
    harness = Harness(groups_handler(pages))
    handed: list[tuple[int, list[str]]] = []
    inside = threading.Lock()
    overlapped: list[int] = []

    def take(index: int, items: list[dict[str, Any]]) -> None:
        if not inside.acquire(blocking=False):
            overlapped.append(index)
            return
        try:
            handed.append((index, [i["id"] for i in items]))
        finally:
            inside.release()

    requests = _requests(list(pages))
    harness.client.each_page(requests, take)
    assert overlapped == []
    for index, group in enumerate(pages):
        got = [ids for i, ids in handed if i == index]
        assert got == [
            [f"{group}-m{n * PER_PAGE + k}" for k in range(PER_PAGE)] for n in range(pages[group])
        ]
    # get_many is the same read, kept: the same items in the same order
    kept = Harness(groups_handler(pages)).client.get_many(requests)
    assert [[i["id"] for i in c] for c in kept] == [
        [i for idx, ids in handed if idx == n for i in ids] for n in range(len(pages))
    ]
    assert harness.client.pages == sum(pages.values())


def test_a_counted_collection_short_of_its_count_fails_after_its_pages() -> None:
    harness = Harness(groups_handler({"g0": 2}, count={"g0": 7}))
    handed: list[int] = []
    with pytest.raises(GraphError) as caught:
        harness.client.each_page(
            _requests(["g0"], counted=True), lambda i, items: handed.append(len(items))
        )
    assert str(caught.value) == (
        "GET /groups/g0/members: incomplete answer: 6 distinct objects read, but the first "
        "page counted 7 (@odata.count); not using a partial collection"
    )
    assert handed == [3, 3]  # handed over before the count could be checked: caller drops them


def test_a_page_that_fails_its_checks_is_not_handed_and_nothing_more_is_asked() -> None:
    good = groups_handler({"g0": 4})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("$skiptoken") == "1":
            return httpx.Response(200, json={"value": [{"id": "g0-m3"}, {"name": "no id"}]})
        return good(request)

    harness = Harness(handler)
    handed: list[list[str]] = []
    with pytest.raises(GraphError, match="item 1 of a page has no `id`"):
        harness.client.each_page(
            _requests(["g0"]), lambda i, items: handed.append([x["id"] for x in items])
        )
    assert handed == [["g0-m0", "g0-m1", "g0-m2"]]
    assert [r.url.params.get("$skiptoken") for r in harness.seen] == [None, "1"]


def test_a_failing_consumer_stops_the_read_and_its_error_wins() -> None:
    harness = Harness(groups_handler({"g0": 5}))

    def take(index: int, items: list[dict[str, Any]]) -> None:
        raise GraphError("user came with limited information", request="GET /groups/g0")

    with pytest.raises(GraphError, match="limited information"):
        harness.client.each_page(_requests(["g0"]), take)
    assert len(harness.seen) == 1  # the $batch of first pages: no page after the refused one
