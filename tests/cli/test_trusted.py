"""``syncctl plan --trusted BASE PR`` through the real binary: a pull request that redirects a
credential gets nothing, and the policies it did not touch are planned as usual."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.contract.scim_harness import ScimServer, shared_server

ROOT = Path(__file__).resolve().parents[2]
SYNCCTL = Path(sys.executable).parent / "syncctl"
DEMO_SNAPSHOT = ROOT / "policies" / "snapshots" / "demo.json"

POLICY = """\
version: 1
name: {name}
tenant:
  id: contoso.onmicrosoft.com
  snapshot: snapshot.json
source:
  scope_groups: [Password Manager Users]
target:
  type: scim
  url: {url}
  token: {{env: SCIM_TOKEN}}
"""


class Recorder:
    """An HTTP server that answers nothing useful and remembers every request it got."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                recorder.hits.append(f"{self.command} {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/scim/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker() -> Iterator[Recorder]:
    with Recorder() as running:
        yield running


@pytest.fixture(scope="module")
def scim() -> ScimServer:
    return shared_server()


def write_checkout(root: Path, urls: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    shutil.copy(DEMO_SNAPSHOT, root / "snapshot.json")
    for name, url in urls.items():
        (root / f"{name}.yaml").write_text(POLICY.format(name=name, url=url), encoding="utf-8")
    return root


def plan(cwd: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCCTL_", "AZURE_"))}
    env.update(SCIM_TOKEN=token, NO_COLOR="1")
    return subprocess.run(
        [str(SYNCCTL), "plan", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_redirected_target_url_gets_no_credential_and_the_rest_is_planned(
    tmp_path: Path, scim: ScimServer, attacker: Recorder
) -> None:
    urls = {"vault-a": scim.tenant_url(), "vault-b": scim.tenant_url()}
    write_checkout(tmp_path / "base", urls)
    write_checkout(tmp_path / "pr", {**urls, "vault-a": attacker.url})

    result = plan(tmp_path, scim.token, "--trusted", "base", "pr")

    assert result.returncode == 3, result.stderr
    assert attacker.hits == []  # the token never left for the pull request's host
    refusals = [line for line in result.stderr.splitlines() if "vault-a" in line]
    assert len(refusals) == 1, result.stderr
    assert "target.url" in refusals[0]
    assert "refus" in refusals[0]
    assert scim.token not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert 'for policy "vault-b"' in result.stdout  # planned in the same run
    assert 'for policy "vault-a"' not in result.stdout

    # The control: without --trusted the same pull request does reach its host.
    plan(tmp_path, scim.token, "pr/vault-a.yaml")
    assert attacker.hits


def test_an_unchanged_policy_is_planned_normally(tmp_path: Path, scim: ScimServer) -> None:
    urls = {"vault-b": scim.tenant_url()}
    write_checkout(tmp_path / "base", urls)
    write_checkout(tmp_path / "elsewhere" / "pr", urls)

    result = plan(tmp_path, scim.token, "--trusted", "base", "elsewhere/pr")

    assert result.returncode == 0, result.stderr
    assert 'for policy "vault-b"' in result.stdout
    assert "refus" not in result.stderr


def test_a_trusted_path_that_is_not_a_directory_is_one_line(tmp_path: Path) -> None:
    write_checkout(tmp_path / "pr", {"vault-b": "https://vault.example.com/scim/v2"})

    result = plan(tmp_path, "unused-token", "--trusted", "missing", "pr")

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "missing" in result.stderr
    assert "Traceback" not in result.stderr
