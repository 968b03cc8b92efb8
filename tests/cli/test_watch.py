"""``syncctl watch`` through the real binary against the Graph emulator: it reconciles an
Entra change within two cycles, serves /metrics and /healthz, goes on past a refused plan,
and stops cleanly on SIGTERM. Progress is read off its log lines, never timed."""

from __future__ import annotations

import os
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncctl.emulator import Emulator
from tests.cli.binary import run_syncctl
from tests.cli.delta_workspace import SECRET_ENV, Workspace, delta_emulator, scope_user
from tests.cli.streaming import StreamedRun


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with delta_emulator(users=120, groups=8, seed=31) as emu:
        yield emu


class Watch(StreamedRun):
    """A running ``syncctl watch`` of a workspace's policy."""

    def __init__(self, space: Workspace, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
        env.update({"NO_COLOR": "1", SECRET_ENV: space.emu.client_secret})
        super().__init__("watch", space.policy_file.name, *args, cwd=space.root, env=env)

    def last_cycle(self) -> int:
        cycles = [int(m[1]) for m in (re.search(r"cycle (\d+):", x) for x in self.lines) if m]
        return max(cycles, default=0)

    def stop(self) -> int:
        return self.terminate()


@pytest.fixture
def watching() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for watch in started:
        watch.kill()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_an_entra_change_is_applied_within_two_cycles(
    emu: Emulator, tmp_path: Path, watching: list[Watch]
) -> None:
    space = Workspace.create(emu, tmp_path / "ws", "live")
    watch = Watch(space, "--every", "1s", "--metrics-listen", "127.0.0.1:0")
    watching.append(watch)
    url = watch.wait_for(r"serving (http://\S+)/metrics")[1]
    watch.wait_for(r"cycle 1: live: success \(create \d+")
    quiet = watch.wait_for(r"cycle \d+: live: no_changes in \S+, (\d+) Graph requests")
    assert quiet[1] == "2"  # a cycle with nothing to do costs the two delta requests

    user = scope_user(emu, space.managed())
    emu.tenant.disable_user(user)
    before = watch.last_cycle()  # the cycle after it may have read Graph already
    applied = watch.wait_for(r"cycle (\d+): live: success \(disable 1\b.*; applied \d+\)")
    assert int(applied[1]) <= before + 2, watch.lines
    assert user in space.state()["disabled_at"]

    status, text = get(f"{url}/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    run = (("operation", "apply"), ("policy", "live"))
    assert samples[("syncctl_run_success", run)] == 1.0
    assert samples[("syncctl_managed_objects", (("kind", "user"), ("policy", "live")))] > 0
    assert get(f"{url}/healthz") == (200, "ok\n")

    assert watch.stop() == 0, watch.lines
    assert "stopped: locks released" in watch.lines[-1]
    shown = run_syncctl("status", space.policy_file.name, "--format", "json", cwd=space.root)
    assert '"locked_by": null' in shown.stdout, shown.stdout


def test_a_refused_plan_is_reported_and_the_loop_goes_on(
    emu: Emulator, tmp_path: Path, watching: list[Watch]
) -> None:
    space = Workspace.create(emu, tmp_path / "ws", "guarded")
    document = space.policy()
    document["deletion"] = {"max_disables": 0}
    space.write_policy(document)
    assert space.converge().code == 0
    user = scope_user(emu, space.managed(), index=1)
    emu.tenant.disable_user(user)
    watch = Watch(space, "--every", "1s")
    watching.append(watch)
    first = watch.wait_for(r"cycle (\d+): guarded: refused \(disable 1\b.*max_disables")
    watch.wait_for(rf"cycle {int(first[1]) + 1}: guarded: refused .*\(2 failures in a row\)")
    assert user not in space.state().get("disabled_at", {})  # never applied
    assert watch.stop() == 0, watch.lines


def test_a_metrics_port_in_use_is_a_clear_error(emu: Emulator, tmp_path: Path) -> None:
    space = Workspace.create(emu, tmp_path / "ws", "busy")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_syncctl(
            "watch", space.policy_file.name, "--every", "1m",
            "--metrics-listen", f"127.0.0.1:{port}", cwd=space.root,
        )  # fmt: skip
    assert result.returncode == 1
    expected = f"Error: --metrics-listen 127.0.0.1:{port}: cannot listen: address already in use"
    assert expected in result.stderr
    assert not space.state_file.exists()  # nothing ran


@pytest.mark.parametrize(
    ("every", "message"),
    [("soon", "is not a duration"), ("0s", "must be at least 1s")],
)
def test_a_wrong_interval_is_a_usage_error(
    emu: Emulator, tmp_path: Path, every: str, message: str
) -> None:
    space = Workspace.create(emu, tmp_path / "ws", "bad")
    result = run_syncctl("watch", space.policy_file.name, "--every", every, cwd=space.root)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
