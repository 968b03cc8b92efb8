"""Many policies in one run: each its own unit of work, up to N at once.

A failure to sign in, read Graph, read or write the target, or take the lock ends that policy
only; the others go on. Each policy runs in its own thread with its own HTTP connections,
token cache, target and lock (the Graph session and the target are built per policy).

Stopping (SIGTERM, Ctrl-C) is cooperative: the signal reaches the main thread, which tells
every policy to stop, waits for policies that are writing to finish their current batch (what
was written is journalled), records the others as interrupted, and re-raises. Policies that are
only reading are abandoned: their threads are daemons, and nothing they do afterwards counts.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from syncctl import deadline
from syncctl.engine import PolicyRun
from syncctl.errors import SyncctlError
from syncctl.outcomes import Outcome, PolicyResult

DEFAULT_CONCURRENCY = 4
_JOIN_SECONDS = 0.2  # how often the waiting main thread lets signal handlers run

Step = Callable[[PolicyRun], PolicyResult | None]


class Batch:
    """The runs of one command. ``step`` runs a function on every run still going."""

    def __init__(self, runs: Sequence[PolicyRun], *, concurrency: int) -> None:
        self.runs = sorted(runs, key=lambda r: r.name)
        self.concurrency = max(1, concurrency)
        self.stopping = threading.Event()
        self.stop_reason = "interrupted"
        self.traces: dict[str, str] = {}  # policy -> traceback of an unexpected error

    @property
    def active(self) -> list[PolicyRun]:
        return [r for r in self.runs if r.result is None]

    def should_stop(self) -> str | None:
        """For the applier, before each batch: why to stop now, or None."""
        if self.stopping.is_set():
            return self.stop_reason
        left = deadline.remaining()
        if left is not None and left <= 0:
            return "the run's deadline (--timeout) passed"
        return None

    def step(self, function: Step, *, writes: bool = False) -> None:
        """Run ``function`` on every active run, up to ``concurrency`` at once. A run whose
        function raises ends failed (or refused) with that error. ``writes``: on a signal,
        wait for the function to return (it stops at the next batch boundary) instead of
        abandoning it."""
        todo = list(self.active)
        if not todo:
            return
        lock = threading.Lock()

        def worker(done: threading.Event) -> None:
            try:
                while not self.stopping.is_set():
                    with lock:
                        if not todo:
                            return
                        run = todo.pop(0)
                    self._one(run, function)
            finally:
                done.set()

        # Completion is watched through events, not Thread.join: a join interrupted by the
        # signal handler's exception can leave is_alive() False while the thread still runs
        # (bpo-45274), and the interrupt must really wait for writers.
        finished = [threading.Event() for _ in range(min(self.concurrency, len(todo)))]
        for n, done in enumerate(finished):
            threading.Thread(
                target=worker, args=(done,), name=f"syncctl-policy-{n}", daemon=True
            ).start()
        try:
            for done in finished:
                while not done.wait(_JOIN_SECONDS):
                    pass
        except BaseException as exc:  # SIGTERM (SystemExit) or Ctrl-C: stop cooperatively
            self.interrupt(finished if writes else (), _signal_name(exc))
            raise

    def _one(self, run: PolicyRun, function: Step) -> None:
        try:
            function(run)
        except SyncctlError as exc:
            if not self.stopping.is_set():
                run.fail(exc)
        except Exception as exc:  # a bug must not take the other policies down with it
            if not self.stopping.is_set():
                self.traces[run.name] = traceback.format_exc()
                run.finish(
                    Outcome.FAILED,
                    f"unexpected {type(exc).__name__}: {exc} "
                    "(this is a bug in syncctl; run with --debug for a traceback)",
                )

    def interrupt(self, writers: Sequence[threading.Event], why: str) -> None:
        """Stop: let writers finish their batch, then record every unfinished run."""
        self.stop_reason = f"interrupted by {why}"
        self.stopping.set()
        while not all(done.is_set() for done in writers):
            try:
                for done in writers:
                    done.wait(_JOIN_SECONDS)
            except BaseException:  # a second signal while draining: keep draining
                continue
        for run in self.active:
            run.finish(Outcome.INTERRUPTED, self.stop_reason)

    def ended(self) -> list[PolicyResult]:
        """The results of the runs that have ended so far (nothing is recorded: a run cut
        short by a cancelled prompt is not written down as failed)."""
        return [run.result for run in self.runs if run.result is not None]

    def results(self) -> list[PolicyResult]:
        """Every run's result, in policy-name order (a run still going counts as failed)."""
        out = []
        for run in self.runs:
            if run.result is None:
                run.finish(Outcome.FAILED, "the run ended before this policy finished")
            assert run.result is not None
            out.append(run.result)
        return out


@contextmanager
def open_batch(runs: Sequence[PolicyRun], *, concurrency: int) -> Iterator[Batch]:
    """A batch whose runs are closed (targets closed, locks released) on exit, whatever
    happens."""
    batch = Batch(runs, concurrency=concurrency)
    try:
        yield batch
    finally:
        for run in batch.runs:
            try:
                run.close()
            except SyncctlError as exc:
                if run.result is None:
                    run.finish(Outcome.FAILED, str(exc))


def _signal_name(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "Ctrl-C"
    if isinstance(exc, SystemExit) and exc.code == 143:
        return "SIGTERM"
    return type(exc).__name__
