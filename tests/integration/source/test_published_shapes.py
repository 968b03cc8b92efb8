"""syncctl's Graph client reads every answer shape Microsoft publishes for the requests it
makes: the fixtures are Microsoft's own example bodies (tests/fixtures/graph-published),
served over real TLS by the replay server and read by the real GraphClient and httpx."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncctl.errors import GraphError
from syncctl.source.graph import Answer, GraphClient, Request
from syncctl.source.graph_errors import graph_error
from syncctl.source.removals import _is_found
from tests.integration.source.replay import (
    NO_FIXTURE,
    Replay,
    load_fixture,
    match_key,
    published_path,
    running_replay,
)


class StaticTokens:
    def token(self) -> str:
        return "replay-token"

    def refresh(self) -> str:
        return "replay-token"


class Reading:
    """A replay server, the client reading it, and the pauses the client asked for."""

    def __init__(self, replay: Replay, http: httpx.Client) -> None:
        self.replay = replay
        self.sleeps: list[float] = []
        self.graph = GraphClient(
            http, replay.base_url, StaticTokens(), concurrency=1, sleep=self.sleeps.append
        )


@pytest.fixture
def reading(request: pytest.FixtureRequest) -> Iterator[Reading]:
    names: list[str] = request.param
    with running_replay([load_fixture(n) for n in names]) as replay:
        context = ssl.create_default_context(cafile=str(replay.ca_bundle))
        with httpx.Client(verify=context, timeout=10) as http:
            yield Reading(replay, http)


def replaying(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("reading", [list(names)], indirect=True, ids=[names[0]])


def request_of(name: str) -> Request:
    """The fixture's published request as the reader would build it."""
    published = load_fixture(name)["request"]
    path, params = published_path(published["url"])
    advanced = published.get("headers", {}).get("ConsistencyLevel") == "eventual"
    return Request(path, params, advanced=advanced, method=published["method"])


def published_value(reading: Reading, name: str) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = reading.replay.rewrite(load_fixture(name)["body"])["value"]
    return value


def targets(reading: Reading) -> list[Any]:
    return [match_key(m, t) for m, t in reading.replay.requests]


@replaying("user-list-all")
def test_user_list_items_are_read_as_published(reading: Reading) -> None:
    users = reading.graph.get_all(request_of("user-list-all"))
    assert users == published_value(reading, "user-list-all")
    assert [u["id"] for u in users] == [
        "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0",
        "4562bcc8-c436-4f95-b7c0-4f8ce89dca5e",
    ]


@pytest.mark.parametrize(
    ("reading", "name"),
    [
        (["group-members"], "group-members"),
        (["group-transitivemembers"], "group-transitivemembers"),
    ],
    indirect=["reading"],
)
def test_member_lists_without_cast_are_read_as_published(reading: Reading, name: str) -> None:
    members = reading.graph.get_all(request_of(name))
    assert members == published_value(reading, name)
    assert [m["id"] for m in members] == ["11111111-2222-3333-4444-555555555555"]


@replaying("group-transitivemembers-cast-group")
def test_counted_cast_list_matching_its_count_is_read(reading: Reading) -> None:
    request = request_of("group-transitivemembers-cast-group")
    assert request.counted and request.advanced
    groups = reading.graph.get_all(request)
    assert [g["id"] for g in groups] == [
        "4d0ef681-e88f-42a3-a2db-e6bf1e249e10",
        "d9fb0c47-c783-40a1-bce1-53b52ada51fc",
    ]
    assert groups[0]["description"] is None and "description" not in groups[1]


@pytest.mark.parametrize(
    ("reading", "name", "read"),
    [
        (["group-members-cast-user"], "group-members-cast-user", 2),
        (["group-transitivemembers-cast-user"], "group-transitivemembers-cast-user", 1),
    ],
    indirect=["reading"],
)
def test_shortened_counted_page_is_refused_not_taken_for_the_collection(
    reading: Reading, name: str, read: int
) -> None:
    # Microsoft shortened these pages for readability: @odata.count says 7, the page holds
    # fewer and no nextLink. The client must read the count and refuse the short page.
    with pytest.raises(GraphError, match=rf"{read} distinct objects read, .*counted 7"):
        reading.graph.get_all(request_of(name))
    assert reading.graph.objects == read


@replaying("groups-delta-round-1", "groups-delta-round-2", "groups-delta-round-3")
def test_delta_round_follows_nextlinks_to_the_deltalink(reading: Reading) -> None:
    groups = reading.graph.get_all(request_of("groups-delta-round-1"))
    assert [g["displayName"] for g in groups] == [f"TestGroup{i}" for i in range(1, 7)]
    assert reading.graph.pages == 3
    assert [m["id"] for m in groups[0]["members@delta"]] == [
        "693acd06-2877-4339-8ade-b704261fe7a0",
        "49320844-be99-4164-8167-87ff5d047ace",
    ]
    assert "members@delta" not in groups[1]  # a group without members carries no property
    expected = [
        match_key("GET", reading.replay.rewrite(load_fixture(n)["request"])["url"])
        for n in ("groups-delta-round-1", "groups-delta-round-2", "groups-delta-round-3")
    ]
    assert targets(reading) == expected


@replaying("groups-delta-next-round-changes")
def test_next_delta_round_keeps_removed_members(reading: Reading) -> None:
    (group,) = reading.graph.get_all(request_of("groups-delta-next-round-changes"))
    removed, added = group["members@delta"]
    assert removed == {
        "@odata.type": "#microsoft.graph.user",
        "id": "632f6bb2-3ec8-4c1f-9073-0027a8c6859",
        "@removed": {"reason": "deleted"},
    }
    assert "@removed" not in added and added["id"] == "37de1ae3-408f-4702-8636-20824abda004"


@replaying("groups-delta-next-round-empty")
def test_empty_delta_round_is_an_empty_collection(reading: Reading) -> None:
    assert reading.graph.get_all(request_of("groups-delta-next-round-empty")) == []
    assert reading.graph.pages == 1


@replaying("user-delta-default")
def test_published_nextlink_is_followed_on_the_same_origin(reading: Reading) -> None:
    # The page is published alone: the nextLink it names has no published answer, so the
    # replay says so; what matters is that the client asked for exactly that link.
    with pytest.raises(GraphError) as raised:
        reading.graph.get_all(request_of("user-delta-default"))
    assert raised.value.code == NO_FIXTURE
    assert reading.graph.objects == 1
    next_link = reading.replay.rewrite(load_fixture("user-delta-default")["body"])
    assert targets(reading)[-1] == match_key("GET", next_link["@odata.nextLink"])


@replaying("group-delta-default")
def test_page_whose_items_lack_an_id_is_refused(reading: Reading) -> None:
    # Shortened by Microsoft to the point of dropping `id`: the client must not accept
    # objects it cannot name.
    with pytest.raises(GraphError, match="item 0 of a page has no `id`"):
        reading.graph.get_all(request_of("group-delta-default"))


@replaying("deleteditems-list-groups", "deleteditems-list-groups-count")
def test_deleted_items_lists_are_read_as_published(reading: Reading) -> None:
    plain = reading.graph.get_all(request_of("deleteditems-list-groups"))
    assert plain == published_value(reading, "deleteditems-list-groups")
    counted = reading.graph.get_all(request_of("deleteditems-list-groups-count"))
    assert [g["id"] for g in counted] == [
        "c31799b8-0683-4d70-9e91-e032c89d3035",
        "74e45ce0-a52a-4766-976c-7201b0f99370",
    ]


@replaying("deleteditems-get", "directoryobject-get")
def test_single_object_lookups_are_answers_the_reader_accepts(reading: Reading) -> None:
    deleted_request = request_of("deleteditems-get")
    live_request = request_of("directoryobject-get")
    deleted, live = reading.graph.get_each([deleted_request, live_request])
    assert deleted.status == 200 and deleted.body is not None
    assert deleted.body["id"] == "46cc6179-19d0-473e-97ad-6ff84347bbbb"
    assert live.body is not None and live.body["@odata.type"] == "#microsoft.graph.user"
    # The reader's evidence check on the published bodies: found, and only for their own id.
    assert _is_found(deleted_request, deleted, "46cc6179-19d0-473e-97ad-6ff84347bbbb")
    assert _is_found(live_request, live, "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0")
    with pytest.raises(GraphError, match="not the one asked for"):
        _is_found(live_request, live, "46cc6179-19d0-473e-97ad-6ff84347bbbb")


@replaying("getbyids-users")
def test_get_by_ids_answer_is_read_as_published(reading: Reading) -> None:
    published = load_fixture("getbyids-users")["request"]["body"]
    answer = reading.graph.post("/directoryObjects/getByIds", published, {})
    assert [(u["id"], u["accountEnabled"]) for u in answer["value"]] == [
        ("84b80893-8749-40a3-97b7-68513b600544", True),
        ("84b80893-8749-40a3-97b7-68513b600544", True),
    ]
    assert "@odata.nextLink" not in answer  # the reader refuses a paged getByIds answer


def _batch_request(name: str, item_id: str) -> Request:
    items = load_fixture(name)["request"]["body"]["requests"]
    item = next(i for i in items if i["id"] == item_id)
    path, params = published_path(item["url"])
    advanced = item.get("headers", {}).get("ConsistencyLevel") == "eventual"
    return Request(path, params, advanced=advanced)


@replaying("batch-errors")
def test_batch_items_are_answers_or_errors_with_code_and_request_id(reading: Reading) -> None:
    requests = [_batch_request("batch-errors", i) for i in ("1", "2", "5")]
    roles, denied, users = reading.graph.get_each(requests, accept=frozenset({200, 403}))
    assert roles.body is not None
    assert [r["id"] for r in roles.body["value"]] == ["21004afc-7bb2-4fe6-a1e1-074ebd3e52c1"]
    assert users.body is not None and users.body["@odata.count"] == 36
    assert denied == Answer(403, None, denied.error)
    assert denied.error is not None
    assert not denied.error.code  # published as "": no code may be invented for it
    assert denied.error.request_id == "93b6f17e-c05d-4f45-ad2a-6665c708d8a0"
    with pytest.raises(GraphError) as raised:
        reading.graph.get_each([requests[1]])  # 403 is not an answer the reader accepts
    assert raised.value.status == 403
    # Items 3 and 4 answer a DELETE and a POST, which the client never batches: their
    # published error bodies are parsed as the client parses every batch item.
    responses = {r["id"]: r for r in load_fixture("batch-errors")["body"]["responses"]}
    for item_id, code, request_id in [
        ("3", "Authorization_RequestDenied", "93b6f17e-c05d-4f45-ad2a-6665c708d8a0"),
        ("4", "Request_BadRequest", "3a3b1bf7-3596-4493-8264-de81e028071f"),
    ]:
        item = responses[item_id]
        error = graph_error("item", item["status"], item["body"], {}, None)
        assert (error.status, error.code, error.request_id) == (item["status"], code, request_id)


@replaying("batch-with-204")
def test_batch_answers_and_failures_of_the_older_published_batch(reading: Reading) -> None:
    tasks, users = reading.graph.get_each(
        [_batch_request("batch-with-204", "2"), _batch_request("batch-with-204", "5")],
        accept=frozenset({200}),
    )
    assert tasks.body is not None and tasks.body["value"] == []
    assert users.body is not None
    assert [u["id"] for u in users.body["value"]] == ["071cc716-8147-4397-a5ba-b2105951cc0b"]
    with pytest.raises(GraphError) as redirected:
        reading.graph.get_each([_batch_request("batch-with-204", "1")])
    assert redirected.value.status == 302
    with pytest.raises(GraphError) as forbidden:
        reading.graph.get_each([_batch_request("batch-with-204", "3")])
    assert (forbidden.value.status, forbidden.value.code) == (401, "Forbidden")


@pytest.mark.parametrize(
    ("reading", "name", "code", "request_id"),
    [
        (
            ["error-400-count-without-eventual"],
            "error-400-count-without-eventual",
            "Request_BadRequest",
            "d9bbd4d8-bb2d-44e6-99a1-71a9516da744",
        ),
        (
            ["error-400-search-without-eventual"],
            "error-400-search-without-eventual",
            "Request_UnsupportedQuery",
            "9b600954-ba11-4899-8ce9-6abad341f299",
        ),
    ],
    indirect=["reading"],
)
def test_published_errors_raise_with_code_and_request_id(
    reading: Reading, name: str, code: str, request_id: str
) -> None:
    with pytest.raises(GraphError) as raised:
        reading.graph.get_all(request_of(name))
    error = raised.value
    assert (error.status, error.code, error.request_id) == (400, code, request_id)
    assert reading.graph.requests_sent == 1  # a 400 is not retried


@replaying("users-count-ignored-without-eventual")
def test_count_silently_ignored_is_not_trusted(reading: Reading) -> None:
    with pytest.raises(GraphError, match=r"no valid @odata\.count"):
        reading.graph.get_all(request_of("users-count-ignored-without-eventual"))


@replaying("throttled-429", "user-list-all")
def test_throttled_read_waits_the_published_retry_after(reading: Reading) -> None:
    users = reading.graph.get_all(request_of("throttled-429"))
    assert [u["id"] for u in users] == [u["id"] for u in published_value(reading, "user-list-all")]
    assert reading.sleeps == [2.128]
    assert reading.graph.requests_sent == 2
