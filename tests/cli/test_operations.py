"""Metrics files and the audit log, through the real binary on the offline demo policy:
what a cron job exports and what an auditor reads must match what the run really did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.cli.binary import copy_demo, run_syncctl


def metric_samples(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_plan_metrics_match_the_plan(tmp_path: Path) -> None:
    policy = copy_demo(tmp_path)
    planned = run_syncctl(
        "plan", policy, "--format", "json", "--metrics-file", "m.prom", cwd=tmp_path
    )
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    samples = metric_samples(tmp_path / "m.prom")
    run = {"policy": "demo", "operation": "plan"}
    assert value(samples, "syncctl_run_success", **run) == 1.0
    assert value(samples, "syncctl_graph_requests", **run) == 0.0  # a snapshot file
    assert value(samples, "syncctl_run_duration_seconds", **run) > 0.0
    by_action: dict[str, int] = {}
    for change in document["policies"][0]["changes"]:
        by_action[change["action"]] = by_action.get(change["action"], 0) + 1
    assert by_action  # the demo starts with an empty target
    for action, count in by_action.items():
        labels = {"policy": "demo", "action": action, "outcome": "planned"}
        assert value(samples, "syncctl_changes", **labels) == count


def test_audit_lines_are_the_applied_changes_and_metrics_agree(tmp_path: Path) -> None:
    policy = copy_demo(tmp_path)
    applied = run_syncctl(
        "apply", policy, "--auto-approve", "--format", "json",
        "--audit-log", "audit.jsonl", "--metrics-file", "m.prom",
        cwd=tmp_path, SYNCCTL_ACTOR="change CHG-7",
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    outcomes = json.loads(applied.stdout)["policies"][0]["outcomes"]
    lines = jsonl((tmp_path / "audit.jsonl").read_text())
    assert len(lines) == len(outcomes) > 0
    assert sorted((x["address"], x["outcome"]) for x in lines) == sorted(
        (o["address"], o["status"]) for o in outcomes
    )
    assert {x["actor"] for x in lines} == {"change CHG-7"}
    assert len({x["run_id"] for x in lines}) == 1
    samples = metric_samples(tmp_path / "m.prom")
    applied_total = sum(
        v for (name, labels), v in samples.items()
        if name == "syncctl_changes" and ("outcome", "applied") in labels
    )  # fmt: skip
    assert applied_total == len(outcomes)
    assert value(samples, "syncctl_run_success", policy="demo", operation="apply") == 1.0
    status = json.loads(run_syncctl("status", policy, "--format", "json", cwd=tmp_path).stdout)
    managed = status["policies"][0]["managed"]
    objects = sum(v for (name, _), v in samples.items() if name == "syncctl_managed_objects")
    assert objects == managed > 0

    again = run_syncctl(
        "apply", policy, "--auto-approve", "--audit-log", "audit.jsonl", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert len(jsonl((tmp_path / "audit.jsonl").read_text())) == len(outcomes)  # nothing to do


def test_jsonl_prints_exactly_the_audit_lines(tmp_path: Path) -> None:
    policy = copy_demo(tmp_path)
    applied = run_syncctl(
        "apply", policy, "--auto-approve", "--format", "jsonl", "--audit-log", "a.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == (tmp_path / "a.jsonl").read_text()
    assert all(line["policy"] == "demo" for line in jsonl(applied.stdout))


def test_no_attribute_value_reaches_the_audit_log(tmp_path: Path) -> None:
    policy = copy_demo(tmp_path)
    planned = run_syncctl("plan", policy, "--format", "json", cwd=tmp_path)
    values = {
        str(a["after"])
        for c in json.loads(planned.stdout)["policies"][0]["changes"]
        for a in c.get("attributes", [])
        if a["after"] not in (None, True, False) and "@" not in str(a["after"])
    }
    assert len(values) > 10
    applied = run_syncctl("apply", policy, "--auto-approve", "--format", "jsonl", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    leaked = {v for v in values if f'"{v}"' in applied.stdout}
    assert not leaked


def test_unwritable_paths_stop_the_run_before_it_changes_anything(tmp_path: Path) -> None:
    policy = copy_demo(tmp_path)
    for option in ("--metrics-file", "--audit-log"):
        failed = run_syncctl(
            "apply", policy, "--auto-approve", option, "missing/dir/out", cwd=tmp_path
        )
        assert failed.returncode == 1, failed.stderr
        assert f"Error: {option} missing/dir/out" in failed.stderr
        assert "Traceback" not in failed.stderr
        assert not (tmp_path / ".syncctl").exists()  # not even a lock was taken
        assert not list(tmp_path.glob("**/*.db"))
