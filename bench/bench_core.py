"""Benchmark of the core: plan, apply and no-change re-plan of a large tenant into SQLite.

    .venv/bin/python bench/bench_core.py [--users 100000 --groups 2000 --memberships 300000]

A generated tenant (snapshot file, as `syncctl export` writes) goes through the same engine
the CLI uses. Each phase runs in its own process so its peak memory (ru_maxrss) is its own:
  plan     full plan against an empty database
  apply    plan + apply (the figure reported is the apply part; plan part listed too)
  replan   plan again: nothing to change
Targets (2-core machine): plan <= 20 s, apply <= 60 s, re-plan <= 10 s, peak <= 1.5 GB.
Prints the figures and writes bench/results/core.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"plan_seconds": 20.0, "apply_seconds": 60.0, "replan_seconds": 10.0, "peak_mb": 1536}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_phase(phase: str, policy_path: Path) -> dict[str, Any]:
    """Runs inside the child process."""
    from syncctl.cli.main import tune_gc
    from syncctl.policy import load_policies
    from syncctl.session import open_session

    tune_gc()  # as the console script does
    started = time.perf_counter()
    policies = load_policies([policy_path])
    figures: dict[str, Any] = {"phase": phase}
    with open_session(policies, operation="apply" if phase == "apply" else "plan") as session:
        plan = session.plan()
        figures["plan_seconds"] = round(time.perf_counter() - started, 2)
        figures["changes"] = sum(len(p.changes) for p in plan.policies)
        if phase == "apply":
            applied_at = time.perf_counter()
            result = session.apply(plan)
            figures["apply_seconds"] = round(time.perf_counter() - applied_at, 2)
            figures["failed"] = result.failed
        else:
            session.record_plan(plan)
    figures["total_seconds"] = round(time.perf_counter() - started, 2)
    figures["peak_mb"] = round(_peak_mb(), 1)
    if phase == "replan":
        figures["breakdown_seconds"] = _breakdown(policies[0])
    return figures


def _breakdown(policy: Any) -> dict[str, float]:
    """Where a no-change plan spends its time, part by part (measured after the run)."""
    from datetime import UTC, datetime

    from syncctl.plan.planner import plan_policy
    from syncctl.source import read_source
    from syncctl.targets.sqlite import SqliteDirectory

    parts: dict[str, float] = {}
    target = SqliteDirectory(policy)
    try:
        started = time.perf_counter()
        snapshot = target.read(policy.name, ())
        parts["target_read"] = round(time.perf_counter() - started, 2)
    finally:
        target.close()
    managed = sorted(u.external_id for u in snapshot.users if u.external_id)
    started = time.perf_counter()
    source = read_source(policy, managed)
    parts["source_read_snapshot_file"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    plan_policy(policy, source, snapshot, disabled_at={}, now=datetime.now(UTC))
    parts["planner"] = round(time.perf_counter() - started, 2)
    return parts


def child(phase: str, policy_path: Path) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--phase", phase, str(policy_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--memberships", type=int, default=300_000)
    parser.add_argument("--phase", choices=["plan", "apply", "replan"])
    parser.add_argument("policy", nargs="?", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/core.json")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.policy)))
        return

    from tests.integration.sqlite.tenant import make_tenant, write_fixture

    with tempfile.TemporaryDirectory(prefix="syncctl-bench-") as tmp:
        started = time.perf_counter()
        tenant = make_tenant(args.users, args.groups, args.memberships, seed=1)
        policy = write_fixture(
            Path(tmp), tenant, name="bench", max_deletes="10%", max_disables="10%"
        )
        del tenant
        generate_seconds = round(time.perf_counter() - started, 2)
        phases = {name: child(name, policy) for name in ("plan", "apply", "replan")}
        db_mb = round((Path(tmp) / "bench.db").stat().st_size / 2**20, 1)

    results = {
        "benchmark": "core",
        "tenant": {
            "users": args.users,
            "groups": args.groups,
            "memberships": args.memberships,
        },
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "generate_seconds": generate_seconds,
        "database_mb": db_mb,
        "plan": phases["plan"],
        "apply": phases["apply"],
        "replan": phases["replan"],
        "targets": TARGETS,
        "within_targets": {
            "plan": phases["plan"]["plan_seconds"] <= TARGETS["plan_seconds"],
            "apply": phases["apply"]["apply_seconds"] <= TARGETS["apply_seconds"],
            "replan": phases["replan"]["plan_seconds"] <= TARGETS["replan_seconds"],
            "peak": max(p["peak_mb"] for p in phases.values()) <= TARGETS["peak_mb"],
        },
    }
    text = json.dumps(results, indent=2, sort_keys=True)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
