"""Running the real ``syncctl`` console script, as a user or a pipeline would."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

SYNCCTL = str(Path(sys.executable).with_name("syncctl"))


def run_syncctl(
    *args: str | Path, cwd: Path, stdin: str | int | None = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """``syncctl ARGS`` in ``cwd``, without colour and without the caller's SYNCCTL_*
    settings (so a developer's environment cannot change what a test sees). ``stdin``: text
    to type, a file descriptor (a pty), or None for no input at all."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
    run = functools.partial(
        subprocess.run,
        [SYNCCTL, *map(str, args)],
        check=False,
        cwd=cwd,
        env={**base, "NO_COLOR": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if isinstance(stdin, str):
        return run(input=stdin)
    return run(stdin=subprocess.DEVNULL if stdin is None else stdin)


REPO = Path(__file__).resolve().parents[2]


def copy_demo(directory: Path) -> Path:
    """policies/demo.yaml and its snapshot copied into ``directory``; returns the policy."""
    (directory / "snapshots").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "policies" / "snapshots" / "demo.json", directory / "snapshots")
    return Path(shutil.copy(REPO / "policies" / "demo.yaml", directory / "demo.yaml"))
