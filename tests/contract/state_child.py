"""A second "runner" for the state tests: takes a policy's lock in its own process.

``python -m tests.contract.state_child POLICY_FILE [LEASE_SECONDS]`` prints one JSON line with
the lock's id once it holds the lock, then answers commands on stdin, one per line:
``check`` -> ``ok`` or ``lost``; at end of input it releases the lock and exits.
``hold_lock`` starts it from a test and returns once the lock is held.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from syncctl.errors import SyncctlError
from syncctl.policy import load_policy
from syncctl.state.backend import open_backend

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Holder:
    """Another process that holds a policy's lock (started by ``hold_lock``)."""

    process: subprocess.Popen[str]
    lock_id: str

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def release(self) -> None:
        """End of input: it releases the lock and exits (idempotent)."""
        assert self.process.stdin is not None
        if self.process.poll() is None and not self.process.stdin.closed:
            self.process.stdin.close()
        self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=60)


def hold_lock(
    policy_file: Path, env: Mapping[str, str], *, lease_seconds: int | None = None
) -> Holder:
    """Start a holder of ``policy_file``'s lock; returns once it says it holds it."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.contract.state_child",
            str(policy_file),
            *([] if lease_seconds is None else [str(lease_seconds)]),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=60)
        raise AssertionError("the holder exited before taking the lock")
    return Holder(process, str(json.loads(line)["lock_id"]))


def main() -> None:
    if len(sys.argv) > 2:
        from syncctl.state import azure_blob

        azure_blob.LEASE_SECONDS = int(sys.argv[2])  # Azure's minimum is 15 s
    backend = open_backend(load_policy(Path(sys.argv[1])))
    lock = backend.lock(operation="apply", timeout=30.0, ttl=timedelta(hours=6))
    print(json.dumps({"lock_id": lock.info.id}), flush=True)
    for line in sys.stdin:
        if line.strip() == "check":
            try:
                lock.check()
                print("ok", flush=True)
            except SyncctlError:
                print("lost", flush=True)
    with contextlib.suppress(SyncctlError):  # force-unlocked: nothing of ours to release
        lock.release()
    backend.close()


if __name__ == "__main__":
    main()
