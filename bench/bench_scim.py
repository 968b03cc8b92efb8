"""Benchmark: apply 10,000 users + 500 groups to scim2-server, against the raw floor.

Same run, same machine, same request bodies, same concurrency:
- floor: a bare httpx loop (one keep-alive Client per worker thread) POSTing every resource;
- syncctl: the real applier (``syncctl.apply.applier.apply_changes``, default parallelism)
  driving ``ScimDirectory`` with the create changes a plan would hold, as shipped (it uses
  /Bulk because scim2-server offers it);
- syncctl_single_requests: the same with Bulk switched off, i.e. the very POSTs of the floor;
- bulk_floor (for information): the same resources as /Bulk requests of 100 operations, to
  decide whether syncctl should use Bulk on this server.
Each variant gets a fresh scim2-server process (ASGI app under uvicorn, in memory), so store
size is equal. The variants run ``--rounds`` times in alternating order (the machine is
shared) and the best time of each is compared. Also measured, once: memberships (20 per
group) and a full read of the result.

Run: .venv/bin/python bench/bench_scim.py [--users N] [--groups M]
Writes bench/results/scim.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncctl.apply.applier import DEFAULT_PARALLELISM, apply_changes  # noqa: E402
from syncctl.model import ObjectKind  # noqa: E402
from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, Reason  # noqa: E402
from syncctl.policy.model import ScimTarget, SecretRef  # noqa: E402
from syncctl.scimpath import to_resource  # noqa: E402
from syncctl.targets.base import OutcomeStatus  # noqa: E402
from syncctl.targets.scim import ScimDirectory  # noqa: E402
from tests.contract.policy_factory import make_policy  # noqa: E402

SERVER = """
import sys, uvicorn
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.service import ScimService
from scim2_server.utils import load_default_provider
provider = load_default_provider()
app = ASGIApplication(AsyncInMemoryStorage(), provider, ScimService(provider, secret="bench"))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def scim_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    base = f"http://127.0.0.1:{port}/v2"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/ServiceProviderConfig", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError("scim2-server did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def user_change(n: int) -> Change:
    upn = f"bench.user{n:05d}@contoso.com"
    attrs = {
        "userName": upn,
        "displayName": f"Bench User {n}",
        "name.givenName": "Bench",
        "name.familyName": f"User{n}",
        'emails[type eq "work"].value': upn,
        "department": f"Dept {n % 20}",
    }
    return Change(
        address=f"user/{upn}",
        kind=ChangeKind.USER,
        action=Action.CREATE,
        reason=Reason.ENTERED_SCOPE,
        source_id=f"00000000-0000-4000-8000-{n:012d}",
        attributes=tuple(AttributeChange(k, None, v) for k, v in sorted(attrs.items())),
    )


def group_change(n: int) -> Change:
    name = f"Bench Group {n:04d}"
    return Change(
        address=f"group/{name}",
        kind=ChangeKind.GROUP,
        action=Action.CREATE,
        reason=Reason.ENTERED_SCOPE,
        source_id=f"11111111-0000-4000-8000-{n:012d}",
        attributes=(AttributeChange("displayName", None, name),),
    )


def body_of(change: Change) -> tuple[str, dict[str, Any]]:
    """Exactly the body ScimDirectory POSTs for a create."""
    kind = ObjectKind.USER if change.kind is ChangeKind.USER else ObjectKind.GROUP
    body = to_resource({a.path: a.after for a in change.attributes}, kind)
    body["externalId"] = change.source_id
    if kind is ObjectKind.USER:
        body["active"] = True
    return ("/Users" if kind is ObjectKind.USER else "/Groups"), body


def run_workers(workers: int, items: list[Any], work: Callable[[httpx.Client, Any], None]) -> None:
    pending: queue.Queue[Any] = queue.Queue()
    for item in items:
        pending.put(item)
    errors: list[BaseException] = []

    def loop() -> None:
        with httpx.Client(timeout=60, headers={"Authorization": "Bearer bench"}) as client:
            while True:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    work(client, item)
                except BaseException as exc:
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def floor(base: str, changes: list[Change], workers: int) -> float:
    bodies = [body_of(c) for c in changes]
    headers = {"Content-Type": "application/scim+json"}

    def post(client: httpx.Client, item: tuple[str, dict[str, Any]]) -> None:
        endpoint, body = item
        response = client.post(base + endpoint, content=json.dumps(body), headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"floor POST {endpoint}: {response.status_code}")

    started = time.perf_counter()
    run_workers(workers, bodies, post)
    return time.perf_counter() - started


def bulk_floor(base: str, changes: list[Change], workers: int, per_request: int) -> float:
    ops = [
        {"method": "POST", "path": endpoint, "bulkId": f"b{i}", "data": body}
        for i, (endpoint, body) in enumerate(body_of(c) for c in changes)
    ]
    requests = [ops[i : i + per_request] for i in range(0, len(ops), per_request)]
    headers = {"Content-Type": "application/scim+json"}

    def send(client: httpx.Client, operations: list[dict[str, Any]]) -> None:
        payload = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": operations,
        }
        response = client.post(base + "/Bulk", content=json.dumps(payload), headers=headers)
        results = response.json().get("Operations", [])
        if response.status_code != 200 or any(r.get("status") != "201" for r in results):
            raise RuntimeError(f"bulk: {response.status_code}")

    started = time.perf_counter()
    run_workers(workers, requests, send)
    return time.perf_counter() - started


class NullJournal:
    def owned(self, entra_ids: Any) -> None:
        pass

    def applied(self, results: Any, when: datetime) -> None:
        pass


def directory_for(base: str, tmp: Path, *, bulk: bool | None = None) -> ScimDirectory:
    token = tmp / "token"
    token.write_text("bench", encoding="utf-8")
    policy = make_policy(tmp, "bench")
    target = ScimTarget(url=base, token=SecretRef(file=token))
    return ScimDirectory(replace(policy, target=target), bulk=bulk)


def syncctl_apply(directory: ScimDirectory, changes: list[Change], parallelism: int) -> float:
    started = time.perf_counter()
    report = apply_changes(
        changes,
        directory,
        owner="bench",
        journal=NullJournal(),
        clock=lambda: datetime.now(UTC),
        parallelism=parallelism,
    )
    elapsed = time.perf_counter() - started
    bad = [r for r in report.results if r.outcome.status is not OutcomeStatus.APPLIED]
    if bad or report.aborted:
        raise RuntimeError(f"syncctl apply: {len(bad)} not applied ({report.aborted})")
    return elapsed


def membership_changes(users: int, groups: int, per_group: int) -> list[Change]:
    changes = []
    for g in range(groups):
        for k in range(per_group):
            n = (g * per_group + k) % users
            changes.append(
                Change(
                    address=f"membership/Bench Group {g:04d}/bench.user{n:05d}@contoso.com",
                    kind=ChangeKind.MEMBERSHIP,
                    action=Action.ADD,
                    reason=Reason.MEMBER_IN_SCOPE,
                    group=f"11111111-0000-4000-8000-{g:012d}",
                    user=f"00000000-0000-4000-8000-{n:012d}",
                )
            )
    return changes


def run_floor(base: str, changes: list[Change], args: argparse.Namespace, tmp: Path) -> float:
    return floor(base, changes, args.parallelism)


def run_bulk_floor(base: str, changes: list[Change], args: argparse.Namespace, tmp: Path) -> float:
    return bulk_floor(base, changes, args.parallelism, 100)


def run_syncctl(base: str, changes: list[Change], args: argparse.Namespace, tmp: Path) -> float:
    directory = directory_for(base, tmp)
    try:
        directory.read("bench", [])  # as a real apply does; the target is empty
        return syncctl_apply(directory, changes, args.parallelism)
    finally:
        directory.close()


def run_single(base: str, changes: list[Change], args: argparse.Namespace, tmp: Path) -> float:
    directory = directory_for(base, tmp, bulk=False)
    try:
        directory.read("bench", [])
        return syncctl_apply(directory, changes, args.parallelism)
    finally:
        directory.close()


VARIANTS: dict[str, Callable[[str, list[Change], argparse.Namespace, Path], float]] = {
    "floor": run_floor,
    "syncctl": run_syncctl,
    "syncctl_single_requests": run_single,
    "bulk_floor": run_bulk_floor,
}


def extras(changes: list[Change], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Memberships and a full read, on top of one syncctl apply (for information)."""
    with scim_server() as base:
        directory = directory_for(base, tmp)
        try:
            directory.read("bench", [])
            syncctl_apply(directory, changes, args.parallelism)
            members = membership_changes(args.users, args.groups, args.members_per_group)
            membership_seconds = syncctl_apply(directory, members, args.parallelism)
            known = [c.source_id for c in changes if c.source_id]
            started = time.perf_counter()
            snapshot = directory.read("bench", known)
            read_seconds = time.perf_counter() - started
            assert len(snapshot.users) == args.users and len(snapshot.groups) == args.groups
        finally:
            directory.close()
    return {
        "membership_adds": len(members),
        "membership_seconds": round(membership_seconds, 3),
        "read_after_seconds": round(read_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--members-per-group", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=DEFAULT_PARALLELISM)
    parser.add_argument("--rounds", type=int, default=2, help="order alternates per round")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scim.json")
    args = parser.parse_args()
    changes = [user_change(n) for n in range(args.users)]
    changes = [group_change(n) for n in range(args.groups)] + changes
    total = len(changes)
    tmp = ROOT / "bench" / "results" / f".tmp-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for round_number in range(args.rounds):
            # The machine is shared: alternate the order so that load does not favour one.
            order = list(VARIANTS) if round_number % 2 == 0 else list(reversed(VARIANTS))
            for name in order:
                with scim_server() as base:
                    samples[name].append(VARIANTS[name](base, changes, args, tmp))
                print(f"round {round_number + 1}: {name} {samples[name][-1]:.2f}s", flush=True)
        info = extras(changes, args, tmp)
    finally:
        for child in tmp.iterdir():
            child.unlink()
        tmp.rmdir()
    best = {name: min(values) for name, values in samples.items()}
    ratio = best["syncctl"] / best["floor"]
    single_ratio = best["syncctl_single_requests"] / best["floor"]
    result = {
        "benchmark": "scim apply: create users + groups on scim2-server (ASGI/uvicorn)",
        "users": args.users,
        "groups": args.groups,
        "parallelism": args.parallelism,
        "requests": total,
        "rounds": args.rounds,
        "samples_seconds": {k: [round(v, 3) for v in vs] for k, vs in samples.items()},
        "floor_seconds": round(best["floor"], 3),
        "floor_per_second": round(total / best["floor"], 1),
        "syncctl_seconds": round(best["syncctl"], 3),
        "syncctl_per_second": round(total / best["syncctl"], 1),
        "ratio_syncctl_to_floor": round(ratio, 3),
        "target_ratio": 1.25,
        "within_target": ratio <= 1.25,
        "syncctl_single_requests_seconds": round(best["syncctl_single_requests"], 3),
        "ratio_syncctl_single_requests_to_floor": round(single_ratio, 3),
        "bulk_floor_seconds": round(best["bulk_floor"], 3),
        "bulk_ops_per_request": 100,
        **info,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
