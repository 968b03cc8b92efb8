"""Options and output helpers shared by ``plan``, ``apply`` and ``show``."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from syncctl.batch import DEFAULT_CONCURRENCY
from syncctl.outcomes import PolicyResult

if TYPE_CHECKING:
    from syncctl.audit import AuditLog
    from syncctl.metrics import RunMetrics
    from syncctl.policy.model import Policy

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class Duration(click.ParamType[float, Any]):
    """``30``, ``30s``, ``5m``, ``1h`` (Terraform's -lock-timeout spelling) -> seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a duration (e.g. 30s, 5m, 1h)", param, ctx)
        return float(match[1]) * _UNIT_SECONDS[match[2]]


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--lock-timeout, --concurrency, --timeout, --metrics-file, --refresh and --no-color:
    how a plan, an apply or a watch runs."""
    for option in reversed(
        (
            click.option(
                "--lock-timeout",
                type=Duration(),
                default="0s",
                show_default=True,
                help="How long to wait for another run of the same policy to finish "
                "(e.g. 30s, 5m).",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(min=1, max=256),
                default=DEFAULT_CONCURRENCY,
                show_default=True,
                envvar="SYNCCTL_CONCURRENCY",
                help="Policies planned and applied at once (also SYNCCTL_CONCURRENCY).",
            ),
            click.option(
                "--timeout",
                type=Duration(),
                default="30m",
                show_default=True,
                help="Overall deadline of the run: requests still waiting then fail.",
            ),
            click.option(
                "--metrics-file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Write Prometheus metrics of the run there (node_exporter textfile "
                "format, replaced atomically; see docs/operations.md).",
            ),
            click.option(
                "--refresh",
                is_flag=True,
                help="Read Graph in full instead of only what changed since the last run "
                "(delta); also happens every source.full_refresh_every.",
            ),
            no_color_option,
        )
    ):
        func = option(func)
    return func


def write_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--allow-mass-delete and --parallelism: how ``apply`` and ``watch`` write."""
    func = click.option(
        "--parallelism",
        type=click.IntRange(min=1, max=64),
        default=8,
        show_default=True,
        help="Batches written at once, for targets that allow it.",
    )(func)
    return click.option(
        "--allow-mass-delete",
        is_flag=True,
        help="Apply even when the plan exceeds max_deletes / max_disables.",
    )(func)


def no_color_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--no-color", is_flag=True, help="Never colour the output.")(func)


def use_color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


def render(document: dict[str, Any], output_format: str, color: bool) -> str:
    if output_format == "json":
        from syncctl.render import json as render_json

        return render_json.render(document)
    if output_format == "markdown":
        from syncctl.render import markdown as render_markdown

        return render_markdown.render(document)
    from syncctl.render import text as render_text

    return render_text.render(document, color=color)


def echo_block(text: str, *, err: bool = False) -> None:
    click.echo(text, nl=not text.endswith("\n"), err=err)


class PolicyProgress:
    """Progress on a terminal (stderr): the reading line of a single policy, or one line per
    policy as it finishes when several run at once (interleaved lines would be unreadable)."""

    def __init__(self, policies: int, concurrency: int) -> None:
        from syncctl.source.progress import TerminalProgress, terminal_progress

        self._terminal = sys.stderr.isatty()
        self._single: TerminalProgress | None = None
        if policies == 1 or concurrency == 1:
            self._single = terminal_progress()
        self._lock = threading.Lock()

    @property
    def reading(self) -> Any:
        """The Progress callable for source reads (None: no progress)."""
        return self._single

    def waiting(self, policy: str, timeout: float) -> Callable[[Exception], None]:
        """What to say, always (logs included), when a run starts waiting for a lock."""

        def say(held: Exception) -> None:
            with self._lock:
                click.echo(f"{policy}: waiting up to {timeout:g}s for the lock: {held}", err=True)

        return say

    def notes(self, policy: str, notes: Iterable[str]) -> None:
        """What a run wants said (why Graph was read in full, warnings): always, logs too."""
        for note in notes:
            with self._lock:
                if self._single is not None:
                    self._single.finish()
                click.echo(f"{policy}: {note}", err=True)

    def done(self, policy: str, what: str) -> None:
        if self._single is not None:
            with self._lock:
                self._single.finish()
            return
        if self._terminal:
            with self._lock:
                click.echo(f"{policy}: {what}", err=True)

    def close(self) -> None:
        if self._single is not None:
            self._single.finish()


class MetricsOutput:
    """``--metrics-file``: checked before the run starts, written when it ends (also when
    it ends early on a signal, so an alert sees the failed run). ``serve``: keep the
    metrics for ``watch --metrics-listen`` even without a file."""

    def __init__(self, path: Path | None, operation: str, *, serve: bool = False) -> None:
        self.path = path
        self.operation = operation
        self.metrics: RunMetrics | None = None
        if path is not None or serve:
            from syncctl.metrics import RunMetrics, check_writable

            if path is not None:
                check_writable(path, "--metrics-file")
            self.metrics = RunMetrics()

    def write(self, results: Iterable[PolicyResult]) -> None:
        if self.metrics is None:
            return
        self.metrics.record(self.operation, results)
        if self.path is not None:
            self.metrics.write_textfile(self.path)


def audit_log_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--audit-log",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Append one JSON line per change attempted to this file (default: each "
        "policy's state.audit_log).",
    )(func)


def open_audit(policies: Sequence[Policy], override: Path | None, *, to_stdout: bool) -> AuditLog:
    """The run's audit log, its files opened now: an unwritable path fails before anything
    is planned or applied."""
    from syncctl.audit import AuditLog, current_actor, new_run_id

    echo = (lambda text: click.echo(text, nl=False)) if to_stdout else None
    audit = AuditLog(run_id=new_run_id(), actor=current_actor(), override=override, echo=echo)
    audit.open(policies)
    return audit
