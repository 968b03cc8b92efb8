"""A second "runner" for the state contract suite: takes a policy's lock in its own process.

``python -m tests.contract.state_child POLICY_FILE [LEASE_SECONDS]`` prints one JSON line with
the lock's id once it holds the lock, then answers commands on stdin, one per line:
``check`` -> ``ok`` or ``lost``; at end of input it releases the lock and exits.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import timedelta
from pathlib import Path

from syncctl.errors import SyncctlError
from syncctl.policy import load_policy
from syncctl.state.backend import open_backend


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
