"""End to end through the real ``syncctl`` binary into a real scim2-server.

The demo tenant (policies/snapshots/demo.json) is applied, re-planned (no changes), then changed
on the Entra side (attribute change, removal from scope, disable, soft delete, hard delete,
group rename, membership changes): each must produce the right SCIM requests and converge.
A recording proxy sits between syncctl and the server to see the requests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncctl.scimpath import ENTERPRISE_USER
from tests.contract.scim_harness import ScimServer
from tests.integration.scim.fault_proxy import FaultProxy, Rule

REPO = Path(__file__).resolve().parents[2]
SYNCCTL = Path(sys.executable).with_name("syncctl")
DEMO_SNAPSHOT = REPO / "policies" / "snapshots" / "demo.json"

POLICY = """\
version: 1
name: demo-scim
tenant:
  id: contoso.onmicrosoft.com
  snapshot: snapshot.json
source:
  scope_groups: [Password Manager Users]
  groups:
    - Vault Admins
    - {{match: "^PM-"}}
target:
  type: scim
  url: {url}
  token: {{env: SCIM_TOKEN}}
mappings:
  user:
    attributes:
      userName: "[userPrincipalName]"
      displayName: "[displayName]"
      name.givenName: "[givenName]"
      name.familyName: "[surname]"
      emails[type eq "work"].value: "Coalesce([mail], [userPrincipalName])"
      title: "[jobTitle]"
      department: {{value: "[department]", default: "Unassigned"}}
      employeeNumber: "[employeeId]"
  group:
    attributes:
      displayName: "[displayName]"
deletion:
  out_of_scope: disable
  disabled: disable
  soft_deleted: disable
  hard_deleted: delete
  groups: delete
  max_deletes: 5
  max_disables: "25%"
"""

pytestmark = pytest.mark.skipif(not DEMO_SNAPSHOT.exists(), reason="demo snapshot not there")


@pytest.fixture(scope="module")
def server() -> Iterator[ScimServer]:
    with ScimServer() as running:
        yield running


@pytest.fixture
def proxy(server: ScimServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.root) as running:
        yield running


class Workspace:
    def __init__(self, root: Path, server: ScimServer, proxy: FaultProxy) -> None:
        self.root = root
        self.server = server
        self.proxy = proxy
        self.tenant = server.tenant_url().split("/")[3]
        shutil.copy(DEMO_SNAPSHOT, root / "snapshot.json")
        url = f"{proxy.root}/{self.tenant}/v2"
        (root / "policy.yaml").write_text(POLICY.format(url=url), encoding="utf-8")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCCTL_", "AZURE_"))}
        env.update(SCIM_TOKEN=self.server.token, NO_COLOR="1")
        return subprocess.run(
            [str(SYNCCTL), *args, "policy.yaml"],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def snapshot(self) -> dict[str, Any]:
        return dict(json.loads((self.root / "snapshot.json").read_text(encoding="utf-8")))

    def save(self, data: dict[str, Any]) -> None:
        (self.root / "snapshot.json").write_text(json.dumps(data, indent=2), encoding="utf-8")

    def listing(self, endpoint: str) -> list[dict[str, Any]]:
        with self.server.client(self.server.tenant_url(self.tenant)) as client:
            response = client.get(endpoint, params={"count": "1000"})
            assert response.status_code == 200
            return list(response.json().get("Resources", []))


@pytest.fixture
def ws(tmp_path: Path, server: ScimServer, proxy: FaultProxy) -> Workspace:
    return Workspace(tmp_path, server, proxy)


def _by_upn(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {u["attributes"]["userPrincipalName"]: u for u in snapshot["users"]}


def _group(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in snapshot["groups"] if g["attributes"]["displayName"] == name)


def _drop_user(snapshot: dict[str, Any], user_id: str, reason: str) -> None:
    snapshot["users"] = [u for u in snapshot["users"] if u["id"] != user_id]
    for group in snapshot["groups"]:
        group["members"] = [m for m in group["members"] if m != user_id]
    snapshot["removed"] = [r for r in snapshot["removed"] if r["id"] != user_id]
    snapshot["removed"].append({"id": user_id, "reason": reason})
    snapshot["removed"].sort(key=lambda r: r["id"])


def _sent(proxy: FaultProxy, method: str, target_id: str) -> list[dict[str, Any]]:
    return [
        json.loads(body) if body else {}
        for m, path, body in proxy.bodies
        if m == method and path.split("?")[0].endswith("/" + target_id)
    ]


def test_demo_tenant_end_to_end_then_every_entra_change(ws: Workspace) -> None:
    first = ws.run("apply", "--auto-approve")
    assert first.returncode == 0, first.stderr
    assert "0 failed" in first.stdout

    users = {u["userName"]: u for u in ws.listing("/Users")}
    groups = {g["displayName"]: g for g in ws.listing("/Groups")}
    snapshot = ws.snapshot()
    upn = _by_upn(snapshot)
    alice = users["alice.anders@contoso.com"]
    assert alice["externalId"] == upn["alice.anders@contoso.com"]["id"]
    assert (
        alice[ENTERPRISE_USER]["employeeNumber"]
        == upn["alice.anders@contoso.com"]["attributes"]["employeeId"]
    )
    assert alice["emails"] == [{"type": "work", "value": "alice.anders@contoso.com"}]
    assert sorted(groups) == ["PM-Engineering", "PM-Finance", "Vault Admins"]
    assert "gina.guest_fabrikam.com#EXT#@contoso.onmicrosoft.com" not in users
    assert "dan.disabled@contoso.com" not in users
    by_id = {u["id"]: name for name, u in users.items()}
    admins = sorted(by_id[m["value"]] for m in groups["Vault Admins"]["members"])
    expected_admins = sorted(
        u["attributes"]["userPrincipalName"]
        for u in snapshot["users"]
        if u["id"] in _group(snapshot, "Vault Admins")["members"]
        and u["attributes"]["userPrincipalName"] in users
    )
    assert admins == expected_admins

    again = ws.run("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout

    # Entra-side changes.
    ids = {name: u["id"] for name, u in users.items()}
    upn["alice.anders@contoso.com"]["attributes"]["jobTitle"] = "Principal Engineer"
    scope = _group(snapshot, "Password Manager Users")
    scope["members"].remove(upn["bob.brown@contoso.com"]["id"])
    upn["carol.chen@contoso.com"]["attributes"]["accountEnabled"] = False
    _drop_user(snapshot, upn["dave.dietrich@contoso.com"]["id"], "soft_deleted")
    _drop_user(snapshot, upn["erin.evans@contoso.com"]["id"], "hard_deleted")
    _group(snapshot, "PM-Finance")["attributes"]["displayName"] = "PM-Finance-EU"
    _group(snapshot, "Vault Admins")["members"].append(upn["heidi.hansen@contoso.com"]["id"])
    _group(snapshot, "PM-Engineering")["members"].remove(upn["frank.fischer@contoso.com"]["id"])
    ws.save(snapshot)
    ws.proxy.bodies.clear()

    planned = ws.run("plan", "--format", "json")
    assert planned.returncode == 0, planned.stderr
    summary = json.loads(planned.stdout)["summary"]
    assert summary["update"] == 2 and summary["disable"] == 3 and summary["delete"] == 1

    second = ws.run("apply", "--auto-approve")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 failed" in second.stdout

    def ops(method: str, target_id: str) -> list[dict[str, Any]]:
        return [op for body in _sent(ws.proxy, method, target_id) for op in body["Operations"]]

    assert {"op": "replace", "path": "title", "value": "Principal Engineer"} in ops(
        "PATCH", ids["alice.anders@contoso.com"]
    )
    for name in ("bob.brown@contoso.com", "carol.chen@contoso.com", "dave.dietrich@contoso.com"):
        assert {"op": "replace", "path": "active", "value": False} in ops("PATCH", ids[name])
    assert _sent(ws.proxy, "DELETE", ids["erin.evans@contoso.com"]) == [{}]
    assert {"op": "replace", "path": "displayName", "value": "PM-Finance-EU"} in ops(
        "PATCH", groups["PM-Finance"]["id"]
    )
    assert {
        "op": "add",
        "path": "members",
        "value": [{"value": ids["heidi.hansen@contoso.com"]}],
    } in ops("PATCH", groups["Vault Admins"]["id"])
    assert {
        "op": "remove",
        "path": f'members[value eq "{ids["frank.fischer@contoso.com"]}"]',
    } in ops("PATCH", groups["PM-Engineering"]["id"])
    # Nothing else was deleted, and nothing was created.
    assert [m for m, _, _ in ws.proxy.bodies if m in ("POST", "DELETE", "PUT")] == ["DELETE"]

    after = {u["userName"]: u for u in ws.listing("/Users")}
    assert "erin.evans@contoso.com" not in after
    assert [after[n]["active"] for n in ("bob.brown@contoso.com", "carol.chen@contoso.com")] == [
        False,
        False,
    ]
    assert after["alice.anders@contoso.com"]["title"] == "Principal Engineer"
    renamed = {g["displayName"] for g in ws.listing("/Groups")}
    assert renamed == {"PM-Engineering", "PM-Finance-EU", "Vault Admins"}

    converged = ws.run("plan", "--detailed-exitcode")
    assert converged.returncode == 0, converged.stdout + converged.stderr


def test_wrong_token_is_a_clear_error(ws: Workspace) -> None:
    ws.server.token, real = "wrong", ws.server.token
    try:
        result = ws.run("plan")
    finally:
        ws.server.token = real
    assert result.returncode == 1
    assert "refused the token (401 Unauthorized)" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_target_is_a_clear_error(ws: Workspace, tmp_path: Path) -> None:
    policy = (tmp_path / "policy.yaml").read_text(encoding="utf-8")
    dead = policy.replace(ws.proxy.root, "http://127.0.0.1:9")
    (tmp_path / "policy.yaml").write_text(dead, encoding="utf-8")
    result = ws.run("plan")
    assert result.returncode == 1
    assert "connection failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_plain_http_to_a_remote_host_is_refused(ws: Workspace, tmp_path: Path) -> None:
    policy = (tmp_path / "policy.yaml").read_text(encoding="utf-8")
    remote = policy.replace(ws.proxy.root, "http://vault.example.com")
    (tmp_path / "policy.yaml").write_text(remote, encoding="utf-8")
    result = ws.run("plan")
    assert result.returncode == 1
    assert "plain http" in result.stderr  # the policy loader or the target refuses it


def test_raw_server_view_is_consistent(ws: Workspace) -> None:
    """The recording proxy is transparent: a direct listing equals one through it."""
    with httpx.Client(timeout=10) as client:
        headers = {"Authorization": f"Bearer {ws.server.token}"}
        direct = client.get(f"{ws.server.root}/{ws.tenant}/v2/Users", headers=headers)
        proxied = client.get(f"{ws.proxy.root}/{ws.tenant}/v2/Users", headers=headers)
    assert direct.status_code == proxied.status_code == 200
    assert direct.json()["totalResults"] == proxied.json()["totalResults"]


def test_an_endpoint_that_is_not_scim_is_named(ws: Workspace) -> None:
    ws.proxy.add(
        Rule("status", None, "", status=200, headers={"Content-Type": "text/html"}, body=b"<html>")
    )
    result = ws.run("plan")
    assert result.returncode == 1
    assert "not a SCIM endpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_online_proves_the_target_answers_and_takes_the_token(ws: Workspace) -> None:
    assert ws.run("validate", "--online").returncode == 0
    ws.server.token, real = "wrong", ws.server.token
    try:
        refused = ws.run("validate", "--online")
        offline = ws.run("validate")
    finally:
        ws.server.token = real
    assert refused.returncode == 1
    # The policy and the part at fault are named (the CLI's exact prefix is its own business).
    assert "policy demo-scim" in refused.stderr and "target: GET " in refused.stderr
    assert "401" in refused.stderr
    assert "wrong" not in refused.stderr  # the token itself is never echoed
    assert offline.returncode == 0  # without --online nothing is contacted
