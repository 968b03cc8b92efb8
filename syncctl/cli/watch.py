"""``syncctl watch``: a reconcile loop for hosts without cron.

Each cycle re-reads the policy files (a ConfigMap update takes effect at the next cycle),
then plans and applies the policies that are due exactly as ``apply --auto-approve`` would:
a plan a safety check refuses is reported, not applied, and the loop goes on. One log line
per policy run goes to stderr. SIGTERM or Ctrl-C stops it cleanly: a write in progress
finishes and is journalled, locks are released, metrics are written, exit 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from syncctl.cli.apply import ApplySettings, apply_policies
from syncctl.cli.common import load
from syncctl.cli.options import (
    Duration,
    MetricsOutput,
    audit_log_option,
    open_audit,
    run_options,
    write_options,
)
from syncctl.engine import utc_now
from syncctl.errors import PolicyError, SyncctlError
from syncctl.outcomes import PolicyResult
from syncctl.policy.model import Policy
from syncctl.state.store import iso
from syncctl.watch import Health, Schedule

MIN_INTERVAL = 1.0  # seconds


class ListenAddress(click.ParamType[str, Any]):
    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from syncctl.metrics_server import parse_listen

        try:
            parse_listen(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--every",
    type=Duration(),
    required=True,
    help="How often each policy is reconciled (e.g. 1m, 15m).",
)
@click.option(
    "--jitter",
    type=click.FloatRange(min=0.0, max=0.5),
    default=0.1,
    show_default=True,
    help="Spread of each interval, as a fraction of it (0.1: ±10%).",
)
@write_options
@click.option(
    "--metrics-listen",
    type=ListenAddress(),
    help="Serve /metrics (Prometheus) and /healthz on HOST:PORT (e.g. 0.0.0.0:9185).",
)
@audit_log_option
@run_options
def watch(
    *,
    paths: tuple[Path, ...],
    every: float,
    jitter: float,
    allow_mass_delete: bool,
    parallelism: int,
    metrics_listen: str | None,
    audit_log: Path | None,
    no_color: bool,
    lock_timeout: float,
    concurrency: int,
    timeout: float,
    refresh: bool,
    metrics_file: Path | None,
) -> None:
    """Plan and apply PATHS (default policies/) every interval, until stopped.

    The same safety checks as apply --auto-approve; a policy that fails waits longer before
    its next try (doubling, up to an hour) while the others keep their pace. Exit 0 when
    stopped by SIGTERM or Ctrl-C; 1 when it cannot start (bad policy, unwritable metrics or
    audit file, metrics port in use).
    """
    if every < MIN_INTERVAL:
        raise click.BadParameter(f"must be at least {MIN_INTERVAL:g}s", param_hint="'--every'")
    policies = load(paths)  # a broken policy at start-up is an error, not a loop
    metrics = MetricsOutput(metrics_file, "apply", serve=metrics_listen is not None)
    open_audit(policies, audit_log, to_stdout=False).close()  # fail now, not at the first write
    settings = ApplySettings(
        allow_mass_delete=allow_mass_delete,
        parallelism=parallelism,
        lock_timeout=lock_timeout,
        concurrency=concurrency,
        refresh=refresh,
    )
    loop = WatchLoop(paths, settings, every=every, jitter=jitter, timeout=timeout)
    server = None
    if metrics_listen is not None:
        from syncctl.metrics_server import MetricsServer

        assert metrics.metrics is not None
        server = MetricsServer(metrics_listen, metrics.metrics, loop.health)
        log(f"serving {server.url}/metrics and {server.url}/healthz")
    names = ", ".join(sorted(p.name for p in policies))
    noun = "policy" if len(policies) == 1 else "policies"
    log(f"watching {len(policies)} {noun} every {every:g}s: {names}")
    try:
        loop.run(metrics, audit_log)
    except (KeyboardInterrupt, SystemExit) as stop:
        if isinstance(stop, SystemExit) and stop.code != 143:  # not SIGTERM
            raise
        log("stopped: locks released")
    finally:
        if server is not None:
            server.close()


class WatchLoop:
    def __init__(
        self,
        paths: Sequence[Path],
        settings: ApplySettings,
        *,
        every: float,
        jitter: float,
        timeout: float,
    ) -> None:
        self.paths = paths
        self.settings = settings
        self.timeout = timeout
        self.schedule = Schedule(every, jitter)
        self.health = Health(grace=max(60.0, every))
        self.cycle = 0
        self.load_failures = 0
        self._wake = threading.Event()  # never set: a wait that a signal can interrupt

    def run(self, metrics: MetricsOutput, audit_log: Path | None) -> None:
        while True:
            policies = self._load()
            now = time.monotonic()
            if policies is None:
                wake = now + self.schedule.delay(self.load_failures)
            else:
                due = self.schedule.due((p.name for p in policies), now)
                if due:
                    self._cycle([p for p in policies if p.name in due], metrics, audit_log)
                now = time.monotonic()
                wake = self.schedule.next_due(now)
            self.health.expect_by(wake)
            self._wake.wait(max(0.0, wake - now))

    def _load(self) -> list[Policy] | None:
        """This cycle's policies; None (and a log line per problem) when they do not load
        (an edit half-synced to a ConfigMap): nothing runs, and loading is tried again
        after an interval, longer after each failure."""
        try:
            policies = load(self.paths)
        except PolicyError as exc:
            for diagnostic in exc.diagnostics:
                log(f"policies not loaded: {diagnostic}")
        except SyncctlError as exc:
            log(f"policies not loaded: {exc}")
        else:
            self.load_failures = 0
            return policies
        self.load_failures += 1
        return None

    def _cycle(
        self, policies: list[Policy], metrics: MetricsOutput, audit_log: Path | None
    ) -> None:
        from syncctl import deadline

        self.cycle += 1
        # A cycle may wait for a lock, then has --timeout for its requests.
        self.health.expect_by(time.monotonic() + self.settings.lock_timeout + self.timeout)
        deadline.set_deadline(self.timeout)
        try:
            audit = open_audit(policies, audit_log, to_stdout=False)
            try:
                done = apply_policies(policies, self.settings, audit=audit, metrics=metrics)
            finally:
                audit.close()
        except SyncctlError as exc:  # the audit or metrics file cannot be written
            log(f"cycle {self.cycle}: {exc}")
            for policy in policies:
                self.schedule.ran(policy.name, succeeded=False, now=time.monotonic())
            return
        ended = time.monotonic()
        for result in done.results:
            delay = self.schedule.ran(result.policy, succeeded=result.succeeded, now=ended)
            log(run_line(self.cycle, result, delay, self.schedule.failures(result.policy)))


def run_line(cycle: int, result: PolicyResult, delay: float, failures: int) -> str:
    """``cycle 3: vault: success (disable 1; applied 1) in 0.4s, 2 Graph requests; next in
    58s``: what the plan held, then what the apply did."""
    what = []
    if result.plan is not None:
        what.append(", ".join(f"{k} {v}" for k, v in result.plan.summary.items() if v))
    if result.report is not None:
        what.append(", ".join(f"{k} {v}" for k, v in result.report.counts.items() if v))
    shown = "; ".join(w for w in what if w)
    text = f"cycle {cycle}: {result.policy}: {result.outcome.value}"
    if shown:
        text += f" ({shown})"
    text += f" in {result.duration_seconds:.1f}s, {result.graph_requests} Graph requests"
    if result.error:
        text += f"; {result.error}"
    retry = f" ({failures} failures in a row)" if failures > 1 else ""
    return f"{text}; next in {delay:.0f}s{retry}"


def log(line: str) -> None:
    click.echo(f"{iso(utc_now())} {line}", err=True)
