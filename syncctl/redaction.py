"""The last line of defence for secrets: every value revealed from a secret reference in this
process is remembered, and ``mask`` replaces it with ``(redacted)`` in any text about to be
printed or written (a server that echoes the Authorization header, an error quoting a token).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, TextIO

REDACTED = "(redacted)"
# Shorter values would mask ordinary words; no real secret is this short.
MIN_MASKED_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()


def remember(value: str) -> str:
    """Register ``value`` as a secret (returns it, for use inline)."""
    if len(value) >= MIN_MASKED_LENGTH:
        with _lock:
            _secrets.add(value)
    return value


def mask(text: str) -> str:
    """``text`` with every remembered secret replaced by ``(redacted)``."""
    if not _secrets or not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leftovers
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def forget_all() -> None:
    """For tests: start from no remembered secrets."""
    with _lock:
        _secrets.clear()


class MaskingStream:
    """A text stream that masks remembered secrets in everything written through it: wraps
    stdout and stderr for the whole command, so no code path can print a secret."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, flush, encoding, buffer, ...
        return getattr(self._stream, name)
