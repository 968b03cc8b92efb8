"""The Prometheus families of a run: parsed back with prometheus-client's own parser, so a
sample that is misnamed, mislabelled or miscounted fails here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncctl.apply.applier import ApplyReport, ChangeResult
from syncctl.errors import SyncctlError
from syncctl.metrics import RunMetrics, check_writable
from syncctl.outcomes import Outcome, PolicyResult
from syncctl.plan.model import Action, Change, ChangeKind, ManagedCounts, PolicyPlan, Reason
from syncctl.targets.base import Outcome as TargetOutcome
from syncctl.targets.base import OutcomeStatus

STARTED = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)


def change(kind: ChangeKind, action: Action, n: int) -> Change:
    return Change(f"{kind.value}/{action.value}-{n}", kind, action, Reason.ENTERED_SCOPE, f"id-{n}")


def plan_of(changes: list[Change], users: int = 10, groups: int = 2) -> PolicyPlan:
    return PolicyPlan(
        name="vault",
        policy_sha256="0" * 64,
        tenant="contoso.onmicrosoft.com",
        target={"type": "sqlite", "path": "x.db"},
        fingerprints={},
        changes=tuple(changes),
        managed=ManagedCounts(users=users, groups=groups),
    )


def samples(metrics: RunMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.exposition().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_an_apply_reports_planned_applied_failed_and_managed_after_the_run() -> None:
    creates = [change(ChangeKind.USER, Action.CREATE, n) for n in range(3)]
    deleted_group = change(ChangeKind.GROUP, Action.DELETE, 9)
    disable = change(ChangeKind.USER, Action.DISABLE, 5)
    plan = plan_of([*creates, deleted_group, disable])
    results = [
        ChangeResult(creates[0], TargetOutcome(creates[0].address, OutcomeStatus.APPLIED, "t0")),
        ChangeResult(creates[1], TargetOutcome(creates[1].address, OutcomeStatus.UNCHANGED)),
        ChangeResult(creates[2], TargetOutcome(creates[2].address, OutcomeStatus.FAILED)),
        ChangeResult(deleted_group, TargetOutcome("g", OutcomeStatus.APPLIED)),
        ChangeResult(disable, TargetOutcome("d", OutcomeStatus.STALE)),
    ]
    result = PolicyResult(
        "vault",
        Outcome.PARTIAL,
        error="2 of 5 changes failed",
        plan=plan,
        report=ApplyReport("vault", tuple(results)),
        started_at=STARTED,
        finished_at=STARTED + timedelta(seconds=2.5),
        graph_requests=7,
    )
    metrics = RunMetrics()
    metrics.record("apply", [result])
    got = samples(metrics)
    run = {"policy": "vault", "operation": "apply"}
    assert got[key("syncctl_run_success", **run)] == 0.0
    assert got[key("syncctl_run_duration_seconds", **run)] == 2.5
    assert got[key("syncctl_run_timestamp_seconds", **run)] == (STARTED.timestamp() + 2.5)
    assert got[key("syncctl_graph_requests", **run)] == 7.0
    assert got[key("syncctl_errors", **run)] == 2.0
    create = {"policy": "vault", "action": "create"}
    assert got[key("syncctl_changes", **create, outcome="planned")] == 3.0
    assert got[key("syncctl_changes", **create, outcome="applied")] == 2.0
    assert got[key("syncctl_changes", **create, outcome="failed")] == 1.0
    assert got[key("syncctl_changes", policy="vault", action="disable", outcome="failed")] == 1.0
    assert got[key("syncctl_changes", policy="vault", action="remove", outcome="applied")] == 0.0
    # 10 users + 2 created (applied or already there), 2 groups - 1 deleted
    assert got[key("syncctl_managed_objects", policy="vault", kind="user")] == 12.0
    assert got[key("syncctl_managed_objects", policy="vault", kind="group")] == 1.0


def test_a_plan_has_only_planned_changes_and_a_failed_run_counts_one_error() -> None:
    plan = plan_of([change(ChangeKind.USER, Action.UPDATE, 1)])
    planned = PolicyResult("a", Outcome.CHANGES_PENDING, plan=plan, finished_at=STARTED)
    failed = PolicyResult("b", Outcome.FAILED, error="sign-in failed", finished_at=STARTED)
    metrics = RunMetrics()
    metrics.record("plan", [planned, failed])
    got = samples(metrics)
    assert got[key("syncctl_run_success", policy="a", operation="plan")] == 1.0
    assert got[key("syncctl_run_success", policy="b", operation="plan")] == 0.0
    assert got[key("syncctl_errors", policy="b", operation="plan")] == 1.0
    assert got[key("syncctl_changes", policy="a", action="update", outcome="planned")] == 1.0
    assert not [k for k in got if k[0] == "syncctl_changes" and ("outcome", "applied") in k[1]]
    # Nothing is known about the managed objects of a run that never planned.
    assert not [k for k in got if k[0] == "syncctl_managed_objects" and ("policy", "b") in k[1]]


def test_a_refused_run_is_not_a_success_and_not_an_error() -> None:
    refused = PolicyResult("a", Outcome.REFUSED, error="refused", plan=plan_of([]))
    assert not refused.succeeded
    assert refused.error_count == 0


def test_the_textfile_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "syncctl.prom"
    path.write_text("old\n")
    metrics = RunMetrics()
    metrics.record("apply", [PolicyResult("a", Outcome.SUCCESS, finished_at=STARTED)])
    metrics.write_textfile(path)
    assert "syncctl_run_success" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syncctl.prom"]  # no temp file left


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing" / "m.prom", "does not exist"),
        (lambda tmp: tmp, "is a directory"),
    ],
)
def test_an_unusable_metrics_path_is_refused_up_front(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(SyncctlError, match=message):
        check_writable(make(tmp_path), "--metrics-file")
