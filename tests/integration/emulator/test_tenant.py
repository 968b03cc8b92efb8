"""The tenant model and generator, and property tests of the query engine (no sockets: the
Graph service is called directly, the same code the HTTPS server runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncctl.emulator import EmulatorTenant, generate_tenant, load_tenant
from syncctl.emulator.faults import Faults
from syncctl.emulator.graph import GraphService
from syncctl.emulator.identity import Identity
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.tenant import ChangeOp, TenantError
from syncctl.emulator.throttle import ResourceUnitBudget

SMALL = generate_tenant(users=120, groups=24, seed=11)


def test_generation_is_deterministic_per_seed() -> None:
    first = generate_tenant(users=200, groups=30, seed=5).to_document()
    again = generate_tenant(users=200, groups=30, seed=5).to_document()
    other = generate_tenant(users=200, groups=30, seed=6).to_document()
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert first["users"] != other["users"]


def test_generated_tenant_is_realistic() -> None:
    tenant = generate_tenant(users=1000, groups=50, seed=7)
    users = list(tenant.users.values())
    assert len(users) == 1000 and len(tenant.groups) == 50
    upns = [u["userPrincipalName"].lower() for u in users]
    assert len(set(upns)) == len(upns)
    guests = [u for u in users if u["userType"] == "Guest"]
    assert 20 <= len(guests) <= 90 and all("#EXT#@" in g["userPrincipalName"] for g in guests)
    disabled = [u for u in users if not u["accountEnabled"]]
    assert 20 <= len(disabled) <= 90
    assert len({u["department"] for u in users if u["department"]}) >= 8
    assert all(u["jobTitle"] for u in users if u["userType"] == "Member")
    names = {g["displayName"]: k for k, g in tenant.groups.items()}
    for required in (
        "Password Manager Users",
        "Vault Admins",
        "PM-Engineering",
        "PM-Archive",
        "All Company",
    ):
        assert required in names
    assert tenant.members[names["PM-Archive"]] == set()
    largest = max(tenant.members.values(), key=len)
    assert largest == tenant.members[names["All Company"]] and len(largest) > 800
    kinds = {tuple(g["groupTypes"]) for g in tenant.groups.values()}
    assert kinds == {(), ("Unified",)}
    # a 3-level chain below the scope group
    level1 = names["Password Manager Users - Europe"]
    level2 = names["Password Manager Users - Germany"]
    level3 = names["Password Manager Users - Berlin"]
    assert level1 in tenant.members[names["Password Manager Users"]]
    assert level2 in tenant.members[level1] and level3 in tenant.members[level2]
    assert {level1, level2, level3} <= set(
        tenant.transitive_members(names["Password Manager Users"])
    )


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    tenant = generate_tenant(users=30, groups=12, seed=2)
    tenant.soft_delete_user(sorted(tenant.users)[0])
    path = tmp_path / "tenant.json"
    tenant.save(path)
    loaded = load_tenant(path)
    assert loaded.to_document() == tenant.to_document()
    assert loaded.changes == []  # a loaded tenant starts a fresh change log


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read tenant document"),
        ('{"format": "other"}', "not a tenant document"),
        (
            json.dumps(
                {
                    "format": "syncctl-emulator-tenant",
                    "tenant_id": "t",
                    "domain": "d",
                    "users": [],
                    "groups": [{"id": "g", "displayName": "G", "members": ["ghost"]}],
                }
            ),
            "unknown member ghost",
        ),
        (
            json.dumps(
                {
                    "format": "syncctl-emulator-tenant",
                    "tenant_id": "t",
                    "domain": "d",
                    "users": [{"displayName": "no id"}],
                }
            ),
            "malformed",
        ),
    ],
)
def test_bad_tenant_documents_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TenantError, match=message) as caught:
        load_tenant(path)
    assert str(path) in str(caught.value)


def test_mutations_log_changes_in_order() -> None:
    tenant = generate_tenant(users=20, groups=12, seed=1)
    assert tenant.seq == 0
    user = tenant.create_user(displayName="A B", userPrincipalName="a.b@contoso.example")
    group = tenant.create_group(displayName="New Group")
    tenant.add_member(group, user)
    tenant.update_user(user, jobTitle="Tester")
    tenant.soft_delete_user(user)
    tenant.restore_user(user)
    tenant.remove_member(group, user)
    tenant.hard_delete_user(user)
    ops = [(c.kind, c.op, c.member_id) for c in tenant.changes]
    assert ops == [
        ("user", ChangeOp.UPSERT, None),
        ("group", ChangeOp.UPSERT, None),
        ("group", ChangeOp.MEMBER_ADD, user),
        ("user", ChangeOp.UPSERT, None),
        ("group", ChangeOp.MEMBER_REMOVE, user),
        ("user", ChangeOp.SOFT_DELETE, None),
        ("user", ChangeOp.RESTORE, None),
        ("group", ChangeOp.MEMBER_ADD, user),
        ("group", ChangeOp.MEMBER_REMOVE, user),
        ("user", ChangeOp.HARD_DELETE, None),
    ]
    assert [c.seq for c in tenant.changes] == list(range(1, 11))
    assert tenant.changes[3].properties == frozenset({"jobTitle"})


def test_mutations_entra_would_refuse() -> None:
    tenant = generate_tenant(users=20, groups=12, seed=1)
    existing = next(iter(tenant.users.values()))
    with pytest.raises(TenantError, match="already exists"):
        tenant.create_user(
            displayName="Dup", userPrincipalName=existing["userPrincipalName"].upper()
        )
    with pytest.raises(TenantError, match="unknown user property"):
        tenant.update_user(existing["id"], shoeSize=44)
    with pytest.raises(TenantError, match="read-only"):
        tenant.update_user(existing["id"], createdDateTime="2020-01-01T00:00:00Z")
    with pytest.raises(TenantError, match="does not exist"):
        tenant.soft_delete_user("missing")
    with pytest.raises(TenantError, match="not in deleted items"):
        tenant.restore_user(existing["id"])
    group = sorted(tenant.groups)[0]
    with pytest.raises(TenantError, match="does not exist"):
        tenant.add_member(group, "missing")
    with pytest.raises(TenantError, match="itself"):
        tenant.add_member(group, group)
    assert tenant.user_by_upn(existing["userPrincipalName"].upper())["id"] == existing["id"]  # type: ignore[index]
    assert tenant.group_by_name("no such group") is None


def _service(tenant: EmulatorTenant) -> tuple[GraphService, str]:
    identity = Identity("https://emulator.test", tenant.tenant_id, tenant.domain)
    service = GraphService(
        tenant, "https://emulator.test", identity, Faults(), ResourceUnitBudget()
    )
    return service, identity.mint_token()


def _get(service: GraphService, token: str, target: str, eventual: bool = False) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if eventual:
        headers["ConsistencyLevel"] = "eventual"
    response = service.handle(GraphRequest.from_target("GET", target, headers))
    assert response.status == 200, response.body
    return json.loads(response.body)


def _all_ids(service: GraphService, token: str, target: str, eventual: bool = False) -> list[str]:
    ids: list[str] = []
    url: str | None = target
    while url:
        page = _get(service, token, url.removeprefix("https://emulator.test"), eventual)
        ids.extend(item["id"] for item in page["value"])
        url = page.get("@odata.nextLink")
    return ids


SERVICE, TOKEN = _service(SMALL)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top=st.integers(min_value=1, max_value=999))
def test_paging_any_top_returns_every_user_once(top: int) -> None:
    ids = _all_ids(SERVICE, TOKEN, f"/v1.0/users?$top={top}&$select=id")
    assert len(ids) == len(set(ids)) == len(SMALL.users)


USER_VALUES = sorted(SMALL.users.values(), key=lambda u: u["id"])
TEXT_PROPS = ("displayName", "givenName", "surname", "jobTitle", "userPrincipalName", "mail")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return "'" + str(value).replace("'", "''") + "'"


@st.composite
def clauses(draw: st.DrawFn) -> tuple[str, Any]:
    """A $filter clause and the Python predicate it must mean."""
    user = draw(st.sampled_from(USER_VALUES))
    kind = draw(st.sampled_from(["eq", "startswith", "in", "bool"]))
    if kind == "bool":
        prop = draw(st.sampled_from(["accountEnabled"]))
        value = draw(st.booleans())
        return f"{prop} eq {_literal(value)}", lambda u: u[prop] == value
    prop = draw(st.sampled_from(TEXT_PROPS))
    value = user[prop]
    if kind == "eq":
        return f"{prop} eq {_literal(value)}", lambda u: _fold(u[prop]) == _fold(value)
    if kind == "startswith" and isinstance(value, str):
        prefix = value[: draw(st.integers(min_value=0, max_value=len(value)))]
        return (
            f"startswith({prop},{_literal(prefix)})",
            lambda u: isinstance(u[prop], str) and u[prop].lower().startswith(prefix.lower()),
        )
    others = draw(st.lists(st.sampled_from(USER_VALUES), min_size=1, max_size=4))
    values = [o[prop] for o in others] + [value]
    folded = {_fold(v) for v in values}
    return (
        f"{prop} in ({', '.join(_literal(v) for v in values)})",
        lambda u: _fold(u[prop]) in folded,
    )


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=clauses(), second=clauses(), joiner=st.sampled_from(["and", "or"]))
def test_filter_matches_a_reference_predicate(
    first: tuple[str, Any], second: tuple[str, Any], joiner: str
) -> None:
    text = f"({first[0]}) {joiner} {second[0]}"
    expected = {
        u["id"]
        for u in USER_VALUES
        if (first[1](u) and second[1](u) if joiner == "and" else first[1](u) or second[1](u))
    }
    from urllib.parse import quote

    ids = _all_ids(SERVICE, TOKEN, f"/v1.0/users?$select=id&$top=999&$filter={quote(text)}")
    assert set(ids) == expected, text
