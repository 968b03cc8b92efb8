"""Azurite, Microsoft's Blob Storage emulator, as a session-wide test server.

The binary comes from npm (``npm install azurite@3``): ``$SYNCCTL_AZURITE``, else
``azurite-blob`` on PATH, else ``node_modules/.bin`` of the repository, else the test cache
(``~/.cache/syncctl-tests/azurite``), where it is installed with npm on first use so that the
README's test command works on a fresh machine. Without npm the tests that need it fail (with
the install command) rather than skip: a backend whose tests silently stop running is a
backend nobody tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contract.state_store import StateStore

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "syncctl-tests/azurite"
# Azurite's documented development account (the same in every installation).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
STATE_ENV = "SYNCCTL_TEST_STATE_BLOB"
READY_SECONDS = 60.0


@dataclass(frozen=True)
class Azurite:
    port: int
    scheme: str = "http"

    @property
    def blob_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, key: str = ACCOUNT_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )


INSTALL = "npm install azurite@3"


def find_binary() -> Path | None:
    named = os.environ.get("SYNCCTL_AZURITE")
    if named:
        return Path(named) if Path(named).is_file() else None
    for candidate in (
        shutil.which("azurite-blob"),
        REPO / "node_modules/.bin/azurite-blob",
        CACHE / "node_modules/.bin/azurite-blob",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def install() -> Path:
    """azurite-blob, installed with npm into the test cache when it is not found."""
    found = find_binary()
    if found is not None:
        return found
    npm = shutil.which("npm")
    if npm is None or os.environ.get("SYNCCTL_AZURITE"):
        named = os.environ.get("SYNCCTL_AZURITE")
        why = f"SYNCCTL_AZURITE={named} is no file" if named else "npm not found"
        raise RuntimeError(f"azurite-blob not found ({why}): {INSTALL}")
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            npm,
            "install",
            "--no-save",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(CACHE),
            "azurite@3",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    found = find_binary()
    if found is None:
        raise RuntimeError(f"azurite-blob still not found after {INSTALL} into {CACHE}")
    return found


def azurite_binary() -> Path:
    try:
        return install()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        pytest.fail(str(exc))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    """Azurite listens once it serves: any HTTP answer means ready."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"GET /" + ACCOUNT.encode() + b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return conn.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def start_azurite(
    workdir: Path, *extra: str, scheme: str = "http"
) -> tuple[subprocess.Popen[bytes], Azurite]:
    """An Azurite blob service on a free port, answering (HTTPS ones: listening)."""
    port = free_port()
    log = (workdir / f"azurite-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            str(azurite_binary()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            # In memory: nothing to clean up, and no --location (Azurite refuses both).
            "--inMemoryPersistence",
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            *extra,
        ],
        cwd=workdir,  # where Azurite would put anything it still writes
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    server = Azurite(port, scheme)
    deadline = time.monotonic() + READY_SECONDS
    while not _listening(port, tls=scheme == "https"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = (workdir / f"azurite-{port}.log").read_text(errors="replace")
            pytest.fail(f"azurite-blob did not start on port {port}:\n{output}")
        time.sleep(0.05)  # polling interval of the readiness probe, not a wait for an event
    return process, server


def _listening(port: int, *, tls: bool) -> bool:
    if not tls:
        return _answers(port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with tempfile.TemporaryDirectory(prefix="syncctl-azurite-") as workdir:
        process, server = start_azurite(Path(workdir))
        try:
            yield server
        finally:
            stop(process)


def upload_raw(connection_string: str, container: str, name: str, text: str) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(connection_string) as service:
        box = service.get_container_client(container)
        if not box.exists():
            box.create_container()
        box.upload_blob(name, text.encode("utf-8"), overwrite=True)


@pytest.fixture
def azure_blob_state_store(azurite: Azurite) -> StateStore:
    """A fresh container (not created yet: the backend creates it on first write)."""
    container = f"state-{uuid.uuid4().hex[:20]}"
    connection_string = azurite.connection_string()

    def write_raw(policy: str, tenant: str, text: str) -> None:
        upload_raw(connection_string, container, f"{tenant}/{policy}.state.json", text)

    return StateStore(
        kind="azure_blob",
        section={
            "backend": "azure_blob",
            "container": container,
            "connection_string": {"env": STATE_ENV},
        },
        env={STATE_ENV: connection_string},
        write_raw=write_raw,
    )


def main(argv: list[str]) -> int:
    """``--install``: make sure the tests find azurite-blob (CI), installing it into the test
    cache when missing."""
    if argv != ["--install"]:
        print("usage: python -m tests.servers.azurite --install", file=sys.stderr)
        return 2
    try:
        print(f"azurite-blob: {install()}")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
