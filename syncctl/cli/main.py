"""The syncctl command group and its one error boundary.

Commands live in their own modules and are imported only when invoked, so ``syncctl
validate`` never pays for msal or the emulator. Library code raises ``SyncctlError``; this is
the only place that turns exceptions into messages and exit codes.
"""

from __future__ import annotations

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

# command name -> "module:function" (a click.Command)
COMMANDS: dict[str, str] = {
    "validate": "syncctl.cli.validate:validate",
    "plan": "syncctl.cli.plan:plan",
    "apply": "syncctl.cli.plan:apply",
    "show": "syncctl.cli.plan:show",
    "status": "syncctl.cli.plan:status",
    "export": "syncctl.cli.source:export",
    "search": "syncctl.cli.source:search",
    "emulator": "syncctl.cli.emulator:emulator",
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


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (Kubernetes, systemd, CI cancel) unwinds like Ctrl-C, wherever the command is:
    # the batch being written rolls back, what was applied is journalled, locks are released.
    click.echo("Terminated: stopping after the current write and releasing locks.", err=True)
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> Any:
    args = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
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
