"""The syncctl command group and its one error boundary.

Commands live in their own modules and are imported only when invoked, so ``syncctl
validate`` never pays for msal or the emulator. Library code raises ``SyncctlError``; this is
the only place that turns exceptions into messages and exit codes.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
import threading
import traceback
from typing import Any

import click

from syncctl import __version__
from syncctl.errors import EXIT_ERROR, PolicyError, SyncctlError
from syncctl.redaction import MaskingStream

# command name -> "module:function" (a click.Command)
COMMANDS: dict[str, str] = {
    "validate": "syncctl.cli.validate:validate",
    "plan": "syncctl.cli.plan:plan",
    "apply": "syncctl.cli.apply:apply",
    "show": "syncctl.cli.plan:show",
    "status": "syncctl.cli.status:status",
    "export": "syncctl.cli.source:export",
    "search": "syncctl.cli.source:search",
    "emulator": "syncctl.cli.emulator:emulator",
    "force-unlock": "syncctl.cli.state:force_unlock",
    "state": "syncctl.cli.state:state",
    "watch": "syncctl.cli.watch:watch",
    "schema": "syncctl.cli.schema:schema",
    "login": "syncctl.cli.login:login",
    "logout": "syncctl.cli.login:logout",
    "init": "syncctl.cli.init:init",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncctl")
@click.option("--debug", is_flag=True, envvar="SYNCCTL_DEBUG", help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Sync Microsoft Entra ID users and groups into application directories, from policies
    in Git: `plan` shows what would change, `apply` makes it so."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SYNCCTL_DEBUG", "") not in ("", "0")


class _Sigterm:
    """SIGTERM (Kubernetes, systemd, CI cancel) unwinds like Ctrl-C, wherever the command is:
    the batch being written finishes or rolls back, what was applied is journalled, locks are
    released, exit 143. Once per run: a second SIGTERM must not interrupt that unwinding, and
    one that arrives after the command finished changes nothing (see ``finish``)."""

    quiet = False  # set once the first SIGTERM is handled or the command's work is done

    @classmethod
    def handle(cls, signum: int, frame: object) -> None:
        if cls.quiet:
            return
        cls.quiet = True
        click.echo("Terminated: stopping after the current write and releasing locks.", err=True)
        raise SystemExit(128 + signum)

    @classmethod
    def finish(cls, previous: Any, *, exiting: bool) -> None:
        """The command is done (or unwound) and its output is flushed: a SIGTERM from now on
        must neither print "Terminated" nor replace the exit code. When the process is about
        to exit, ignore SIGTERM in the kernel: the interpreter puts the default disposition
        back while it shuts down, and a SIGTERM then would kill it with -15. Called in-process
        (tests, library use), put back the caller's handler instead."""
        try:
            # A SIGTERM while output is still stuck in a pipe does stop the run (exit 143).
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        finally:
            cls.quiet = True  # one the C handler caught already now runs as a no-op
            if exiting:
                if hasattr(signal, "pthread_sigmask"):
                    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
                # Setting SIG_IGN also discards one that is pending while blocked (POSIX).
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            else:
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
                cls.quiet = False


# A plan of 100,000 users keeps ~1.5 million small objects alive; with the default
# thresholds every full collection rescans them all (about a quarter of a large plan's CPU).
# Fewer, larger young generations keep reference cycles collected without that rescan.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Process-wide: set by the console script only (a library host keeps its own)."""
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> Any:
    """The console script (``argv`` None: the process exits when this returns) and the
    in-process entry point for tests (``argv`` given: signal handling is put back after)."""
    args = sys.argv[1:] if argv is None else argv
    if argv is None:
        tune_gc()
    previous: Any = None
    handling = threading.current_thread() is threading.main_thread()
    if handling:
        previous = signal.signal(signal.SIGTERM, _Sigterm.handle)
    streams = sys.stdout, sys.stderr
    # The last line of defence: whatever reaches the terminal or a CI log is masked, so a
    # server that echoes a token in an error cannot get it printed.
    sys.stdout, sys.stderr = MaskingStream(sys.stdout), MaskingStream(sys.stderr)
    try:
        return _run(args)
    finally:
        sys.stdout, sys.stderr = streams
        if handling:
            _Sigterm.finish(previous, exiting=argv is None)


def _run(args: list[str]) -> Any:
    try:
        return cli.main(args=args, prog_name="syncctl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_ERROR)
    except PolicyError as exc:
        for diagnostic in exc.diagnostics:
            click.echo(str(diagnostic), err=True)
        sys.exit(exc.exit_code)
    except SyncctlError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        if _debug_requested(args):
            traceback.print_exc()
        else:
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {exc} "
                "(this is a bug in syncctl; run with --debug for a traceback)",
                err=True,
            )
        sys.exit(EXIT_ERROR)
