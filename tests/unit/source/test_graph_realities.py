"""Error ids, 403 permission names, throttle-warning pacing and the ``roles`` check, against
httpx.MockTransport (exact values; the emulator tests cover the same end to end)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from syncctl.errors import GraphError
from syncctl.source import permissions
from syncctl.source.graph import GraphClient, Request
from syncctl.source.token_claims import token_roles
from tests.unit.source.policies import make_policy

BASE = "https://graph.test/v1.0"


class Tokens:
    def token(self) -> str:
        return "token"

    def refresh(self) -> str:
        return "token"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(responses: list[httpx.Response], seen: list[httpx.Request], clock: Clock) -> GraphClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responses.pop(0)

    http = httpx.Client(transport=httpx.MockTransport(handle))
    return GraphClient(
        http, BASE, Tokens(), sleep=clock.sleep, jitter=lambda: 1.0, clock=lambda: clock.now
    )


def error_of(status: int, body: Any, headers: dict[str, str] | None = None) -> GraphError:
    seen: list[httpx.Request] = []
    graph = client([httpx.Response(status, json=body, headers=headers)], seen, Clock())
    with pytest.raises(GraphError) as caught:
        graph.post("/directoryObjects/getByIds", {"ids": ["x"], "types": ["user"]}, {})
    sent = seen[0].headers["client-request-id"]
    assert uuid.UUID(sent).version == 4
    assert getattr(caught.value, "client_request_id", None) == sent
    return caught.value


def test_camel_case_request_id_and_empty_code_are_read_right() -> None:
    error = error_of(
        400, {"error": {"code": "", "message": "Bad.", "innerError": {"requestId": "r-1"}}}
    )
    assert error.request_id == "r-1" and error.code is None
    assert "code ," not in str(error) and "code" not in str(error).split("(")[-1]
    sent = getattr(error, "client_request_id", None)
    assert str(error).endswith(f"(status 400, request-id r-1, client-request-id {sent})")


def test_request_id_header_is_used_when_the_body_has_none() -> None:
    error = error_of(
        400, {"error": {"code": "BadRequest", "message": "Bad."}}, {"request-id": "h-2"}
    )
    assert error.request_id == "h-2"


def test_every_request_gets_a_fresh_client_request_id() -> None:
    seen: list[httpx.Request] = []
    ok = {"value": [{"id": "a"}]}
    graph = client([httpx.Response(200, json=ok), httpx.Response(200, json=ok)], seen, Clock())
    graph.get_all(Request("/users"))
    graph.get_all(Request("/users"))
    ids = [r.headers["client-request-id"] for r in seen]
    assert len(set(ids)) == 2


def test_403_names_the_permission_from_the_table() -> None:
    body = {
        "error": {
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
            "innerError": {"request-id": "r-3", "client-request-id": "ignored"},
        }
    }
    error = error_of(403, body)
    assert str(error).startswith(
        "POST /directoryObjects/getByIds: 403 Authorization_RequestDenied: the app registration "
        "lacks Directory.Read.All (grant it and admin-consent; needed to tell why a managed user "
        "or group left scope) (status 403, code Authorization_RequestDenied, request-id r-3, "
        "client-request-id "
    )


def test_a_403_with_another_code_keeps_graphs_words() -> None:
    body = {"error": {"code": "AccessDenied", "message": "Blocked by Conditional Access."}}
    text = str(error_of(403, body))
    assert text.startswith("POST /directoryObjects/getByIds: Blocked by Conditional Access. (")
    assert "lacks" not in text  # not every 403 is a missing permission


@pytest.mark.parametrize(
    ("method", "path", "page"),
    [
        ("GET", "/groups/g1/members/microsoft.graph.user", "group-list-members"),
        ("GET", "/groups/g1/transitiveMembers", "group-list-transitivemembers"),
        ("GET", "/directory/deletedItems/abc", "directory-deleteditems-get"),
        ("GET", "/directoryObjects/abc", "directoryobject-get"),
        ("GET", "/users/delta?$deltatoken=x", "user-delta"),
        ("PATCH", "/users/abc", "user-update"),
        ("GET", "/groups", "group-list"),
    ],
)
def test_each_request_maps_to_its_doc_page(method: str, path: str, page: str) -> None:
    endpoint = permissions.endpoint_for(method, path)
    assert endpoint is not None and endpoint.page == page


def test_throttle_warning_spaces_requests_proportionally_and_lifts() -> None:
    clock = Clock()
    seen: list[httpx.Request] = []
    ok = {"value": [{"id": "a"}]}

    def warned(value: str | None) -> httpx.Response:
        headers = {"x-ms-throttle-limit-percentage": value} if value else {}
        return httpx.Response(200, json=ok, headers=headers)

    graph = client(
        [warned("1.0"), warned("1.3"), warned("1.3"), warned(None), warned(None)], seen, clock
    )
    for _ in range(5):
        graph.get_all(Request("/users"))
    # 1st answer at 1.0 -> 0.2 s apart: the 2nd starts at once and books the slot; after it
    # (1.3 -> 0.5 s) the 3rd waits 0.2 s. After the 4th answer has no header, no more waits.
    assert clock.sleeps == [pytest.approx(0.2), pytest.approx(0.5)]
    assert graph.throttle_usage is None


def _token(claims: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"e30.{payload}.sig"


def test_roles_claim_is_read_and_missing_permissions_are_named_with_their_feature() -> None:
    roles = token_roles(_token({"roles": ["GroupMember.Read.All", "User.Read.All"]}))
    assert roles == frozenset({"GroupMember.Read.All", "User.Read.All"})
    lines = permissions.missing(make_policy(), roles)
    assert len(lines) == 1  # Directory.Read.All, named once though three requests need it
    assert "lacks the application permission Directory.Read.All, which removal reasons" in lines[0]
    assert "directoryobject-getbyids" in lines[0]
    # A higher-privileged permission grants what the lower ones do.
    assert permissions.missing(make_policy(), {"Directory.Read.All"}) == []
    assert permissions.missing(make_policy(), set())[0].startswith(
        "the app registration lacks the application permission GroupMember.Read.All, which "
        "reading scope needs"
    )


def test_a_token_without_roles_cannot_be_checked() -> None:
    assert token_roles(_token({"tid": "x"})) is None
    assert token_roles("not-a-jwt") is None
