"""Ownership is never silently lost: a SCIM target whose state was deleted (a fresh CI runner,
a new pod) is refused, recovered with ``syncctl state recover``, and then offboards as before.
Through the real binary, into a real scim2-server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.binary import copy_demo, run_syncctl
from tests.cli.test_scim_e2e import Workspace, _by_upn, _group
from tests.contract.scim_harness import ScimServer
from tests.integration.scim.fault_proxy import FaultProxy


@pytest.fixture(scope="module")
def server() -> Iterator[ScimServer]:
    with ScimServer() as running:
        yield running


@pytest.fixture
def ws(tmp_path: Path, server: ScimServer) -> Iterator[Workspace]:
    with FaultProxy(server.root) as proxy:
        yield Workspace(tmp_path, server, proxy)


def _writes(ws: Workspace) -> list[str]:
    return [
        method for method, _, _ in ws.proxy.bodies if method in ("POST", "PUT", "PATCH", "DELETE")
    ]


def test_a_lost_state_is_refused_then_recovered_and_offboarding_works(ws: Workspace) -> None:
    assert ws.run("apply", "--auto-approve").returncode == 0
    users = {u["userName"]: u for u in ws.listing("/Users")}
    managed_before = json.loads((ws.root / ".syncctl" / "demo-scim.state.json").read_text())[
        "managed"
    ]

    # A new runner: no state. Bob leaves the scope group meanwhile.
    shutil.rmtree(ws.root / ".syncctl")
    snapshot = ws.snapshot()
    bob = _by_upn(snapshot)["bob.brown@contoso.com"]["id"]
    _group(snapshot, "Password Manager Users")["members"].remove(bob)
    ws.save(snapshot)
    ws.proxy.bodies.clear()

    for command in (("plan",), ("apply", "--auto-approve")):
        refused = ws.run(*command)
        assert refused.returncode == 3, refused.stdout + refused.stderr
        line = refused.stderr.strip().splitlines()[-1]
        assert line.startswith("demo-scim: refused: the state (")
        assert "is missing or empty" in line and "32 objects this policy owns" in line
        assert str(ws.root / ".syncctl" / "demo-scim.state.json") in line
        assert "syncctl state recover" in line and "policy.yaml" in line
        assert "Restore the state" in line
    assert _writes(ws) == []

    recovered = ws.run("state", "recover")
    assert recovered.returncode == 0, recovered.stderr
    claimed = [line for line in recovered.stdout.splitlines() if line.startswith("claimed ")]
    assert len(claimed) == len(managed_before)
    assert any("bob.brown@contoso.com" in line and bob in line for line in claimed)
    state = json.loads((ws.root / ".syncctl" / "demo-scim.state.json").read_text())
    assert sorted(state["managed"]) == sorted(managed_before)
    assert _writes(ws) == []  # recovery reads; it writes only the state

    offboard = ws.run("apply", "--auto-approve")
    assert offboard.returncode == 0, offboard.stdout + offboard.stderr
    after = {u["userName"]: u for u in ws.listing("/Users")}
    assert after["bob.brown@contoso.com"]["active"] is False
    assert after["bob.brown@contoso.com"]["id"] == users["bob.brown@contoso.com"]["id"]
    assert sorted(after) == sorted(users)  # nothing duplicated, nothing lost
    assert ws.run("plan", "--detailed-exitcode").returncode == 0


def test_recover_leaves_objects_another_policy_claims(ws: Workspace) -> None:
    assert ws.run("apply", "--auto-approve").returncode == 0
    path = ws.root / ".syncctl" / "demo-scim.state.json"
    state = json.loads(path.read_text())
    theirs = sorted(state["managed"])[0]
    path.unlink()
    # Another policy of the same tenant, in the same backend, owns one of the objects.
    other = {**state, "policy": "other-app", "managed": [theirs], "synced": {}}
    (ws.root / ".syncctl" / "other-app.state.json").write_text(json.dumps(other))

    recovered = ws.run("state", "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert theirs not in recovered.stdout
    mine = json.loads(path.read_text())["managed"]
    assert theirs not in mine and sorted([*mine, theirs]) == sorted(state["managed"])


def test_sqlite_rows_marked_as_this_policys_refuse_a_lost_state_until_recovered(
    tmp_path: Path,
) -> None:
    policy = copy_demo(tmp_path)
    assert run_syncctl("apply", "--auto-approve", policy, cwd=tmp_path).returncode == 0
    state = tmp_path / ".syncctl" / "demo.state.json"
    managed = json.loads(state.read_text())["managed"]
    state.unlink()  # the database (managed_by) survives, the state does not

    refused = run_syncctl("plan", policy, cwd=tmp_path)
    assert refused.returncode == 3
    assert f"{len(managed)} objects this policy owns" in refused.stderr

    recovered = run_syncctl("state", "recover", policy, cwd=tmp_path)
    assert recovered.returncode == 0, recovered.stderr
    assert sorted(json.loads(state.read_text())["managed"]) == sorted(managed)
    again = run_syncctl("plan", "--detailed-exitcode", policy, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
