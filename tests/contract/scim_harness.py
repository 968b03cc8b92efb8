"""A real scim2-server (PyPI, pinned) for the contract suite and the SCIM integration tests.

``make_scim_target(tmp_path, policy)`` yields a ``ScimDirectory`` on a fresh tenant of one
shared server (``--dynamic-tenants``: each tenant has its own in-memory storage, so tests are
isolated without restarting the server). The shared server starts on first use and is
stopped when the test session's interpreter exits; tests that want their own server use
``ScimServer`` as a context manager.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from syncctl.policy.model import Policy, ScimTarget, SecretRef
from syncctl.targets.scim import ScimDirectory

SCIM2_SERVER = Path(sys.executable).with_name("scim2-server")


START_ATTEMPTS = 3


class ServerExited(RuntimeError):
    """The server process ended before it answered."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float = 20.0,
    headers: dict[str, str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerExited(f"server for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server for {url} did not answer within {timeout:.0f}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # SIGINT: lets --dump-resources write its file
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class ScimServer:
    """``scim2-server --dynamic-tenants`` on a free loopback port, with a bearer token."""

    def __init__(self) -> None:
        self.port = free_port()
        self.token = secrets.token_urlsafe(16)
        self.root = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ScimServer:
        # free_port() only finds a port that was free a moment ago: an outgoing connection of
        # another test can take it before the server binds, and the server then exits at
        # once. That is a race of the harness, not of the server: start again on another port.
        for attempt in range(START_ATTEMPTS):
            command = [
                str(SCIM2_SERVER),
                "--hostname", "127.0.0.1",
                "--port", str(self.port),
                # "=": a random token may start with "-", which argparse takes for an option.
                f"--bearer-token={self.token}",
                "--dynamic-tenants",
            ]  # fmt: skip
            with tempfile.TemporaryFile() as log:
                self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
                try:
                    wait_until_up(f"{self.root}/probe/v2/ServiceProviderConfig", self.process)
                    return self
                except ServerExited as exited:
                    log.seek(0)
                    said = log.read().decode(errors="replace").strip().splitlines()[-3:]
                    if attempt + 1 == START_ATTEMPTS:
                        raise ServerExited(f"{exited}: {' / '.join(said)}") from None
                    self.port = free_port()
                    self.root = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def __enter__(self) -> ScimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def tenant_url(self, tenant: str | None = None) -> str:
        return f"{self.root}/{tenant or 't' + uuid.uuid4().hex[:12]}/v2"

    def client(self, base_url: str) -> httpx.Client:
        """A plain client for tests to look at the server directly."""
        return httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )


_shared: dict[str, ScimServer] = {}
_shared_lock = threading.Lock()


def shared_server() -> ScimServer:
    """The session's server, started on first use and stopped when the interpreter exits."""
    with _shared_lock:
        server = _shared.get("server")
        if server is None or server.process is None or server.process.poll() is not None:
            server = _shared["server"] = ScimServer().start()
            atexit.register(server.stop)
        return server


def scim_policy(policy: Policy, url: str, token_file: Path) -> Policy:
    """``policy`` with its target replaced by the SCIM endpoint ``url``."""
    return dataclasses.replace(policy, target=ScimTarget(url=url, token=SecretRef(file=token_file)))


@contextmanager
def make_scim_target(tmp_path: Path, policy: Policy) -> Iterator[ScimDirectory]:
    """A ScimDirectory on a fresh tenant of the shared scim2-server."""
    server = shared_server()
    token_file = tmp_path / "scim-token"
    token_file.write_text(server.token, encoding="utf-8")
    os.chmod(token_file, 0o600)
    directory = ScimDirectory(scim_policy(policy, server.tenant_url(), token_file))
    try:
        yield directory
    finally:
        directory.close()
