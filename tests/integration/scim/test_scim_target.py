"""ScimDirectory against a real scim2-server: discovery, reading, ownership and every write."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from syncctl.errors import TargetError
from syncctl.model import ObjectKind
from syncctl.plan.model import Action, AttributeChange, ChangeKind
from syncctl.scimpath import ENTERPRISE_USER
from syncctl.targets import scim_read
from syncctl.targets.base import OutcomeStatus
from syncctl.targets.scim import ScimDirectory
from tests.contract.scim_harness import scim_policy
from tests.integration.scim.conftest import DirectoryFactory
from tests.integration.scim.helpers import (
    create_group,
    create_user,
    eid,
    make_policy,
    member,
    object_change,
    user_attrs,
)

OWNER = "scim-test"


def _seed(directory: ScimDirectory, users: int = 3, groups: int = 1) -> None:
    changes = [create_user(n) for n in range(1, users + 1)]
    changes += [create_group(n) for n in range(1, groups + 1)]
    outcomes = directory.apply(changes, OWNER)
    assert {o.status for o in outcomes} == {OutcomeStatus.APPLIED}, outcomes


def _all_known(users: int = 3, groups: int = 1) -> list[str]:
    return [eid("user", n) for n in range(1, users + 1)] + [
        eid("group", n) for n in range(1, groups + 1)
    ]


def _list(raw: httpx.Client, endpoint: str, filter_text: str | None = None) -> list[dict]:
    params = {"count": "1000"}
    if filter_text:
        params["filter"] = filter_text
    response = raw.get(endpoint, params=params)
    assert response.status_code == 200
    return list(response.json().get("Resources", []))


def test_discovery_reads_what_scim2_server_claims(directory: ScimDirectory) -> None:
    sp = directory.service_provider
    assert (sp.patch, sp.bulk, sp.filter, sp.etag) == (True, True, True, True)
    assert sp.bulk_max_operations == 1000
    assert (sp.users_endpoint, sp.groups_endpoint) == ("/Users", "/Groups")
    assert directory.capabilities().versions is True
    directory.check()


def test_create_writes_core_and_enterprise_attributes(
    directory: ScimDirectory, raw: httpx.Client
) -> None:
    (outcome,) = directory.apply([create_user(1)], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED and outcome.target_id
    stored = raw.get(f"/Users/{outcome.target_id}").json()
    assert stored["externalId"] == eid("user", 1)
    assert stored["active"] is True
    assert stored["name"] == {"givenName": "User", "familyName": "N1"}
    assert stored["emails"] == [{"type": "work", "value": "user1@contoso.test"}]
    assert stored[ENTERPRISE_USER] == {"department": "R&D", "employeeNumber": "1001"}


def test_read_maps_back_and_marks_ownership(directory: ScimDirectory, raw: httpx.Client) -> None:
    _seed(directory, users=2)
    foreign = raw.post(
        "/Users", json={"userName": "stranger@contoso.test", "externalId": "someone-else"}
    )
    assert foreign.status_code == 201
    snapshot = directory.read(OWNER, _all_known(users=2))
    by_key = {u.key: u for u in snapshot.users}
    assert set(by_key) == {"stranger@contoso.test", "user1@contoso.test", "user2@contoso.test"}
    assert by_key["stranger@contoso.test"].managed_by is None
    managed = by_key["user1@contoso.test"]
    assert managed.managed_by == OWNER
    assert managed.external_id == eid("user", 1)
    assert dict(managed.attributes) == user_attrs(1)
    assert managed.version.startswith('W/"')
    assert [g.key for g in snapshot.groups] == ["Group 1"]
    # Known ids decide ownership, not the mere presence of an externalId.
    assert all(u.managed_by is None for u in directory.read(OWNER, []).users)


def test_read_pages_through_everything(
    directory: ScimDirectory, raw: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(directory, users=7, groups=0)
    monkeypatch.setattr(scim_read, "PAGE_SIZE", 3)
    seen: list[str] = []
    original = directory._http.request

    def spy(method: str, path: str, **kw: object) -> httpx.Response:
        params = kw.get("params") or {}
        if method == "GET" and path == "/Users" and "startIndex" in params:  # type: ignore[operator]
            seen.append(f"{params['startIndex']}/{params['count']}")  # type: ignore[index]
        return original(method, path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(directory._http, "request", spy)
    snapshot = directory.read(OWNER, _all_known(users=7, groups=0))
    assert len(snapshot.users) == 7
    assert seen == ["1/3", "4/3", "7/3"]


def test_memberships_are_added_removed_and_read_back(
    directory: ScimDirectory, raw: httpx.Client
) -> None:
    _seed(directory)
    outcomes = directory.apply(
        [member(Action.ADD, 1, 1), member(Action.ADD, 1, 2), member(Action.ADD, 1, 3)], OWNER
    )
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * 3
    snapshot = directory.read(OWNER, _all_known())
    group = snapshot.groups[0]
    ids = {u.key: u.target_id for u in snapshot.users}
    assert snapshot.members[group.target_id] == frozenset(ids.values())
    # Re-adding is a no-op without a request; removing goes through members[value eq "id"].
    again = directory.apply([member(Action.ADD, 1, 1)], OWNER)
    assert again[0].status is OutcomeStatus.UNCHANGED
    removed = directory.apply([member(Action.REMOVE, 1, 2)], OWNER)
    assert removed[0].status is OutcomeStatus.APPLIED
    stored = raw.get(f"/Groups/{group.target_id}").json()
    assert sorted(m["value"] for m in stored["members"]) == sorted(
        [ids["user1@contoso.test"], ids["user3@contoso.test"]]
    )
    gone_again = directory.apply([member(Action.REMOVE, 1, 2)], OWNER)
    assert gone_again[0].status is OutcomeStatus.UNCHANGED


def test_update_patches_only_changed_attributes_with_if_match(
    directory: ScimDirectory, raw: httpx.Client
) -> None:
    _seed(directory, users=1, groups=0)
    user = directory.read(OWNER, _all_known(1, 0)).users[0]
    change = object_change(
        Action.UPDATE,
        user.target_id,
        "user/user1@contoso.test",
        version=user.version,
        attributes=(
            AttributeChange("department", "R&D", "Sales"),
            AttributeChange("title", "Engineer", None),
            AttributeChange('emails[type eq "work"].value', "user1@contoso.test", "u1@new.test"),
        ),
    )
    (outcome,) = directory.apply([change], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED
    stored = raw.get(f"/Users/{user.target_id}").json()
    assert stored[ENTERPRISE_USER] == {"department": "Sales", "employeeNumber": "1001"}
    assert "title" not in stored
    assert stored["emails"] == [{"type": "work", "value": "u1@new.test"}]
    assert stored["name"] == {"givenName": "User", "familyName": "N1"}
    # The same change with the now-old version is stale (412) and is not written.
    raw.patch(
        f"/Users/{user.target_id}",
        json={"Operations": [{"op": "replace", "path": "title", "value": "Edited by hand"}]},
    )
    (stale,) = directory.apply([change], OWNER)
    assert stale.status is OutcomeStatus.STALE
    assert "412" in (stale.message or "")
    assert raw.get(f"/Users/{user.target_id}").json()["title"] == "Edited by hand"


def test_update_adds_a_missing_filtered_element(
    directory: ScimDirectory, raw: httpx.Client
) -> None:
    created = raw.post(
        "/Users", json={"userName": "bare@contoso.test", "externalId": eid("user", 1)}
    )
    target_id = created.json()["id"]
    directory.read(OWNER, [eid("user", 1)])
    change = object_change(
        Action.UPDATE,
        target_id,
        "user/bare@contoso.test",
        source_id=eid("user", 1),
        attributes=(AttributeChange('emails[type eq "work"].value', None, "bare@contoso.test"),),
    )
    assert directory.apply([change], OWNER)[0].status is OutcomeStatus.APPLIED
    assert raw.get(f"/Users/{target_id}").json()["emails"] == [
        {"type": "work", "value": "bare@contoso.test"}
    ]


def test_unmanaged_objects_are_refused_even_without_a_read(
    make_directory: DirectoryFactory, raw: httpx.Client
) -> None:
    foreign = raw.post("/Users", json={"userName": "hr@contoso.test", "externalId": "hr-1"})
    target_id = foreign.json()["id"]
    attrs = (AttributeChange("title", None, "Hijacked"),)
    for source_id in (None, eid("user", 1)):
        fresh = make_directory()  # no read(): ownership is checked on the object itself
        for action in (Action.UPDATE, Action.DISABLE, Action.DELETE):
            change = object_change(
                action, target_id, "user/hr", source_id=source_id, attributes=attrs
            )
            (outcome,) = fresh.apply([change], OWNER)
            assert outcome.status is OutcomeStatus.FAILED, (source_id, action)
    stored = raw.get(f"/Users/{target_id}").json()
    assert stored.get("active") is not False and "title" not in stored


def test_disable_enable_and_delete(directory: ScimDirectory, raw: httpx.Client) -> None:
    _seed(directory, users=1, groups=1)
    snapshot = directory.read(OWNER, _all_known(1, 1))
    user, group = snapshot.users[0], snapshot.groups[0]
    address = "user/user1@contoso.test"
    disable = object_change(Action.DISABLE, user.target_id, address, version=user.version)
    assert directory.apply([disable], OWNER)[0].status is OutcomeStatus.APPLIED
    assert raw.get(f"/Users/{user.target_id}").json()["active"] is False
    enable = object_change(Action.ENABLE, user.target_id, address)
    assert directory.apply([enable], OWNER)[0].status is OutcomeStatus.APPLIED
    assert raw.get(f"/Users/{user.target_id}").json()["active"] is True
    delete_user = object_change(Action.DELETE, user.target_id, address)
    delete_group = object_change(
        Action.DELETE, group.target_id, "group/Group 1", kind=ChangeKind.GROUP
    )
    outcomes = directory.apply([delete_user, delete_group], OWNER)
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * 2
    assert raw.get(f"/Users/{user.target_id}").status_code == 404
    assert raw.get(f"/Groups/{group.target_id}").status_code == 404
    again = directory.apply([delete_user], OWNER)
    assert again[0].status is OutcomeStatus.UNCHANGED


def test_group_rename(directory: ScimDirectory, raw: httpx.Client) -> None:
    _seed(directory, users=0, groups=1)
    group = directory.read(OWNER, _all_known(0, 1)).groups[0]
    rename = object_change(
        Action.UPDATE,
        group.target_id,
        "group/Group One",
        kind=ChangeKind.GROUP,
        version=group.version,
        attributes=(AttributeChange("displayName", "Group 1", "Group One"),),
    )
    assert directory.apply([rename], OWNER)[0].status is OutcomeStatus.APPLIED
    assert raw.get(f"/Groups/{group.target_id}").json()["displayName"] == "Group One"


def test_create_rerun_after_crash_does_not_duplicate(
    make_directory: DirectoryFactory, raw: httpx.Client
) -> None:
    first = make_directory()
    first.read(OWNER, [])
    created = first.apply([create_user(1), create_group(1)], OWNER)
    assert [o.status for o in created] == [OutcomeStatus.APPLIED] * 2
    # Someone edits the object before the re-run; the re-run repairs only that.
    raw.patch(
        f"/Users/{created[0].target_id}",
        json={"Operations": [{"op": "replace", "path": "title", "value": "Edited"}]},
    )
    # A new process that did not read (e.g. a saved plan) finds the object by externalId.
    second = make_directory()
    again = second.apply([create_user(1), create_group(1)], OWNER)
    assert [o.status for o in again] == [OutcomeStatus.APPLIED, OutcomeStatus.UNCHANGED]
    assert [o.target_id for o in again] == [o.target_id for o in created]
    # A new process that did read sees its own objects and does not POST again either.
    third = make_directory()
    third.read(OWNER, _all_known(1, 1))
    final = third.apply([create_user(1), create_group(1)], OWNER)
    assert [o.status for o in final] == [OutcomeStatus.UNCHANGED] * 2
    (user,) = _list(raw, "/Users")
    assert len(_list(raw, "/Groups")) == 1
    assert user["title"] == "Engineer"
    assert user["emails"] == [{"type": "work", "value": "user1@contoso.test"}]  # not doubled


def test_conflict_without_match_is_a_clear_failure(
    directory: ScimDirectory, raw: httpx.Client
) -> None:
    raw.post("/Users", json={"userName": "USER1@contoso.test", "externalId": "hr-system-1"})
    directory.read(OWNER, [])
    (outcome,) = directory.apply([create_user(1)], OWNER)
    assert outcome.status is OutcomeStatus.FAILED
    assert "409" in (outcome.message or "") and "mappings.user.match" in (outcome.message or "")
    (existing,) = _list(raw, "/Users")
    assert existing["externalId"] == "hr-system-1"  # untouched


def test_conflict_with_match_adopts(make_directory: DirectoryFactory, raw: httpx.Client) -> None:
    directory = make_directory(user_match=("userName",))
    raw.post("/Users", json={"userName": "user1@contoso.test", "externalId": "hr-system-1"})
    directory.read(OWNER, [])
    (outcome,) = directory.apply([create_user(1)], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED and outcome.target_id
    (adopted,) = _list(raw, "/Users")
    assert adopted["id"] == outcome.target_id
    assert adopted["externalId"] == eid("user", 1)
    assert adopted[ENTERPRISE_USER]["department"] == "R&D"


def test_adopt_sets_external_id(directory: ScimDirectory, raw: httpx.Client) -> None:
    existing = raw.post("/Users", json={"userName": "user1@contoso.test", "active": False})
    target_id = existing.json()["id"]
    unmanaged = directory.read(OWNER, []).users[0]
    assert unmanaged.managed_by is None
    adopt = object_change(
        Action.ADOPT,
        target_id,
        "user/user1@contoso.test",
        source_id=eid("user", 1),
        version=unmanaged.version,
        attributes=(AttributeChange("department", None, "R&D"),),
    )
    (outcome,) = directory.apply([adopt], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED and outcome.target_id == target_id
    stored = raw.get(f"/Users/{target_id}").json()
    assert (stored["externalId"], stored["active"]) == (eid("user", 1), True)
    assert directory.read(OWNER, [eid("user", 1)]).users[0].managed_by == OWNER


def test_match_filter_values_are_escaped(
    make_directory: DirectoryFactory, raw: httpx.Client
) -> None:
    """A userName built to break out of the filter literal must match only itself."""
    evil = 'x" or userName pr or userName eq "y'
    raw.post("/Users", json={"userName": "victim@contoso.test", "externalId": "v"})
    raw.post("/Users", json={"userName": evil, "externalId": "hr-evil"})
    directory = make_directory(user_match=("userName",))
    directory.read(OWNER, [])
    (outcome,) = directory.apply([create_user(1, userName=evil)], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED
    victim = _list(raw, "/Users", 'userName eq "victim@contoso.test"')[0]
    assert victim["externalId"] == "v"
    assert _list(raw, "/Users", f'externalId eq "{eid("user", 1)}"')[0]["userName"] == evil


def test_unresolvable_membership_fails_per_change(directory: ScimDirectory) -> None:
    _seed(directory, users=1, groups=0)
    outcomes = directory.apply([member(Action.ADD, 9, 1)], OWNER)
    assert outcomes[0].status is OutcomeStatus.FAILED
    assert "group is not on the target" in (outcomes[0].message or "")


def test_wrong_token_is_named(tmp_path: Path, tenant_url: str) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token", encoding="utf-8")
    directory = ScimDirectory(scim_policy(make_policy(tmp_path), tenant_url, wrong))
    try:
        with pytest.raises(TargetError, match=r"refused the token \(401 Unauthorized\)"):
            directory.read(OWNER, [])
        with pytest.raises(TargetError, match="401 Unauthorized"):
            directory.check()
    finally:
        directory.close()


def test_objects_are_listed_in_a_stable_order(directory: ScimDirectory) -> None:
    _seed(directory, users=4, groups=2)
    first = directory.read(OWNER, _all_known(4, 2))
    second = directory.read(OWNER, _all_known(4, 2))
    assert first == second
    assert [u.key for u in first.users] == sorted(u.key for u in first.users)
    assert first.users[0].kind is ObjectKind.USER
