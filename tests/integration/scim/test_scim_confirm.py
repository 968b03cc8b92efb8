"""A dropped write is not a success: disables, deletes and member removals that the server
acknowledges (2xx) without doing them are failed changes.

The fault proxy in front of a real scim2-server answers the write itself (204, or 200 with a
body) and never forwards it, which is exactly what a server that drops the write looks like.
Without a fault, each confirmation costs at most one extra GET.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from syncctl.plan.model import Action, Change, ChangeKind
from syncctl.targets.base import OutcomeStatus
from syncctl.targets.scim import ScimDirectory
from tests.contract.scim_harness import ScimServer
from tests.integration.scim.conftest import DirectoryFactory
from tests.integration.scim.fault_proxy import FaultProxy, Rule
from tests.integration.scim.helpers import create_group, create_user, eid, member, object_change

OWNER = "scim-test"
JSON = {"Content-Type": "application/scim+json"}


@pytest.fixture
def proxy(scim_server: ScimServer) -> Iterator[FaultProxy]:
    with FaultProxy(scim_server.root) as running:
        yield running


@pytest.fixture
def seeded(
    proxy: FaultProxy, tenant_url: str, make_directory: DirectoryFactory
) -> tuple[ScimDirectory, str, str]:
    """A directory through the proxy that has read two users and a group with both in it;
    returns (directory, user 1's SCIM id, the group's SCIM id)."""
    directory = make_directory(url=tenant_url.replace(proxy.upstream, proxy.root), bulk=False)
    directory.read(OWNER, [])
    user1, _user2, group = directory.apply([create_user(1), create_user(2), create_group(1)], OWNER)
    directory.apply([member(Action.ADD, 1, 1), member(Action.ADD, 1, 2)], OWNER)
    directory.read(OWNER, [eid("user", 1), eid("user", 2), eid("group", 1)])
    assert user1.target_id and group.target_id
    proxy.log.clear()  # tests count only their own requests
    return directory, user1.target_id, group.target_id


def _disable(user_id: str) -> Change:
    return object_change(Action.DISABLE, user_id, "user/user1@contoso.test")


def _group_members(raw: httpx.Client, group_id: str) -> set[str]:
    return {m["value"] for m in raw.get(f"/Groups/{group_id}").json().get("members", [])}


# -- disable -------------------------------------------------------------------------------


def test_disable_acknowledged_with_204_but_dropped_fails(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy, raw: httpx.Client
) -> None:
    directory, user_id, _ = seeded
    proxy.add(Rule("status", "PATCH", f"/Users/{user_id}", status=204))
    (outcome,) = directory.apply([_disable(user_id)], OWNER)
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.message == (
        f"PATCH {directory._http.url(f'/Users/{user_id}')}: the server acknowledged the "
        "disable but the user is still active"
    )
    assert raw.get(f"/Users/{user_id}").json()["active"] is True


def test_disable_answered_with_the_resource_is_judged_by_that_body(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy
) -> None:
    directory, user_id, _ = seeded
    body = json.dumps({"id": user_id, "userName": "user1@contoso.test", "active": True})
    proxy.add(
        Rule("status", "PATCH", f"/Users/{user_id}", status=200, headers=JSON, body=body.encode())
    )
    (outcome,) = directory.apply([_disable(user_id)], OWNER)
    assert outcome.status is OutcomeStatus.FAILED
    assert "the user is still active" in (outcome.message or "")
    assert proxy.count("GET", f"/Users/{user_id}") == 0  # the answer said enough


def test_a_real_disable_is_confirmed_with_one_read(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy, raw: httpx.Client
) -> None:
    directory, user_id, _ = seeded
    (outcome,) = directory.apply([_disable(user_id)], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED, outcome.message
    assert raw.get(f"/Users/{user_id}").json()["active"] is False
    assert proxy.count("PATCH", f"/Users/{user_id}", 204) == 1
    assert proxy.count("GET", f"/Users/{user_id}") == 1  # 204 has no body: read it back


# -- delete --------------------------------------------------------------------------------


def test_delete_acknowledged_but_still_there_fails(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy, raw: httpx.Client
) -> None:
    directory, user_id, group_id = seeded
    proxy.add(Rule("status", "DELETE", "", status=204))
    deletes = [
        object_change(Action.DELETE, user_id, "user/user1@contoso.test"),
        object_change(Action.DELETE, group_id, "group/Group 1", kind=ChangeKind.GROUP),
    ]
    user_outcome, group_outcome = directory.apply(deletes, OWNER)
    assert user_outcome.status is group_outcome.status is OutcomeStatus.FAILED
    assert user_outcome.message == (
        f"DELETE {directory._http.url(f'/Users/{user_id}')}: the server acknowledged the "
        "delete but the user still exists (GET answered 200)"
    )
    assert "the group still exists" in (group_outcome.message or "")
    assert raw.get(f"/Users/{user_id}").status_code == 200


def test_a_real_delete_is_confirmed_by_a_404(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy, raw: httpx.Client
) -> None:
    directory, user_id, _ = seeded
    delete = object_change(Action.DELETE, user_id, "user/user1@contoso.test")
    (outcome,) = directory.apply([delete], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED, outcome.message
    assert proxy.count("GET", f"/Users/{user_id}", 404) == 1
    assert raw.get(f"/Users/{user_id}").status_code == 404


# -- membership removal ----------------------------------------------------------------------


def test_member_removal_acknowledged_but_dropped_fails(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy, raw: httpx.Client
) -> None:
    directory, user_id, group_id = seeded
    proxy.add(Rule("status", "PATCH", f"/Groups/{group_id}", status=204))
    (outcome,) = directory.apply([member(Action.REMOVE, 1, 1)], OWNER)
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.message == (
        f"PATCH {directory._http.url(f'/Groups/{group_id}')}: the server acknowledged the "
        f"removal but user {user_id} is still a member"
    )
    # Both removal forms were tried (a server may honour only one), each read back once.
    assert proxy.count("PATCH", f"/Groups/{group_id}") == 2
    assert proxy.count("GET", f"/Groups/{group_id}?attributes=members") == 2
    assert user_id in _group_members(raw, group_id)
    # Not remembered as removed: the next apply tries again, and the real removal works.
    proxy.rules.clear()
    (again,) = directory.apply([member(Action.REMOVE, 1, 1)], OWNER)
    assert again.status is OutcomeStatus.APPLIED, again.message
    assert user_id not in _group_members(raw, group_id)


def test_member_removal_answered_with_members_is_judged_by_that_body(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy
) -> None:
    directory, user_id, group_id = seeded
    body = json.dumps({"id": group_id, "members": [{"value": user_id}]}).encode()
    proxy.add(Rule("status", "PATCH", f"/Groups/{group_id}", status=200, headers=JSON, body=body))
    (outcome,) = directory.apply([member(Action.REMOVE, 1, 1)], OWNER)
    assert outcome.status is OutcomeStatus.FAILED
    assert f"user {user_id} is still a member" in (outcome.message or "")
    assert proxy.count("GET", f"/Groups/{group_id}") == 0


def test_member_removal_answered_without_members_reads_the_group(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy
) -> None:
    """A 200 whose body leaves members out (servers that omit them from answers) says
    nothing about them: the group is read with attributes=members."""
    directory, user_id, group_id = seeded
    body = json.dumps({"id": group_id, "displayName": "Group 1"}).encode()
    proxy.add(Rule("status", "PATCH", f"/Groups/{group_id}", status=200, headers=JSON, body=body))
    (outcome,) = directory.apply([member(Action.REMOVE, 1, 1)], OWNER)
    assert outcome.status is OutcomeStatus.FAILED
    assert f"user {user_id} is still a member" in (outcome.message or "")
    assert proxy.count("GET", f"/Groups/{group_id}?attributes=members") == 2


def test_real_member_removals_are_confirmed_with_one_read(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy, raw: httpx.Client
) -> None:
    directory, _, group_id = seeded
    outcomes = directory.apply([member(Action.REMOVE, 1, 1), member(Action.REMOVE, 1, 2)], OWNER)
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * 2
    assert proxy.count("PATCH", f"/Groups/{group_id}") == 1  # both in one request
    assert proxy.count("GET", f"/Groups/{group_id}?attributes=members") == 1
    assert _group_members(raw, group_id) == set()


def test_member_removal_that_cannot_be_confirmed_fails(
    seeded: tuple[ScimDirectory, str, str], proxy: FaultProxy
) -> None:
    directory, _, group_id = seeded
    proxy.add(Rule("status", "GET", f"/Groups/{group_id}?", status=500, body=b'{"detail":"x"}'))
    directory._http.retry = type(directory._http.retry)(attempts=1)
    (outcome,) = directory.apply([member(Action.REMOVE, 1, 1)], OWNER)
    assert outcome.status is OutcomeStatus.FAILED
    assert "acknowledged the removal, but it cannot be confirmed" in (outcome.message or "")
    assert "status 500" in (outcome.message or "")
