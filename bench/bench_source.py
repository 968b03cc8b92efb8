"""Benchmark of the Graph read path: sign-in, group lookups, member pages, removal lookups.

    .venv/bin/python bench/bench_source.py [--users 10000,100000]

For each size, a generated tenant is served by the TLS emulator (in this process, so the
peak memory figure includes the emulator's own) and read the way `syncctl plan` does
(read_source with "All Company" and "Password Manager Users" as scope groups, Vault Admins and
^PM- provisioned, 1,000 managed ids gone). Prints the figures and writes
bench/results/source.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(users: int) -> dict[str, Any]:
    from syncctl.emulator import generate_tenant, running_emulator
    from syncctl.policy.model import (
        ClientSecretCredential,
        Endpoints,
        GroupSelector,
        SecretRef,
        Tenant,
    )
    from syncctl.source import read_source
    from tests.unit.source.policies import make_policy

    tenant_data = generate_tenant(users=users, groups=50, seed=7)
    with running_emulator(tenant_data) as emu:
        os.environ["BENCH_SECRET"] = emu.client_secret
        tenant = Tenant(
            id=emu.tenant_id,
            client_id=emu.client_id,
            credential=ClientSecretCredential(SecretRef(env="BENCH_SECRET")),
            endpoints=Endpoints(authority=emu.authority, graph=emu.graph),
            ca_bundle=Path(emu.ca_bundle),
        )
        policy = make_policy(
            tenant=tenant,
            scope_groups=("All Company", "Password Manager Users"),
            groups=(GroupSelector(name="Vault Admins"), GroupSelector(pattern="^PM-")),
        )
        managed_gone = [str(uuid.UUID(int=i + 1)) for i in range(1000)]
        emu.reset_requests()
        started = time.perf_counter()
        snapshot = read_source(policy, managed_gone)
        seconds = time.perf_counter() - started
        graph = [r for r in emu.requests if r[1].startswith("/v1.0/")]
    return {
        "tenant_users": users,
        "users_in_scope": len(snapshot.users),
        "groups": len(snapshot.groups),
        "memberships": sum(len(g.members) for g in snapshot.groups.values()),
        "removed": len(snapshot.removed),
        "graph_requests": len(graph),
        "read_seconds": round(seconds, 3),
        "users_per_second": round(len(snapshot.users) / seconds),
        "process_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="10000,100000")
    args = parser.parse_args()
    results = [measure(int(n)) for n in args.users.split(",")]
    for row in results:
        print(
            f"{row['tenant_users']:>7} users: {row['users_in_scope']} in scope, "
            f"{row['graph_requests']} Graph requests, {row['read_seconds']} s "
            f"({row['users_per_second']} users/s), process peak {row['process_peak_mb']} MB"
        )
    out = ROOT / "bench" / "results" / "source.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "source",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
