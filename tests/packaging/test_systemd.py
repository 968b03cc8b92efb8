"""The systemd units of ``deploy/systemd``: ``systemd-analyze verify`` accepts them without a
single warning (it reports unknown keys and unparsable values as warnings, exit 0, so any
output fails the test), and the directives the docs promise are there, read with configparser.

verify also requires every ExecStart binary to exist: the copies it checks run this
environment's real ``syncctl`` instead of ``/opt/syncctl/bin/syncctl``.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli.binary import REPO, SYNCCTL

SYSTEMD = REPO / "deploy" / "systemd"
UNITS = ("syncctl.service", "syncctl.timer", "syncctl-watch.service")
INSTALLED = "/opt/syncctl/bin/syncctl"


def unit(name: str) -> configparser.ConfigParser:
    # strict=False: systemd allows a key more than once (SystemCallFilter); no interpolation:
    # %S is a systemd specifier, not configparser's.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text(encoding="utf-8"), source=name)
    return parser


def test_systemd_analyze_verify_accepts_the_units_without_warnings(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze (package systemd) is needed"
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8")
        assert INSTALLED in text or name.endswith(".timer"), name
        (tmp_path / name).write_text(text.replace(INSTALLED, SYNCCTL), encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(f"./{name}" for name in UNITS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), (
        done.stdout + done.stderr
    )


@pytest.mark.parametrize("name", ["syncctl.service", "syncctl-watch.service"])
def test_services_are_sandboxed(name: str) -> None:
    service = unit(name)["Service"]
    for key, value in {
        "DynamicUser": "yes",
        "StateDirectory": "syncctl",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service.get(key) == value, key
    assert service["EnvironmentFile"].lstrip("-") == "/etc/syncctl/syncctl.env"
    assert "TimeoutStopSec" in service
    assert "NO_COLOR=1" in service["Environment"].split()


def test_the_oneshot_service_and_its_timer() -> None:
    service = unit("syncctl.service")
    assert service["Service"]["Type"] == "oneshot"
    command = service["Service"]["ExecStart"].split()
    assert command[:3] == [INSTALLED, "apply", "--auto-approve"]
    assert "--allow-mass-delete" not in command
    timeout_minutes = int(command[command.index("--timeout") + 1].removesuffix("m"))
    lock_minutes = int(command[command.index("--lock-timeout") + 1].removesuffix("m"))
    # The unit's start deadline is the backstop above syncctl's own deadlines.
    start_minutes = int(service["Service"]["TimeoutStartSec"].removesuffix("min"))
    assert timeout_minutes + lock_minutes < start_minutes <= 15
    assert "syncctl-watch.service" in service["Unit"]["Conflicts"].split()
    assert "network-online.target" in service["Unit"]["After"].split()
    assert "Install" not in service  # started by the timer, never enabled on its own

    timer = unit("syncctl.timer")["Timer"]
    assert timer["OnCalendar"] == "*:0/15"
    assert timer["Persistent"] == "true"
    assert timer["RandomizedDelaySec"]
    assert timer.get("Unit", "syncctl.service") == "syncctl.service"
    assert unit("syncctl.timer")["Install"]["WantedBy"] == "timers.target"


def test_the_watch_service() -> None:
    service = unit("syncctl-watch.service")
    assert service["Service"]["Type"] == "simple"
    command = service["Service"]["ExecStart"].split()
    assert command[:3] == [INSTALLED, "watch", "/etc/syncctl/policies"]
    assert "--every" in command
    assert command[command.index("--metrics-listen") + 1] == "127.0.0.1:9185"
    assert service["Service"]["Restart"] == "on-failure"
    assert set(service["Unit"]["Conflicts"].split()) == {"syncctl.timer", "syncctl.service"}
    assert service["Install"]["WantedBy"] == "multi-user.target"
