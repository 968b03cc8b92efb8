"""Offline reads (tenant.snapshot): the demo snapshot and scope evaluation against it.

Expectations are computed straight from the JSON file with plain loops, not with the code
under test, so a bug in scope.py cannot agree with itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from syncctl.errors import SnapshotError
from syncctl.model import RemovalReason
from syncctl.policy.model import FilterClause, FilterOp, GroupSelector
from syncctl.source import load_snapshot, read_source
from tests.unit.source.policies import DEMO_SNAPSHOT, snapshot_policy


def _raw() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DEMO_SNAPSHOT.read_text(encoding="utf-8"))
    return document


def _group(raw: dict[str, Any], name: str) -> dict[str, Any]:
    (group,) = [g for g in raw["groups"] if g["attributes"]["displayName"] == name]
    return group


def test_demo_snapshot_has_what_the_demo_needs() -> None:
    snapshot = load_snapshot(DEMO_SNAPSHOT)
    assert 20 <= len(snapshot.users) <= 40
    names = {g.attributes["displayName"] for g in snapshot.groups.values()}
    assert {"Password Manager Users", "Vault Admins"} <= names
    assert len([n for n in names if n.startswith("PM-")]) == 2
    users = [u.attributes for u in snapshot.users.values()]
    assert len([u for u in users if u["userType"] == "Guest"]) == 1
    assert len([u for u in users if u["accountEnabled"] is False]) == 1
    assert all("department" in u and "employeeId" in u for u in users)
    # The file is exactly what write_snapshot produces (sorted, deterministic).
    from syncctl.source.snapshot import dumps_snapshot

    assert dumps_snapshot(snapshot) == DEMO_SNAPSHOT.read_text(encoding="utf-8")


def _expected_users(raw: dict[str, Any], *, guests: bool, disabled: bool) -> set[str]:
    users = {u["id"]: u["attributes"] for u in raw["users"]}
    members = _group(raw, "Password Manager Users")["members"]
    return {
        m
        for m in members
        if m in users
        and (guests or users[m]["userType"] != "Guest")
        and (disabled or users[m]["accountEnabled"] is True)
    }


@pytest.mark.parametrize(("guests", "disabled"), [(False, False), (True, False), (True, True)])
def test_scope_matches_independent_expectation(guests: bool, disabled: bool) -> None:
    raw = _raw()
    policy = snapshot_policy(include_guests=guests, include_disabled=disabled)
    snapshot = read_source(policy, managed_ids=())
    expected = _expected_users(raw, guests=guests, disabled=disabled)
    assert set(snapshot.users) == expected
    provisioned = {
        g["id"]: g
        for g in raw["groups"]
        if g["attributes"]["displayName"] == "Vault Admins"
        or re.search("^PM-", g["attributes"]["displayName"])
    }
    assert set(snapshot.groups) == set(provisioned)
    for group_id, group in provisioned.items():
        assert snapshot.groups[group_id].members == tuple(
            sorted(m for m in group["members"] if m in expected)
        )
    assert snapshot.removed == {}


def test_removed_reasons_follow_the_file_and_precedence() -> None:
    raw = _raw()
    users = {u["id"]: u["attributes"] for u in raw["users"]}
    disabled = next(i for i, a in users.items() if a["accountEnabled"] is False)
    guest = next(i for i, a in users.items() if a["userType"] == "Guest")
    recorded = {r["id"]: r["reason"] for r in raw["removed"]}
    unknown = "00000000-0000-0000-0000-00000000dead"
    in_scope = next(iter(_expected_users(raw, guests=False, disabled=False)))
    managed = {disabled, guest, unknown, in_scope, *recorded}
    snapshot = read_source(snapshot_policy(), managed_ids=managed)
    assert snapshot.removed == {
        disabled: RemovalReason.DISABLED,
        guest: RemovalReason.OUT_OF_SCOPE,
        unknown: RemovalReason.OUT_OF_SCOPE,
        **{i: RemovalReason(r) for i, r in recorded.items()},
    }
    assert in_scope in snapshot.users


def test_scope_group_by_id_equals_by_name() -> None:
    group_id = _group(_raw(), "Password Manager Users")["id"]
    by_name = read_source(snapshot_policy(), ())
    by_id = read_source(snapshot_policy(scope_groups=(group_id,)), ())
    assert by_id.fingerprint() == by_name.fingerprint()


def test_unknown_scope_group_is_an_error_not_an_empty_scope() -> None:
    with pytest.raises(SnapshotError, match='no group is named "Nobody"'):
        read_source(snapshot_policy(scope_groups=("Nobody",)), ())


def test_ambiguous_group_name_lists_candidates(tmp_path: Path) -> None:
    raw = _raw()
    twin = json.loads(json.dumps(_group(raw, "Vault Admins")))
    twin_id = "99999999-9999-9999-9999-999999999999"
    twin["id"] = twin["attributes"]["id"] = twin_id
    twin["attributes"]["displayName"] = "vault admins"
    raw["groups"].append(twin)
    path = tmp_path / "twins.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(SnapshotError, match=rf"matches 2 groups: .*{twin_id}.*use an object id"):
        read_source(snapshot_policy(path), ())


def test_unknown_group_id_selector_is_an_error() -> None:
    missing = "12345678-1234-1234-1234-123456789012"
    with pytest.raises(SnapshotError, match=f"group {missing} does not exist"):
        read_source(snapshot_policy(groups=(GroupSelector(id=missing),)), ())


def test_scoping_filters_apply_offline() -> None:
    expressions = pytest.importorskip("syncctl.expressions")
    if not hasattr(expressions, "compile_filters"):
        pytest.skip("syncctl.expressions.compile_filters is not merged yet")
    raw = _raw()
    users = {u["id"]: u["attributes"] for u in raw["users"]}
    clauses = (
        (
            FilterClause("department", FilterOp.NOT_EQUALS, "Contractors"),
            FilterClause("jobTitle", FilterOp.IS_NOT_NULL),
        ),
    )
    snapshot = read_source(snapshot_policy(filters=clauses), ())
    expected = {
        i
        for i in _expected_users(raw, guests=False, disabled=False)
        if users[i]["department"] != "Contractors" and users[i]["jobTitle"] is not None
    }
    assert set(snapshot.users) == expected
    assert len(expected) < len(_expected_users(raw, guests=False, disabled=False))
