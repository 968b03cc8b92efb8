"""Benchmark of incremental reconciliation and of export, the real binary against the emulator.

    .venv/bin/python bench/bench_delta.py [--users 100000] [--repeat 3]

A generated tenant whose scope group "Password Manager Users" holds every user directly and
through a 3-level nested chain (provisioned too, with Vault Admins and ^PM-) is served by
`syncctl emulator serve --control` in its own process (its CPU does not share the client's
GIL; the control endpoint counts Graph requests per run and takes tenant changes). The
real `.venv/bin/syncctl` runs against it with a policy on a SQLite target. Measured:

  floor  a bare httpx + json loop in this process reading the scope group's
         /members/microsoft.graph.user ($select as the policy's, $top=999, $count=true,
         ConsistencyLevel: eventual, following nextLinks), keeping the users parsed
  C      `syncctl export POLICY -o FILE`: wall time (<= 1.3x floor) and peak RSS (<= 300 MB)
  apply  once, into an empty database
  A      no-change `syncctl plan` in a cron loop (the second plan after the apply: the first
         one reads the target the apply changed): Graph GETs (<= 3), wall time (<= 0.25x floor)
  B      100 Entra changes, then `syncctl plan`: Graph GETs (<= 10), and its plan equals the
         plan of `syncctl plan --refresh` (a full read) from the same state (a binary
         without --refresh gets a plain second plan, which is then a full read: said so)

The floor and export runs alternate (`--repeat` times, after one warming read, so the
emulator serves warm pages to both); ratios are of medians measured in this one run.
Prints the figures with "goal met" per row and writes bench/results/delta.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from delta_emulator import (  # noqa: E402  (this script's sibling)
    SCOPE,
    SYNCCTL,
    Served,
    build_tenant,
    floor_read,
    scope_group_id,
    serve,
    sign_in,
)

SECRET_ENV = "SYNCCTL_BENCH_DELTA_SECRET"
GOALS = {"A_gets": 3, "A_ratio": 0.25, "B_gets": 10, "C_ratio": 1.3, "C_peak_mb": 300}
POLICY = """\
version: 1
name: bench
tenant:
  id: {tenant_id}
  client_id: {client_id}
  credential:
    client_secret: {{env: {secret_env}}}
  endpoints:
    authority: {authority}
    graph: {graph}
  ca_bundle: {ca_bundle}
source:
  scope_groups: [{scope}]
  groups:
    - Vault Admins
    - {{match: "^PM-"}}
    - {{match: "^{scope} - "}}
target:
  type: sqlite
  path: bench.db
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
  max_deletes: "10%"
  max_disables: "10%"
"""


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float
    graph: dict[str, int]  # Graph requests by method
    stdout: str


def syncctl(served: Served, workdir: Path, *args: str) -> Run:
    """One CLI run: wall time, its own peak RSS (/usr/bin/time when present, else this
    process's RUSAGE_CHILDREN high-water mark) and the Graph requests the emulator saw."""
    served.control("DELETE", "requests")
    timing = workdir / "time.txt"
    wrapper = ["/usr/bin/time", "-o", str(timing), "-f", "%M"] if shutil.which("time") else []
    env = {**os.environ, SECRET_ENV: served.info["client_secret"], "NO_COLOR": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [*wrapper, SYNCCTL, *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"syncctl {' '.join(args)}: exit {done.returncode}: {done.stderr[-2000:]}")
    if wrapper:
        peak_kb = float(timing.read_text().split()[-1])
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    graph = served.control("GET", "requests")["graph"]
    return Run(round(seconds, 3), round(peak_kb / 1024, 1), graph, done.stdout)


def changes(
    tenant: dict[str, Any], count: int, domain: str
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``count`` Entra changes: disables, attribute updates, removals from a nested group,
    soft deletes, new hires added to a nested group, renames (seeded, distinct users)."""
    rng = random.Random(11)
    nested_members = [u for u in tenant["chain_members"] if u in set(tenant["in_scope"])]
    removed_from_nested = rng.sample(nested_members, min(len(nested_members), count // 6))
    others = [u for u in tenant["in_scope"] if u not in set(removed_from_nested)]
    per = count // 6
    picked = rng.sample(others, per * 4)
    disables, updates, soft_deletes, renames = (picked[i * per : (i + 1) * per] for i in range(4))
    hires = count - per * 4 - len(removed_from_nested)
    europe = tenant["chain"][0]
    ops: list[dict[str, Any]] = []
    ops += [{"op": "disable_user", "args": [u]} for u in disables]
    ops += [
        {"op": "update_user", "args": [u], "properties": {"jobTitle": f"Bench title {i}"}}
        for i, u in enumerate(updates)
    ]
    ops += [{"op": "remove_member", "args": [europe, u]} for u in removed_from_nested]
    ops += [{"op": "soft_delete_user", "args": [u]} for u in soft_deletes]
    ops += [
        {"op": "update_user", "args": [u], "properties": {"displayName": f"Renamed {i}"}}
        for i, u in enumerate(renames)
    ]
    hire_ops = [
        {
            "op": "create_user",
            "properties": {
                "userPrincipalName": f"bench.hire{i}@{domain}",
                "displayName": f"Bench Hire {i}",
                "givenName": "Bench",
                "surname": f"Hire{i}",
                "department": "Engineering",
            },
        }
        for i in range(hires)
    ]
    mix = {
        "disables": len(disables),
        "attribute_updates": len(updates),
        "removals_from_nested_group": len(removed_from_nested),
        "soft_deletes": len(soft_deletes),
        "new_hires_in_nested_group": hires,
        "renames": len(renames),
    }
    return ops + hire_ops, mix


def without_created_at(value: Any) -> Any:
    """A JSON plan without ``created_at`` (and its top-level ``digest``, which covers it)."""
    if isinstance(value, dict):
        return {
            k: without_created_at(v) for k, v in value.items() if k not in ("created_at", "digest")
        }
    if isinstance(value, list):
        return [without_created_at(v) for v in value]
    return value


def first_difference(left: Any, right: Any, where: str = "") -> str | None:
    """Where two JSON values first differ (None: equal), for the report."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            if key not in left or key not in right:
                return f"{where}/{key}: only in {'full' if key in right else 'incremental'}"
            found = first_difference(left[key], right[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        for index, (a, b) in enumerate(zip(left, right, strict=False)):
            found = first_difference(a, b, f"{where}/{index}")
            if found:
                return found
        if len(left) != len(right):
            return f"{where}: {len(left)} items incremental, {len(right)} full"
        return None
    if left != right:
        return f"{where}: incremental {str(left)[:80]!r}, full {str(right)[:80]!r}"
    return None


def plan_json(run: Run) -> Any:
    return without_created_at(json.loads(run.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/delta.json")
    args = parser.parse_args()
    has_refresh = (
        "--refresh"
        in subprocess.run(
            [SYNCCTL, "plan", "--help"], capture_output=True, text=True, check=True
        ).stdout
    )
    with tempfile.TemporaryDirectory(prefix="syncctl-bench-delta-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        tenant = build_tenant(args.users, workdir / "tenant.json")
        generated = round(time.perf_counter() - started, 1)
        with serve(workdir / "tenant.json", workdir) as served:
            results = measure(served, workdir, tenant, args, has_refresh)
    results["generate_seconds"] = generated
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def measure(
    served: Served,
    workdir: Path,
    tenant: dict[str, Any],
    args: argparse.Namespace,
    has_refresh: bool,
) -> dict[str, Any]:
    from syncctl.model import ObjectKind
    from syncctl.policy import load_policies
    from syncctl.source.reader import selected_properties

    info = served.info
    policy = workdir / "bench.yaml"
    policy.write_text(POLICY.format(secret_env=SECRET_ENV, scope=SCOPE, **info), encoding="utf-8")
    select = ",".join(sorted(selected_properties(load_policies([policy])[0])[ObjectKind.USER]))
    token = sign_in(served)
    group_id = scope_group_id(served, token)
    floor_read(served, token, group_id, select)  # warm the emulator's pages for both sides
    floors: list[float] = []
    exports: list[Run] = []
    read = 0
    for _ in range(args.repeat):
        seconds, read = floor_read(served, token, group_id, select)
        floors.append(seconds)
        exports.append(syncctl(served, workdir, "export", "bench.yaml", "-o", "export.json"))
    floor = statistics.median(floors)
    export_seconds = statistics.median(r.seconds for r in exports)
    export_peak = max(r.peak_mb for r in exports)

    apply = syncctl(served, workdir, "apply", "bench.yaml", "--auto-approve", "--format", "json")
    # The first plan after an apply reads the target (the apply changed it) and plans; with
    # nothing to do it records the quiet plan. A cron loop's runs after it are row A.
    after_apply = syncctl(served, workdir, "plan", "bench.yaml", "--format", "json")
    no_change = syncctl(served, workdir, "plan", "bench.yaml", "--format", "json")

    ops, mix = changes(tenant, args.changes, tenant["domain"])
    results = served.control("POST", "changes", {"changes": ops})
    hires = [r for r in results["results"] if isinstance(r, str)]
    served.control(
        "POST",
        "changes",
        {"changes": [{"op": "add_member", "args": [tenant["chain"][-1], h]} for h in hires]},
    )
    state_dir = workdir / ".syncctl"
    before = workdir / "state-before"
    shutil.copytree(state_dir, before)
    incremental = syncctl(served, workdir, "plan", "bench.yaml", "--format", "json")
    shutil.rmtree(state_dir)
    shutil.copytree(before, state_dir)  # the same state the incremental plan started from
    refresh_args = ["--refresh"] if has_refresh else []
    full = syncctl(served, workdir, "plan", "bench.yaml", "--format", "json", *refresh_args)
    difference = first_difference(plan_json(incremental), plan_json(full))
    same_plan = difference is None
    changed_objects = len(json.loads(full.stdout).get("policies", [{}])[0].get("changes", []))

    gets = {name: run.graph.get("GET", 0) for name, run in (("A", no_change), ("B", incremental))}
    return {
        "benchmark": "delta",
        "machine": {"python": platform.python_version(), "cpus": len(os.sched_getaffinity(0))},
        "tenant": {"users": tenant["users"], "changes": mix},
        "floor": {
            "users_read": read,
            "seconds": [round(s, 3) for s in floors],
            "median_seconds": round(floor, 3),
        },
        "C_export": {
            "seconds": [r.seconds for r in exports],
            "median_seconds": export_seconds,
            "ratio": round(export_seconds / floor, 2),
            "peak_mb": export_peak,
            "graph_requests": exports[-1].graph,
            "goal_met": export_seconds <= GOALS["C_ratio"] * floor
            and export_peak <= GOALS["C_peak_mb"],
        },
        "apply": {
            "seconds": apply.seconds,
            "peak_mb": apply.peak_mb,
            "graph_requests": apply.graph,
        },
        "first_plan_after_apply": {
            "seconds": after_apply.seconds,
            "ratio": round(after_apply.seconds / floor, 2),
            "graph_requests": after_apply.graph,
            "peak_mb": after_apply.peak_mb,
        },
        "A_no_change_plan": {
            "seconds": no_change.seconds,
            "ratio": round(no_change.seconds / floor, 2),
            "graph_requests": no_change.graph,
            "peak_mb": no_change.peak_mb,
            "goal_met": gets["A"] <= GOALS["A_gets"]
            and no_change.seconds <= GOALS["A_ratio"] * floor,
        },
        "B_plan_after_changes": {
            "seconds": incremental.seconds,
            "graph_requests": incremental.graph,
            "peak_mb": incremental.peak_mb,
            "refresh_flag": has_refresh,
            "full_read": {"seconds": full.seconds, "graph_requests": full.graph},
            "changes_planned": changed_objects,
            "same_plan_as_full_read": same_plan,
            "first_difference": difference,
            "goal_met": gets["B"] <= GOALS["B_gets"] and same_plan,
        },
        "goals": GOALS,
    }


def report(r: dict[str, Any]) -> None:
    yes = {True: "yes", False: "no"}
    floor, c, a, b = r["floor"], r["C_export"], r["A_no_change_plan"], r["B_plan_after_changes"]
    print(
        f"tenant {r['tenant']['users']} users (generated in {r['generate_seconds']} s); "
        f"floor: bare httpx read of {floor['users_read']} users {floor['median_seconds']} s "
        f"(runs {floor['seconds']})"
    )
    print(
        f"C  export: {c['median_seconds']} s = {c['ratio']}x floor (goal <= "
        f"{GOALS['C_ratio']}x), peak {c['peak_mb']} MB (goal <= {GOALS['C_peak_mb']}), "
        f"Graph {c['graph_requests']}; goal met: {yes[c['goal_met']]}"
    )
    print(f"   apply: {r['apply']['seconds']} s, peak {r['apply']['peak_mb']} MB")
    first = r["first_plan_after_apply"]
    print(
        f"   first plan after the apply (reads the target, records the quiet plan): "
        f"{first['seconds']} s = {first['ratio']}x floor, Graph {first['graph_requests']}"
    )
    print(
        f"A  no-change plan: {a['seconds']} s = {a['ratio']}x floor (goal <= "
        f"{GOALS['A_ratio']}x), Graph {a['graph_requests']} (goal GET <= {GOALS['A_gets']}); "
        f"goal met: {yes[a['goal_met']]}"
    )
    refresh = "plan --refresh" if b["refresh_flag"] else "plan (no --refresh flag yet: a full read)"
    print(
        f"B  plan after {sum(r['tenant']['changes'].values())} changes {r['tenant']['changes']}: "
        f"{b['seconds']} s, Graph {b['graph_requests']} (goal GET <= {GOALS['B_gets']}); "
        f"{b['changes_planned']} changes planned; same plan as {refresh} "
        f"({b['full_read']['seconds']} s, Graph {b['full_read']['graph_requests']}): "
        f"{yes[b['same_plan_as_full_read']]}; goal met: {yes[b['goal_met']]}"
    )
    if b["first_difference"]:
        print(f"   plans differ first at {b['first_difference']}")


if __name__ == "__main__":
    main()
