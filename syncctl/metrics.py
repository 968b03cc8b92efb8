"""Prometheus metrics of a run, for alerting on syncctl like on any other job.

One-shot commands (``plan``/``apply --metrics-file``) write node_exporter's textfile format;
``watch`` serves the same families on ``/metrics``. Every sample describes a policy's *last*
run (a gauge, not a counter): the textfile of a cron job is replaced by each run, and the
alerts people write ("no successful run for two intervals", "any failed change") read the
last run in both cases. docs/operations.md lists the families with example alerts.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncctl.errors import SyncctlError
from syncctl.outcomes import PolicyResult
from syncctl.plan.model import Action, ChangeKind

ACTIONS = tuple(a.value for a in Action)
KINDS = (ChangeKind.USER.value, ChangeKind.GROUP.value)
_COUNTED = {Action.CREATE: 1, Action.ADOPT: 1, Action.DELETE: -1}


class RunMetrics(Collector):
    """The last result of each (policy, operation), as Prometheus families. Thread-safe:
    ``watch`` records from its loop while the HTTP server collects."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], PolicyResult] = {}
        self._lock = threading.Lock()

    def record(self, operation: str, results: Iterable[PolicyResult]) -> None:
        with self._lock:
            for result in results:
                self._last[(result.policy, operation)] = result

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            last = sorted(self._last.items())
        labels = ["policy", "operation"]
        timestamp = GaugeMetricFamily(
            "syncctl_run_timestamp_seconds",
            "When the policy's last run ended (Unix time).",
            labels=labels,
        )
        success = GaugeMetricFamily(
            "syncctl_run_success",
            "1 when the policy's last run succeeded, 0 when it failed, was refused or stopped.",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "syncctl_run_duration_seconds", "How long the policy's last run took.", labels=labels
        )
        graph = GaugeMetricFamily(
            "syncctl_graph_requests",
            "Requests the policy's last run sent to Microsoft Graph.",
            labels=labels,
        )
        errors = GaugeMetricFamily(
            "syncctl_errors",
            "Errors in the policy's last run: objects not planned plus changes failed "
            "(1 when the run failed as a whole).",
            labels=labels,
        )
        changes = GaugeMetricFamily(
            "syncctl_changes",
            "Changes of the policy's last run by action and outcome "
            "(planned; and for apply: applied, failed).",
            labels=["policy", "action", "outcome"],
        )
        managed = GaugeMetricFamily(
            "syncctl_managed_objects",
            "Target objects the policy manages after its last run.",
            labels=["policy", "kind"],
        )
        for (policy, operation), result in last:
            key = [policy, operation]
            if result.finished_at is not None:
                timestamp.add_metric(key, result.finished_at.timestamp())
            success.add_metric(key, float(result.succeeded))
            duration.add_metric(key, result.duration_seconds)
            graph.add_metric(key, float(result.graph_requests))
            errors.add_metric(key, float(result.error_count))
            for (action, outcome), count in sorted(change_counts(result, operation).items()):
                changes.add_metric([policy, action, outcome], float(count))
            for kind, count in sorted(managed_counts(result).items()):
                managed.add_metric([policy, kind], float(count))
        yield from (timestamp, success, duration, changes, managed, graph, errors)

    def exposition(self) -> bytes:
        """The text format, as ``/metrics`` serves it."""
        return generate_latest(self.registry())

    def write_textfile(self, path: Path) -> None:
        """Atomically (a temporary file beside it, then a rename): node_exporter never reads
        a half-written file."""
        try:
            write_to_textfile(str(path), self.registry())
        except OSError as exc:
            raise SyncctlError(f"--metrics-file {path}: {exc.strerror or exc}") from None


def change_counts(result: PolicyResult, operation: str) -> dict[tuple[str, str], int]:
    """(action, outcome) -> count; every action appears, with zeros, so alerts and graphs
    see a series from the first run on."""
    outcomes = ("planned", "applied", "failed") if operation == "apply" else ("planned",)
    counts = {(action, outcome): 0 for action in ACTIONS for outcome in outcomes}
    if result.plan is None:
        return counts
    for change in result.plan.changes:
        counts[(change.action.value, "planned")] += 1
    if operation == "apply" and result.report is not None:
        for item in result.report.results:
            counts[(item.change.action.value, "applied" if item.ok else "failed")] += 1
    return counts


def managed_counts(result: PolicyResult) -> dict[str, int]:
    """Managed users and groups once the run's applied creates, adoptions and deletions are
    counted; empty when the run ended before it planned (nothing is known)."""
    if result.plan is None:
        return {}
    counts = {"user": result.plan.managed.users, "group": result.plan.managed.groups}
    if result.report is not None:
        for item in result.report.results:
            kind = item.change.kind.value
            if item.ok and kind in counts:
                counts[kind] += _COUNTED.get(item.change.action, 0)
    return counts


def check_writable(path: Path, option: str) -> None:
    """Fail before anything is planned or applied when ``path`` cannot be written: its
    directory must exist and take a new file (the atomic rename needs one beside it)."""
    if path.is_dir():
        raise SyncctlError(f"{option} {path}: is a directory")
    directory = path.parent
    if not directory.is_dir():
        raise SyncctlError(f"{option} {path}: directory {directory} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{path.name}.", delete=True):
            pass
    except OSError as exc:
        raise SyncctlError(
            f"{option} {path}: cannot write in {directory}: {exc.strerror}"
        ) from None
