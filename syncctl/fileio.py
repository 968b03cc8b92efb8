"""Writing files that other runs and people read: never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from syncctl.redaction import mask

PIECES_FLUSHED_AT = 1 << 20  # characters: masked and written a megabyte at a time


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix:
    a temporary file in the same directory, fsync, rename, fsync of the directory.
    Every secret revealed in this run is masked first (``syncctl.redaction``).
    Raises OSError; callers say which file it was for."""
    data = mask(text).encode("utf-8")
    _replace_atomic(path, lambda handle: handle.write(data))


def write_pieces_atomic(path: Path, produce: Callable[[Callable[[str], None]], None]) -> None:
    """``write_text_atomic`` for text made piece by piece (``produce(emit)`` calls ``emit``
    with each piece), so a 100,000-user snapshot is never held as one string. Each piece is
    masked and encoded as it comes; a piece that is not valid UTF-8 (a lone surrogate) raises
    UnicodeEncodeError and the file is left as it was."""

    def fill(handle: BinaryIO) -> None:
        pending: list[str] = []
        size = 0

        def flush() -> None:
            nonlocal size
            # Whole pieces only: a secret inside one piece is never split by a flush.
            handle.write(mask("".join(pending)).encode("utf-8"))
            pending.clear()
            size = 0

        def emit(piece: str) -> None:
            nonlocal size
            pending.append(piece)
            size += len(piece)
            if size >= PIECES_FLUSHED_AT:
                flush()

        produce(emit)
        flush()

    _replace_atomic(path, fill)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``write_text_atomic`` for bytes, written as given: binary data (a compressed blob) is
    not masked, since masking would corrupt it and could not find a secret in it anyway."""
    _replace_atomic(path, lambda handle: handle.write(data))


def _replace_atomic(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash only once the directory is synced
    finally:
        os.close(dir_fd)
