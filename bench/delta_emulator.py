"""The emulator side of bench_delta.py: the tenant it serves, `syncctl emulator serve` in its
own process, its control endpoint, and the bare httpx loop every figure is compared with."""

from __future__ import annotations

import json
import selectors
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SYNCCTL = str(ROOT / ".venv" / "bin" / "syncctl")
SCOPE = "Password Manager Users"
CHAIN = ("Password Manager Users - Europe", "Password Manager Users - Germany")


@dataclass(frozen=True)
class Served:
    info: dict[str, Any]  # the `serve --json` line
    context: ssl.SSLContext

    def control(self, method: str, path: str, body: Any = None) -> Any:
        with httpx.Client(verify=self.context, timeout=120) as http:
            answer = http.request(
                method,
                f"{self.info['control']['url']}/{path}",
                headers={"Authorization": f"Bearer {self.info['control']['key']}"},
                json=body,
            )
        if answer.status_code >= 400:
            raise SystemExit(f"emulator control {method} {path}: {answer.text}")
        return answer.json() if answer.content else None


def build_tenant(users: int, path: Path) -> dict[str, Any]:
    """Every user a direct member of the scope group (so the floor's member list holds them
    all), the nested chain below it as generated. Returns the ids the changes pick from."""
    from syncctl.emulator import generate_tenant

    tenant = generate_tenant(users=users, groups=50, seed=7)
    scope = tenant.group_by_name(SCOPE)
    assert scope is not None
    tenant.members[scope["id"]] |= set(tenant.users)
    tenant.save(path)
    chain = [tenant.group_by_name(name) for name in CHAIN]
    in_scope = sorted(
        u["id"]
        for u in tenant.users.values()
        if u.get("accountEnabled") and u.get("userType") == "Member"
    )
    return {
        "users": len(tenant.users),
        "in_scope": in_scope,
        "chain": [str(g["id"]) for g in chain if g is not None],
        "chain_members": sorted(m for m in tenant.members[chain[0]["id"]] if m in tenant.users)
        if chain[0]
        else [],
        "domain": tenant.domain,
    }


@contextmanager
def serve(document: Path, workdir: Path) -> Iterator[Served]:
    process = subprocess.Popen(
        [
            *(SYNCCTL, "emulator", "serve", "--tenant", str(document)),
            *("--json", "--control", "--ca-file", str(workdir / "ca.pem")),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(300):
            raise SystemExit("the emulator printed nothing within 300 s")
        info = json.loads(process.stdout.readline())
        yield Served(info, ssl.create_default_context(cafile=info["ca_bundle"]))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def floor_read(served: Served, token: str, group_id: str, select: str) -> tuple[float, int]:
    """The bare loop: what any client must do to hold the users parsed."""
    info = served.info
    headers = {"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"}
    url: str | None = (
        f"{info['graph']}/v1.0/groups/{group_id}/members/microsoft.graph.user"
        f"?$select={select}&$top=999&$count=true"
    )
    users: list[dict[str, Any]] = []
    with httpx.Client(verify=served.context, timeout=120) as http:
        started = time.perf_counter()
        while url:
            page = json.loads(http.get(url, headers=headers).content)
            users.extend(page["value"])
            url = page.get("@odata.nextLink")
        seconds = time.perf_counter() - started
    return seconds, len(users)


def sign_in(served: Served) -> str:
    info = served.info
    with httpx.Client(verify=served.context, timeout=60) as http:
        answer = http.post(
            f"{info['authority']}/{info['tenant_id']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        return str(answer.json()["access_token"])


def scope_group_id(served: Served, token: str) -> str:
    with httpx.Client(verify=served.context, timeout=60) as http:
        answer = http.get(
            f"{served.info['graph']}/v1.0/groups",
            params={"$filter": f"displayName eq '{SCOPE}'", "$select": "id"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return str(answer.json()["value"][0]["id"])
