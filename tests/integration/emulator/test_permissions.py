"""Microsoft's permission model in the emulator: every endpoint it serves accepts exactly the
application permissions its API page documents (``syncctl.emulator.permissions.RULES``),
directly and as a ``$batch`` item; anything else answers Graph's 403. Member lists show the
kinds an app may not read with limited information.

The cases come from the table: for each example request, every permission the table accepts
for it is tried alone (the least privileged first) and must succeed, and a token holding every
other permission the table knows must get the 403. A route the emulator serves without an
example (and so without a rule) fails ``test_every_served_route_has_a_rule_and_an_example``.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.emulator.identity import DEFAULT_ROLES
from syncctl.emulator.permissions import (
    DENIED_CODE,
    DENIED_MESSAGE,
    READERS,
    RULES,
    Rule,
    can_read,
    rule_for,
)

from .conftest import GRAPH_SCOPE

DOCS = "docs/emulator.md"
PASSWORD = "xWwvJ]6NMw+bWH-d"


@dataclass(frozen=True)
class Example:
    """One request to a served endpoint; ``{user}``-style names are filled in per tenant."""

    method: str
    path: str  # under /v1.0, with its query
    ok: int = 200  # the status when permitted
    body: Any = None
    eventual: bool = False
    kind: str | None = None  # the object a deleted-items lookup finds

    @property
    def label(self) -> str:
        shown = self.path if self.body is None else f"{self.path} {sorted(self.body)}"
        return f"{self.method} {shown}"

    def rule(self) -> Rule:
        found = rule_for(self.method, "/v1.0" + self.path.partition("?")[0])
        assert found is not None, f"no permission rule for {self.label}"
        return found[0]

    def accepted(self) -> tuple[str, ...]:
        """The roles that allow this request alone, least privileged first: the route's, and
        for a deleted object its kind's, and for a PATCH each property's."""
        rule = self.rule()
        assert rule.roles is not None
        narrower: list[tuple[str, ...]] = []
        if rule.kinds is not None:
            assert self.kind is not None, self.label
            narrower.append(rule.kinds[self.kind])
        if rule.properties is not None:
            narrower.extend(rule.properties.get(name, rule.writes) for name in self.body)
        return tuple(r for r in rule.roles if all(r in n for n in narrower))


EXAMPLES = (
    Example("GET", "/users?$top=5"),
    Example("GET", "/users/$count", eventual=True),
    Example("GET", "/users/delta?$select=id,displayName"),
    Example("GET", "/users/delta()?$select=id"),
    Example("GET", "/users/{user}"),
    Example("PATCH", "/users/{user}", 204, {"jobTitle": "Permission check"}),
    Example("PATCH", "/users/{user}", 204, {"accountEnabled": True}),
    Example(
        "PATCH",
        "/users/{user}",
        204,
        {"passwordProfile": {"forceChangePasswordNextSignIn": True, "password": PASSWORD}},
    ),
    Example("GET", "/groups?$top=5"),
    Example("GET", "/groups/$count", eventual=True),
    Example("GET", "/groups/delta?$select=id,displayName"),
    Example("GET", "/groups/{group}"),
    # permitted, an id in no store answers 404: the permission is checked first, and the
    # module's groups stay for the other examples (deleting is tested in test_writes_batch)
    Example("DELETE", "/groups/00000000-0000-0000-0000-00000000dead", 404),
    Example("GET", "/groups/{group}/members?$top=5"),
    Example("GET", "/groups/{group}/members/$count", eventual=True),
    Example("GET", "/groups/{group}/members/microsoft.graph.user?$count=true", eventual=True),
    Example("GET", "/groups/{group}/transitiveMembers?$top=5"),
    Example(
        "GET", "/groups/{group}/transitiveMembers/microsoft.graph.user?$count=true", eventual=True
    ),
    Example("GET", "/directory/deletedItems/microsoft.graph.user"),
    Example("GET", "/directory/deletedItems/microsoft.graph.user/$count", eventual=True),
    Example("GET", "/directory/deletedItems/microsoft.graph.group?$select=id"),
    Example("GET", "/directory/deletedItems", 400),  # Graph needs the cast; checked first
    Example("GET", "/directory/deletedItems/{deleted_user}", kind="user"),
    Example("GET", "/directory/deletedItems/{deleted_group}", kind="group"),
    Example("POST", "/directoryObjects/getByIds", 200, {"ids": ["{user}"], "types": ["user"]}),
    Example("GET", "/directoryObjects/{user}"),
)
# Every permission the table knows: a token with all of them but the accepted ones must fail.
KNOWN = frozenset(
    role
    for rule in RULES
    for table in (
        rule.roles or (),
        *(rule.kinds or {}).values(),
        *(rule.properties or {}).values(),
        rule.writes,
    )
    for role in table
) | frozenset().union(*READERS.values())
CASES = [
    pytest.param(example, role, id=f"{example.label} [{role}]")
    for example in EXAMPLES
    for role in example.accepted()
]


@dataclass
class World:
    emu: Emulator
    http: httpx.Client
    ids: dict[str, str]
    _tokens: dict[frozenset[str], str]

    def token(self, roles: frozenset[str] | tuple[str, ...]) -> str:
        """A token of an app registered with exactly ``roles`` (one app per role set)."""
        key = frozenset(roles)
        if key not in self._tokens:
            client_id, _ = self.emu.add_application(sorted(key))
            self._tokens[key] = self.emu.mint_token(client_id=client_id)
        return self._tokens[key]

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.format_map(self.ids) if "{" in value else value
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value

    def send(self, transport: str, token: str, example: Example) -> tuple[int, Any]:
        """(status, JSON body or None) of the example sent directly or as a $batch item."""
        path, body = self.fill(example.path), self.fill(example.body)
        headers = {"ConsistencyLevel": "eventual"} if example.eventual else {}
        auth = {"Authorization": f"Bearer {token}"}
        if transport == "direct":
            response = self.http.request(
                example.method,
                f"{self.emu.graph}/v1.0{path}",
                headers={**auth, **headers},
                json=body,
            )
            is_json = "json" in response.headers.get("Content-Type", "")
            return response.status_code, response.json() if is_json else None
        item: dict[str, Any] = {"id": "1", "method": example.method, "url": path}
        if body is not None:
            headers["Content-Type"] = "application/json"
            item["body"] = body
        if headers:
            item["headers"] = headers
        return self.batch(token, [item])["1"]

    def batch(self, token: str, items: list[dict[str, Any]]) -> dict[str, tuple[int, Any]]:
        response = self.http.post(
            f"{self.emu.graph}/v1.0/$batch",
            headers={"Authorization": f"Bearer {token}"},
            json={"requests": items},
        )
        assert response.status_code == 200, response.text
        return {r["id"]: (r["status"], r.get("body")) for r in response.json()["responses"]}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    tenant = generate_tenant(users=40, groups=14, seed=11)
    scope = tenant.group_by_name("Password Manager Users")
    assert scope is not None
    users = sorted(tenant.users)
    deleted_group = tenant.create_group(
        displayName="Permission check (deleted)",
        mailNickname="permission-check",
        groupTypes=["Unified"],
        mailEnabled=True,
        securityEnabled=False,
    )
    tenant.soft_delete_group(deleted_group)  # a Microsoft 365 group: restorable, listed
    tenant.soft_delete_user(users[-1])
    with running_emulator(tenant) as emu:
        context = ssl.create_default_context(cafile=str(emu.ca_bundle))
        with httpx.Client(verify=context, timeout=10) as http:
            ids = {
                "user": users[0],
                "group": scope["id"],
                "deleted_user": users[-1],
                "deleted_group": deleted_group,
            }
            yield World(emu, http, ids, {})


def assert_denied(world: World, status: int, body: Any) -> None:
    """Graph's 403: the documented code and message, innerError shaped like the emulator's
    other errors (compared with a 404's)."""
    assert status == 403, body
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "innerError"}
    assert (error["code"], error["message"]) == (DENIED_CODE, DENIED_MESSAGE)
    missing = world.http.get(
        f"{world.emu.graph}/v1.0/users/no-such-user",
        headers={"Authorization": f"Bearer {world.token(DEFAULT_ROLES)}"},
    )
    assert missing.status_code == 404
    assert set(error["innerError"]) == set(missing.json()["error"]["innerError"])


# ---- the table, endpoint by endpoint ---------------------------------------------------------
@pytest.mark.parametrize("transport", ["direct", "batch"])
@pytest.mark.parametrize(("example", "role"), CASES)
def test_each_accepted_permission_alone_is_enough(
    world: World, example: Example, role: str, transport: str
) -> None:
    status, body = world.send(transport, world.token((role,)), example)
    assert status == example.ok, body


@pytest.mark.parametrize("transport", ["direct", "batch"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.label)
def test_every_other_permission_gets_403(world: World, example: Example, transport: str) -> None:
    others = KNOWN - set(example.accepted())
    status, body = world.send(transport, world.token(others), example)
    assert_denied(world, status, body)


def test_every_served_route_has_a_rule_and_an_example(world: World) -> None:
    """A route added to the emulator without a permission rule (and an example here) fails."""
    examples = [(e.method, "/v1.0" + e.path.partition("?")[0]) for e in EXAMPLES]
    examples.append(("POST", "/v1.0/$batch"))  # tested on its own below
    routes = [(method, pattern) for method, pattern, _ in world.emu.service._routes]
    for method, pattern in routes:
        assert any(m == method and pattern.match(p) for m, p in examples), (
            f"{method} {pattern.pattern} is served but has no example in this file (and "
            "likely no rule in syncctl/emulator/permissions.py)"
        )
    used: set[str] = set()
    for method, path in examples:
        assert any(m == method and p.match(path) for m, p in routes), f"{path} is not served"
        found = rule_for(method, path)
        assert found is not None, f"{method} {path} has no permission rule"
        used.add(f"{found[0].endpoint} {found[0].template}")
    assert [r.endpoint for r in RULES if f"{r.endpoint} {r.template}" not in used] == []


def test_docs_list_every_rule_with_its_permissions_and_page() -> None:
    text = (Path(__file__).parents[3] / DOCS).read_text()
    for rule in RULES:
        row = f"| `{rule.endpoint}`"
        line = next((ln for ln in text.splitlines() if ln.startswith(row)), None)
        assert line is not None, f"{DOCS} does not list {rule.endpoint}"
        assert rule.page.rsplit("/", 1)[-1] in line, (rule.endpoint, rule.page)
        for role in rule.roles or ():
            assert role in line, (rule.endpoint, role)


# ---- what Microsoft's pages single out -------------------------------------------------------
def test_get_by_ids_needs_directory_read_all(world: World) -> None:
    getbyids = next(e for e in EXAMPLES if "getByIds" in e.path)
    readers = ("User.Read.All", "GroupMember.Read.All", "Group.Read.All", "User.ReadWrite.All")
    assert_denied(world, *world.send("direct", world.token(readers), getbyids))
    status, body = world.send("direct", world.token(("Directory.Read.All",)), getbyids)
    assert status == 200 and [o["id"] for o in body["value"]] == [world.ids["user"]]


def test_deleted_items_need_the_permission_of_the_deleted_objects_kind(world: World) -> None:
    user = f"/directory/deletedItems/{world.ids['deleted_user']}"
    group = f"/directory/deletedItems/{world.ids['deleted_group']}"
    for roles, path in ((("Group.Read.All",), user), (("User.Read.All",), group)):
        assert_denied(world, *world.send("direct", world.token(roles), Example("GET", path)))
    for roles, path in ((("User.Read.All",), user), (("Group.Read.All",), group)):
        status, body = world.send("direct", world.token(roles), Example("GET", path))
        assert status == 200, body
    # GroupMember.Read.All reads live groups, not deleted ones (deleteditems pages)
    listing = Example("GET", "/directory/deletedItems/microsoft.graph.group")
    assert_denied(world, *world.send("direct", world.token(("GroupMember.Read.All",)), listing))
    # an id in no store is 404 for any app that passes the route's table
    absent = Example("GET", "/directory/deletedItems/00000000-0000-0000-0000-000000000000")
    assert world.send("direct", world.token(("Application.Read.All",)), absent)[0] == 404


def test_patch_checks_each_property(world: World) -> None:
    path = f"/users/{world.ids['user']}"
    enable_only = world.token(("User.EnableDisableAccount.All",))
    both = Example("PATCH", path, 204, {"accountEnabled": True, "jobTitle": "x"})
    assert_denied(world, *world.send("direct", enable_only, both))
    assert world.send("direct", world.token(("User.ReadWrite.All",)), both)[0] == 204
    # Directory.ReadWrite.All "does not allow the app to ... reset user passwords"
    password = Example("PATCH", path, 204, {"passwordProfile": {"password": PASSWORD}})
    assert_denied(world, *world.send("direct", world.token(("Directory.ReadWrite.All",)), password))


def test_default_app_reads_everything_syncctl_reads_and_writes_nothing(world: World) -> None:
    assert world.emu.roles() == DEFAULT_ROLES
    default = world.emu.mint_token()
    for example in EXAMPLES:
        status, body = world.send("direct", default, example)
        if example.method in ("PATCH", "DELETE"):
            assert_denied(world, status, body)  # syncctl never writes to Graph
        else:
            assert status == example.ok, (example.label, body)


# ---- $batch ------------------------------------------------------------------------------------
def test_batch_items_are_checked_one_by_one(world: World) -> None:
    items = [
        {"id": "users", "method": "GET", "url": "/users?$top=1"},
        {"id": "groups", "method": "GET", "url": "/groups?$top=1"},
        {
            "id": "byIds",
            "method": "POST",
            "url": "/directoryObjects/getByIds",
            "headers": {"Content-Type": "application/json"},
            "body": {"ids": [world.ids["user"]], "types": ["user"]},
        },
        {"id": "after", "method": "GET", "url": "/users?$top=1", "dependsOn": ["byIds"]},
    ]
    answers = world.batch(world.token(("User.Read.All",)), items)
    assert answers["users"][0] == 200
    assert_denied(world, *answers["groups"])
    assert_denied(world, *answers["byIds"])
    assert answers["after"][0] == 424  # a denied item fails the items that depend on it
    # a batch needs no permission of its own: a token granting nothing still gets 200
    nothing = world.batch(world.token(()), items[:2])
    assert_denied(world, *nothing["users"])
    assert_denied(world, *nothing["groups"])


# ---- limited information --------------------------------------------------------------------
@pytest.mark.parametrize(
    "roles",
    [("GroupMember.Read.All",), ("GroupMember.Read.All", "User.Read.All"), DEFAULT_ROLES],
    ids="+".join,
)
def test_member_lists_limit_the_kinds_the_app_cannot_read(
    world: World, roles: tuple[str, ...]
) -> None:
    token = world.token(roles)
    for relation in ("members", "transitiveMembers"):
        url = f"/groups/{world.ids['group']}/{relation}?$top=999"
        direct = world.send("direct", token, Example("GET", url))
        batched = world.send("batch", token, Example("GET", url))
        for status, body in (direct, batched):
            assert status == 200, body
            kinds = set()
            for item in body["value"]:
                kind = item["@odata.type"].removeprefix("#microsoft.graph.")
                kinds.add(kind)
                rest = [v for k, v in item.items() if k not in ("@odata.type", "id")]
                if can_read(roles, kind):
                    assert any(v is not None for v in rest), item
                else:
                    assert rest and all(v is None for v in rest), item
            assert {"user", "group"} <= kinds
    assert can_read(roles, "group") and can_read(roles, "user") == ("User.Read.All" in roles)


def test_can_read_knows_the_member_kinds() -> None:
    assert not can_read(("GroupMember.Read.All",), "device")
    assert can_read(("Device.Read.All",), "device")
    assert can_read(("Application.Read.All",), "servicePrincipal")
    assert not can_read(("Application.ReadWrite.OwnedBy",), "servicePrincipal")
    assert can_read(("OrgContact.Read.All",), "orgContact")
    assert all(can_read(("Directory.Read.All",), kind) for kind in READERS)
    with pytest.raises(ValueError, match="administrativeUnit"):
        can_read(DEFAULT_ROLES, "administrativeUnit")


# ---- applications and their tokens ----------------------------------------------------------
def test_an_added_application_signs_in_with_msal_and_gets_its_roles(world: World) -> None:
    client_id, secret = world.emu.add_application(["User.Read.All"])
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=f"{world.emu.authority}/{world.emu.tenant_id}",
        instance_discovery=False,
        http_client=world.http,
    )
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    token = result["access_token"]
    assert world.emu.identity.authenticate(f"Bearer {token}").roles == {"User.Read.All"}
    assert world.send("direct", token, Example("GET", "/users?$top=1"))[0] == 200
    assert_denied(world, *world.send("direct", token, Example("GET", "/groups?$top=1")))
    # its secret is its own: it does not sign in the default app
    other = msal.ConfidentialClientApplication(
        world.emu.client_id,
        client_credential=secret,
        authority=f"{world.emu.authority}/{world.emu.tenant_id}",
        instance_discovery=False,
        http_client=world.http,
    ).acquire_token_for_client(GRAPH_SCOPE)
    assert other.get("error") == "invalid_client" and 7000215 in other["error_codes"]


def test_tokens_keep_the_roles_they_were_issued_with(world: World) -> None:
    client_id, _ = world.emu.add_application(["User.Read.All"])
    before = world.emu.mint_token(client_id=client_id)
    world.emu.set_roles(["GroupMember.Read.All"], client_id)
    after = world.emu.mint_token(client_id=client_id)
    assert world.emu.roles(client_id) == ("GroupMember.Read.All",)
    users, groups = Example("GET", "/users?$top=1"), Example("GET", "/groups?$top=1")
    assert world.send("direct", before, users)[0] == 200
    assert_denied(world, *world.send("direct", before, groups))
    assert_denied(world, *world.send("direct", after, users))
    assert world.send("direct", after, groups)[0] == 200
