"""``syncctl init``: a guided first policy. The questions and the file live in
``syncctl.init``; this command picks where the answers come from (a terminal or
``--answers FILE``), shows the plan of the new policy as ``syncctl plan`` prints it, and
writes the file only once it validates."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from syncctl.errors import SyncctlError


@click.command()
@click.option(
    "--answers",
    "answers_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML mapping of question ids to answers (docs/init.md): ask nothing.",
)
@click.option("-o", "--output", help="The policy file to write (overrides the 'output' answer).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option("--authority", help="Sign-in authority URL, for a proxy or the emulator.")
@click.option("--graph", help="Microsoft Graph base URL, for a proxy or the emulator.")
@click.option("--ca-bundle", help="A PEM file of extra CAs to trust for sign-in and Graph.")
@click.option("--browser", is_flag=True, help="Interactive sign-in in a local browser.")
def init(
    *,
    answers_file: Path | None,
    output: str | None,
    force: bool,
    authority: str | None,
    graph: str | None,
    ca_bundle: str | None,
    browser: bool,
) -> None:
    """Write a first policy by answering questions: sign in, search and pick groups, choose
    what happens to accounts that go away and where they go; then see its plan."""
    from syncctl import __version__
    from syncctl.init.flow import Asker, FileAsker, TerminalAsker, collect
    from syncctl.init.signin import sign_in
    from syncctl.init.writer import render_policy

    cwd = Path.cwd()
    extra: dict[str, Any] = {}
    asker: Asker
    if answers_file is not None:
        answers = read_answers(answers_file)
        if output is not None:
            answers["output"] = output
        asker = FileAsker(answers, where=str(answers_file))
        extra = {"endpoints": answers.get("endpoints"), "ca_bundle": answers.get("ca_bundle")}
    elif not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask on: give the answers with --answers FILE")
    else:
        asker = TerminalAsker(_prompt, click.echo)
    endpoints = _endpoints(extra.get("endpoints"), authority, graph)
    bundle = ca_bundle or _optional_text("ca_bundle", extra.get("ca_bundle"))

    def output_check(typed: str) -> Path:
        path = Path(typed)
        if path.exists() and not force:
            raise ValueError(f"{typed} exists; pass --force to replace it")
        return path

    chosen = collect(
        asker,
        lambda connection: sign_in(connection, cwd=cwd, browser=browser, say=click.echo),
        output_check=output_check,
        output_default=output,  # at a terminal, --output is the suggested answer
        endpoints=endpoints,
        ca_bundle=bundle,
    )
    text = render_policy(chosen, cwd=cwd, version=__version__)
    click.get_current_context().exit(write_checked(chosen.output, text, force=force))


def _prompt(text: str, default: str | None) -> str:
    answer: str = click.prompt(text, default=default, show_default=bool(default))
    return answer


def read_answers(path: Path) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SyncctlError(f"{path}: cannot read the answers: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise SyncctlError(f"{path}: not a YAML answers file: {first}") from None
    if not isinstance(document, dict):
        raise SyncctlError(f"{path}: the answers must be a mapping of question ids to answers")
    return {str(k): v for k, v in document.items()}


def _optional_text(key: str, value: Any) -> str | None:
    from syncctl.init.questions import AnswerError

    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise AnswerError(key, "must be a path")
    return value


def _endpoints(raw: Any, authority: str | None, graph: str | None) -> dict[str, str] | None:
    from syncctl.init.questions import AnswerError, url

    found = dict(raw) if isinstance(raw, dict) else {}
    if raw is not None and not isinstance(raw, dict):
        raise AnswerError("endpoints", "must be a mapping {authority: URL, graph: URL}")
    if authority:
        found["authority"] = authority
    if graph:
        found["graph"] = graph
    if not found:
        return None
    checked = {}
    for key in ("authority", "graph"):
        if key not in found:
            raise AnswerError(f"endpoints.{key}", "missing (both authority and graph are needed)")
        try:
            checked[key] = url(found[key])
        except ValueError as exc:
            raise AnswerError(f"endpoints.{key}", str(exc)) from None
    return checked


def write_checked(output: Path, text: str, *, force: bool) -> int:
    """Validate the policy as ``syncctl validate`` would, show its plan, then write it; the
    exit code is the plan's (0 when it could be made)."""
    from syncctl.cli.plan import plan
    from syncctl.errors import Diagnostic, Location, PolicyError
    from syncctl.fileio import write_text_atomic
    from syncctl.policy import check_policies

    # Checked and planned where it will live (relative paths, the state beside it), under a
    # name no policy directory picks up, and only then put in place.
    draft = output.with_name(f".{output.stem}.init-{os.getpid()}{output.suffix}")
    try:
        draft.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(draft, text)
        result = check_policies([draft])
        if result.errors:
            raise PolicyError(
                [
                    Diagnostic(Location(str(output), d.location.line, d.location.column), d.message)
                    for d in result.errors
                ]
            )
        click.echo(f"\nThe plan for {output} (nothing is changed yet):")
        code = plan.main(args=[str(draft)], prog_name="syncctl plan", standalone_mode=False)
        if output.exists() and not force:
            raise SyncctlError(f"output: {output} exists; pass --force to replace it")
        os.replace(draft, output)
    except OSError as exc:
        raise SyncctlError(f"output: cannot write {output}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            draft.unlink()
    shown = str(output)
    click.echo(
        f"\nWrote {shown}. Next:\n  syncctl validate {shown}\n  syncctl plan {shown}\n"
        f"  syncctl apply {shown}"
    )
    return int(code or 0)
