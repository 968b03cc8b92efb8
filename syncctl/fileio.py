"""Writing files that other runs and people read: never half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from syncctl.redaction import mask


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix:
    a temporary file in the same directory, fsync, rename, fsync of the directory.
    Every secret revealed in this run is masked first (``syncctl.redaction``).
    Raises OSError; callers say which file it was for."""
    _replace_atomic(path, mask(text).encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``write_text_atomic`` for bytes, written as given: binary data (a compressed blob) is
    not masked, since masking would corrupt it and could not find a secret in it anyway."""
    _replace_atomic(path, data)


def _replace_atomic(path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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
