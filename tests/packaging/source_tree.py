"""This repository as it would be committed, for tools that install it from Git."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.cli.binary import REPO

# A fixed identity and clock: the commit is the same whoever runs the tests, and no global or
# user git configuration is needed (or read).
GIT_ENV = {
    "GIT_AUTHOR_NAME": "syncctl tests",
    "GIT_AUTHOR_EMAIL": "tests@syncctl.invalid",
    "GIT_COMMITTER_NAME": "syncctl tests",
    "GIT_COMMITTER_EMAIL": "tests@syncctl.invalid",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def committed_files() -> list[str]:
    """Tracked and new (not ignored) files of the working tree, deleted ones left out: what
    the next commit will hold. ``pre-commit try-repo`` of the working tree itself would only
    see tracked files (it commits ``git add -u``), missing every new file such as the hook
    definition."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
    return sorted({name for name in listed.split("\0") if name and _is_file(REPO / name)})


def commit_copy(destination: Path) -> Path:
    """A one-commit Git repository of the working tree at ``destination``."""
    for name in committed_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source = REPO / name
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    git("init", "-q", "-b", "main", cwd=destination)
    git("add", "-A", cwd=destination)
    git("commit", "-q", "-m", "working tree", cwd=destination)
    return destination


def _is_file(path: Path) -> bool:
    return path.is_symlink() or path.is_file()  # `schemas` links to a directory
