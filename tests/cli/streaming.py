"""A ``syncctl`` process that keeps running while a test reads its stderr line by line (login
waiting for approval, watch cycling): tests steer on what it says, never on time."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.cli.binary import SYNCCTL

WAIT = 90.0  # a safety net for a hung process, not a pace


class StreamedRun:
    """``syncctl ARGS`` running in ``cwd`` with exactly ``env``; stdin is closed, so a run
    that tried to prompt would fail rather than wait."""

    def __init__(self, *args: str | Path, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [SYNCCTL, *map(str, args)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []  # every stderr line so far, without its newline
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(self.lines[-1])
        self._queue.put(None)

    @property
    def stderr(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first line not yet waited past that matches ``pattern``."""
        give_up = time.monotonic() + WAIT
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, give_up - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matched {pattern!r}:\n{self.stderr}") from None
            if line is None:
                raise AssertionError(f"the run ended before {pattern!r}:\n{self.stderr}")
            found = re.search(pattern, line)
            if found:
                return found

    def finish(self) -> tuple[int, str, str]:
        """Exit code, stdout and stderr once the process ended by itself."""
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        code = self.process.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        return code, stdout, self.stderr

    def terminate(self) -> int:
        """SIGTERM, then the exit code once every line is read."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
