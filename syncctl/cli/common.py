"""What several commands share: loading policies, the --format option, source progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from syncctl.policy.model import Policy
from syncctl.source.progress import Progress

DEFAULT_POLICY_DIR = Path("policies")


def load(paths: Sequence[Path]) -> list[Policy]:
    """The policies in PATHS (default ``policies/``); the loader reports a path without any."""
    from syncctl.policy import load_policies

    return load_policies(list(paths) or [DEFAULT_POLICY_DIR])


def format_option(*choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help="Output format.",
    )


@contextmanager
def source_progress() -> Iterator[Progress | None]:
    """Pages and objects read so far, on stderr, only when stderr is a terminal."""
    from syncctl.source.progress import terminal_progress

    progress = terminal_progress()
    try:
        yield progress
    finally:
        if progress is not None:
            progress.finish()
