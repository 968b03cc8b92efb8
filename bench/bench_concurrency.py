"""Benchmark of policies planned at once against a distant tenant (issue: MSPs with hundreds
of client tenants must reconcile them within a cron interval).

    .venv/bin/python bench/bench_concurrency.py [--policies 1,4,32] [--latency 0.3]

Serves a generated tenant with the TLS emulator (in this process) adding ``--latency``
seconds to every request, writes N copies of a client-secret policy (each with its own SQLite
target and state), and times the real ``syncctl plan`` binary over all of them, once with the
default ``--concurrency`` (4) and once with ``--concurrency N``. Prints the figures and writes
bench/results/concurrency.json. Target: four policies take at most 1.5x the time of one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SYNCCTL = str(Path(sys.executable).with_name("syncctl"))
TARGET_RATIO_FOR_4 = 1.5

POLICY = """\
version: 1
name: tenant-{n:03d}
tenant:
  id: {tenant_id}
  client_id: {client_id}
  credential:
    client_secret: {{env: BENCH_SECRET}}
  endpoints:
    authority: {authority}
    graph: {graph}
  ca_bundle: {ca_bundle}
source:
  scope_groups: [Password Manager Users]
  groups: [Vault Admins]
target:
  type: sqlite
  path: tenant-{n:03d}.db
"""


def plan_seconds(directory: Path, concurrency: int, secret: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
    env["BENCH_SECRET"] = secret
    started = time.perf_counter()
    result = subprocess.run(
        [SYNCCTL, "plan", str(directory), "--concurrency", str(concurrency)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"syncctl plan failed ({result.returncode}): {result.stderr[-2000:]}")
    return seconds


def measure(counts: list[int], latency: float) -> list[dict[str, Any]]:
    from syncctl.emulator import generate_tenant, running_emulator

    rows = []
    with running_emulator(generate_tenant(users=200, groups=10, seed=7)) as emu:
        emu.latency = latency
        for count in counts:
            with tempfile.TemporaryDirectory() as tmp:
                directory = Path(tmp)
                for n in range(count):
                    (directory / f"tenant-{n:03d}.yaml").write_text(
                        POLICY.format(
                            n=n,
                            tenant_id=emu.tenant_id,
                            client_id=emu.client_id,
                            authority=emu.authority,
                            graph=emu.graph,
                            ca_bundle=emu.ca_bundle,
                        )
                    )
                default = plan_seconds(directory, 4, emu.client_secret)
                wide = plan_seconds(directory, count, emu.client_secret) if count > 4 else default
                rows.append(
                    {
                        "policies": count,
                        "seconds_concurrency_4": round(default, 2),
                        f"seconds_concurrency_{count}": round(wide, 2),
                    }
                )
    one = rows[0]["seconds_concurrency_4"]
    for row in rows:
        row["ratio_to_one_policy"] = round(row["seconds_concurrency_4"] / one, 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="1,4,32")
    parser.add_argument("--latency", type=float, default=0.3)
    args = parser.parse_args()
    counts = [int(n) for n in args.policies.split(",")]
    rows = measure(counts, args.latency)
    for row in rows:
        print(json.dumps(row))
    four = next((r for r in rows if r["policies"] == 4), None)
    verdict = None
    if four is not None:
        verdict = four["ratio_to_one_policy"] <= TARGET_RATIO_FOR_4
        print(
            f"4 policies / 1 policy: {four['ratio_to_one_policy']}x (target <= 1.5x): "
            f"{'met' if verdict else 'NOT met'}"
        )
    out = ROOT / "bench" / "results" / "concurrency.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "concurrency",
                "latency_seconds": args.latency,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "results": rows,
                "target_ratio_for_4": TARGET_RATIO_FOR_4,
                "target_met": verdict,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
