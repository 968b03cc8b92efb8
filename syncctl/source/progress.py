"""Progress reporting while reading Entra: a small callable the CLI passes in.

Library code never writes to a terminal itself; it calls the Progress it was given (or none).
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO


class Progress(Protocol):
    def __call__(self, *, pages: int, objects: int, current: str) -> None:
        """Called after each page: totals so far and what is being read."""


class TerminalProgress:
    """One self-overwriting status line on a terminal stream (stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._width = 0

    def __call__(self, *, pages: int, objects: int, current: str) -> None:
        line = f"reading Entra: {pages} pages, {objects} objects ({current})"
        padding = " " * max(0, self._width - len(line))
        self._width = len(line)
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()

    def finish(self) -> None:
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0


def terminal_progress(stream: TextIO | None = None) -> TerminalProgress | None:
    """A progress line on ``stream`` (default stderr) only if it is a terminal, else None."""
    target = sys.stderr if stream is None else stream
    isatty = getattr(target, "isatty", None)
    return TerminalProgress(target) if isatty is not None and isatty() else None
