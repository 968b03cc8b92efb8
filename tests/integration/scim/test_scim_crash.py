"""SIGKILL ``syncctl apply`` at random points, run it again, and converge without duplicates."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncctl.state import read_lock
from tests.contract.scim_harness import ScimServer

SYNCCTL = Path(sys.executable).with_name("syncctl")
USERS, GROUPS = 600, 12

POLICY = """\
version: 1
name: crash
tenant: {{id: contoso.onmicrosoft.com, snapshot: snapshot.json}}
source:
  scope_groups: [Everyone]
  groups: [{{match: "^Team "}}]
target:
  type: scim
  url: {url}
  token: {{env: SCIM_TOKEN}}
deletion: {{max_deletes: 5, max_disables: 5}}
"""


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _snapshot(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    users = []
    for n in range(USERS):
        uid = _guid(rng)
        upn = f"crash.user{n:04d}@contoso.com"
        users.append(
            {
                "id": uid,
                "attributes": {
                    "id": uid,
                    "userPrincipalName": upn,
                    "displayName": f"Crash User {n}",
                    "givenName": "Crash",
                    "surname": f"User{n}",
                    "mail": upn,
                    "jobTitle": "Tester",
                    "department": f"Dept {n % 5}",
                    "accountEnabled": True,
                    "userType": "Member",
                },
            }
        )
    ids = [str(u["id"]) for u in users]
    groups = [_group(rng, "Everyone", ids)]
    for g in range(GROUPS):
        groups.append(_group(rng, f"Team {g}", ids[g::GROUPS]))
    return {
        "$schema": "https://syncctl.dev/schemas/snapshot.schema.json",
        "format_version": 1,
        "tenant": "contoso.onmicrosoft.com",
        "users": sorted(users, key=lambda u: u["id"]),
        "groups": sorted(groups, key=lambda g: g["id"]),
        "removed": [],
    }


def _group(rng: random.Random, name: str, members: list[str]) -> dict[str, Any]:
    gid = _guid(rng)
    attributes = {
        "id": gid,
        "displayName": name,
        "groupTypes": [],
        "mailEnabled": False,
        "securityEnabled": True,
    }
    return {"id": gid, "attributes": attributes, "members": sorted(members)}


def _all(client: httpx.Client, endpoint: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = client.get(endpoint, params={"startIndex": str(len(found) + 1), "count": "1000"})
        resources = page.json().get("Resources", [])
        found.extend(resources)
        if not resources or len(found) >= page.json()["totalResults"]:
            return found


@pytest.mark.slow
def test_sigkill_during_apply_then_rerun_converges(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    with ScimServer() as server:
        url = server.tenant_url()
        (tmp_path / "snapshot.json").write_text(json.dumps(_snapshot(11)), encoding="utf-8")
        (tmp_path / "policy.yaml").write_text(POLICY.format(url=url), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCCTL_", "AZURE_"))}
        env["SCIM_TOKEN"] = server.token
        command = [str(SYNCCTL), "apply", "--auto-approve", "policy.yaml"]

        # Random kill points, chosen by progress on the server (or the run's lock) so that
        # load on the shared machine cannot move them: twice while users are being created,
        # once in the membership phase, once early (the run holds its lock and is reading).
        kill_points: list[tuple[str, int]] = [
            ("users", rng.randint(50, USERS // 2)),
            ("users", rng.randint(USERS // 2 + 1, USERS - 50)),
            ("members", rng.randint(1, USERS // 2)),
            ("locked", 0),
        ]
        lock = tmp_path / ".syncctl" / "crash.state.json.lock"
        kills, users_at_kill = 0, []
        with server.client(url) as client:

            def user_count() -> int:
                return int(client.get("/Users", params={"count": "0"}).json()["totalResults"])

            def member_count() -> int:
                groups = _all(client, "/Groups")
                return sum(len(g.get("members", [])) for g in groups)

            def reached(kind: str, point: int, pid: int) -> bool:
                if kind == "users":
                    return user_count() >= point
                if kind == "members":
                    return user_count() >= USERS and member_count() >= point
                holder = read_lock(lock)
                return holder is not None and holder.pid == pid

            for kind, point in kill_points:
                process = subprocess.Popen(
                    command,
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                while process.poll() is None and not reached(kind, point, process.pid):
                    time.sleep(0.02)
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    kills += 1
                process.wait(timeout=30)
                users_at_kill.append(user_count())
        assert kills >= 3, f"apply finished before it could be killed ({users_at_kill})"
        # At least one kill landed in the middle of the user creates.
        assert any(0 < n < USERS for n in users_at_kill), users_at_kill

        final = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
        replan = subprocess.run(
            [str(SYNCCTL), "plan", "--detailed-exitcode", "policy.yaml"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert replan.returncode == 0, replan.stdout[-2000:]

        with server.client(url) as client:
            users, groups = _all(client, "/Users"), _all(client, "/Groups")
        assert len(users) == USERS
        assert len(groups) == GROUPS + 0  # the scope group is not provisioned
        for listing, key in ((users, "userName"), (groups, "displayName")):
            duplicates = {k: n for k, n in Counter(r[key] for r in listing).items() if n > 1}
            assert duplicates == {}
            assert len({r["externalId"] for r in listing}) == len(listing)
        user_ids = {u["id"] for u in users}
        for group in groups:
            members = [m["value"] for m in group.get("members", [])]
            assert len(members) == len(set(members)) == USERS // GROUPS
            assert set(members) <= user_ids
