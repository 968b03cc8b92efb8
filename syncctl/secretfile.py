"""Read a small file that holds a secret (a token, a password, a key) without trusting its path.

A policy names the file, and a policy may come from a pull request: ``{file: /dev/zero}`` must
not exhaust memory, ``{file: a-fifo}`` must not hang the run, ``{file: /some/dir}`` must not
crash it. So only a regular file is read, never more than ``limit + 1`` bytes, and the fifo
check happens on the opened descriptor (O_NONBLOCK: opening a fifo with no writer returns at
once instead of blocking), so swapping the file between the check and the read changes nothing.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from syncctl.errors import SecretError, SyncctlError

SECRET_FILE_LIMIT = 64 * 1024  # a PEM key with its chain is a few KiB; 64 KiB is generous

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_small_file(
    path: Path,
    limit: int = SECRET_FILE_LIMIT,
    what: str = "secret file",
    error: type[SyncctlError] = SecretError,
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Anything else raises ``error`` with one line naming ``what`` and the path, never the
    content: not a regular file (fifo, device, directory, socket), larger than ``limit``,
    or unreadable (with the OS reason).
    """
    where = f"{what} {_printable(path)}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise error(f"cannot read {where}: {_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
            raise error(f"{where} is {kind}, not a regular file")
        if info.st_size > limit:
            raise error(f"{where} is larger than {_size(limit)}")
        chunks: list[bytes] = []
        remaining = limit + 1  # one byte more tells a file that grew since fstat
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise error(f"cannot read {where}: {_reason(exc)}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise error(f"{where} is larger than {_size(limit)}")
    return data


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long (a path component over 255 bytes, or the whole path too long)"
    if exc.errno == errno.ENXIO:
        return "not a regular file (a socket or a device without a driver)"
    return exc.strerror or type(exc).__name__


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"


def _printable(path: Path) -> str:
    # A path from a policy may hold control characters; the message must stay one line.
    text = str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
