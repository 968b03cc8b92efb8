"""``syncctl status --check`` through the real binary, against the Graph emulator: connected,
unauthorized (with Entra's AADSTS code), forbidden (naming the missing permission) and
unreachable, per policy, next to the last run; exit 0 only when every policy is connected."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from tests.cli.binary import copy_demo, run_syncctl

GOOD_ENV = "STATUS_GOOD_SECRET"
BAD_SECRET = "not-the-secret-4a7f19c2"
WRONG_SCIM_TOKEN = "wrong-scim-token-8d2e51"


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with running_emulator(generate_tenant(users=30, groups=6, seed=14)) as emu:
        yield emu


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_policy(
    directory: Path,
    emu: Emulator,
    name: str,
    *,
    client_id: str | None = None,
    secret_env: str = GOOD_ENV,
    target: dict[str, Any] | None = None,
    authority: str | None = None,
) -> Path:
    document = {
        "version": 1,
        "name": name,
        "tenant": {
            "id": emu.tenant_id,
            "client_id": client_id or emu.client_id,
            "credential": {"client_secret": {"env": secret_env}},
            "endpoints": {"authority": authority or emu.authority, "graph": emu.graph},
            "ca_bundle": str(emu.ca_bundle),
        },
        "source": {"scope_groups": ["Password Manager Users"]},
        "target": target or {"type": "sqlite", "path": f"{name}.db"},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def check(
    emu: Emulator, cwd: Path, *args: str | Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_syncctl("status", "--check", *args, cwd=cwd, **{GOOD_ENV: emu.client_secret, **env})


def lines_by_policy(stdout: str) -> dict[str, str]:
    lines = {}
    for line in stdout.splitlines():
        name = line.split('"')[1]
        lines[name] = line
    return lines


def connections(stdout: str) -> dict[str, dict[str, Any]]:
    return {row["policy"]: row["connection"] for row in json.loads(stdout)["policies"]}


def test_a_good_secret_is_connected_and_exits_0(emu: Emulator, tmp_path: Path) -> None:
    # Not created yet, nor its directory: apply would create both, so it counts as connected.
    write_policy(tmp_path, emu, "vault", target={"type": "sqlite", "path": "new/dir/vault.db"})

    result = check(emu, tmp_path, "vault.yaml")

    assert result.returncode == 0, result.stderr
    assert result.stdout == 'policy "vault": connected; never run; 0 managed objects\n'
    assert not (tmp_path / "new").exists()  # a check creates nothing
    assert emu.client_secret not in result.stdout + result.stderr
    assert any(path.endswith("/oauth2/v2.0/token") for _, path, _ in emu.recorded())


def test_the_last_run_stays_next_to_the_connection(emu: Emulator, tmp_path: Path) -> None:
    write_policy(tmp_path, emu, "vault")
    applied = run_syncctl(
        "apply", "--auto-approve", "vault.yaml", cwd=tmp_path, **{GOOD_ENV: emu.client_secret}
    )
    assert applied.returncode == 0, applied.stderr
    plain = run_syncctl("status", "vault.yaml", cwd=tmp_path)

    result = check(emu, tmp_path, "vault.yaml")

    assert result.returncode == 0, result.stderr
    assert plain.stdout.startswith('policy "vault": last apply ')
    assert ": success (" in plain.stdout
    # The same line as without --check, with the connection after the policy's name.
    assert result.stdout == plain.stdout.replace(
        'policy "vault": ', 'policy "vault": connected; ', 1
    )


def test_a_bad_secret_is_unauthorized_with_the_aadsts_code(emu: Emulator, tmp_path: Path) -> None:
    write_policy(tmp_path, emu, "vault", secret_env="STATUS_BAD_SECRET")

    result = check(emu, tmp_path, "vault.yaml", STATUS_BAD_SECRET=BAD_SECRET)
    as_json = check(emu, tmp_path, "vault.yaml", "--format", "json", STATUS_BAD_SECRET=BAD_SECRET)

    assert result.returncode == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(
        f'policy "vault": unauthorized: source: sign-in to tenant {emu.tenant_id} '
        "(ClientSecret): invalid_client: AADSTS7000215: Invalid client secret provided."
    )
    assert line.endswith("; never run; 0 managed objects")
    assert as_json.returncode == 1
    connection = connections(as_json.stdout)["vault"]
    assert connection["status"] == "unauthorized"
    assert connection["side"] == "source"
    assert connection["code"] == "AADSTS7000215"
    assert connection["missing_permissions"] == []
    assert connection["target"]["status"] == "connected"  # checked although the source failed
    assert BAD_SECRET not in result.stdout + result.stderr + as_json.stdout + as_json.stderr


@pytest.mark.parametrize(
    ("roles", "missing"),
    [
        (["User.Read.All", "GroupMember.Read.All"], ["Directory.Read.All"]),
        (["User.Read.All"], ["GroupMember.Read.All", "Directory.Read.All"]),
    ],
)
def test_a_missing_permission_is_forbidden_and_named(
    emu: Emulator, tmp_path: Path, roles: list[str], missing: list[str]
) -> None:
    client_id, secret = emu.add_application(roles=roles)
    write_policy(tmp_path, emu, "vault", client_id=client_id, secret_env="STATUS_APP_SECRET")

    result = check(emu, tmp_path, "vault.yaml", STATUS_APP_SECRET=secret)
    as_json = check(emu, tmp_path, "vault.yaml", "--format", "json", STATUS_APP_SECRET=secret)

    assert result.returncode == 1
    noun = "permission" if len(missing) == 1 else "permissions"
    assert result.stdout == (
        f'policy "vault": forbidden: source: signed in to Entra, but the app registration '
        f"lacks the application {noun} {', '.join(missing)}; add "
        f"{'it' if len(missing) == 1 else 'them'} and grant admin consent; never run; "
        "0 managed objects\n"
    )
    connection = connections(as_json.stdout)["vault"]
    assert (connection["status"], connection["side"]) == ("forbidden", "source")
    assert connection["missing_permissions"] == missing
    assert connection["code"] is None
    assert secret not in result.stdout + result.stderr + as_json.stdout


def test_unreachable_targets(emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the database's directory should be")
    port = closed_port()
    write_policy(
        tmp_path,
        emu,
        "scim-down",
        target={
            "type": "scim",
            "url": f"http://127.0.0.1:{port}/scim/v2",
            "token": {"env": GOOD_ENV},
        },
    )
    write_policy(tmp_path, emu, "sqlite-blocked", target={"type": "sqlite", "path": "blocker/x.db"})

    result = check(emu, tmp_path, ".", "--format", "json")

    assert result.returncode == 1
    found = connections(result.stdout)
    assert found["scim-down"]["status"] == "unreachable"
    assert found["scim-down"]["side"] == "target"
    assert found["scim-down"]["detail"].startswith(
        f"GET http://127.0.0.1:{port}/scim/v2/ServiceProviderConfig: connection failed"
    )
    assert found["scim-down"]["source"]["status"] == "connected"
    assert found["sqlite-blocked"] == {
        "status": "unreachable",
        "side": "target",
        "detail": f"sqlite {tmp_path / 'blocker' / 'x.db'}: {tmp_path / 'blocker'} is not a "
        "directory",
        "code": None,
        "missing_permissions": [],
        "unchecked": [],
        "source": {"status": "connected", "detail": "signed in to Entra"},
        "target": {
            "status": "unreachable",
            "detail": f"sqlite {tmp_path / 'blocker' / 'x.db'}: {tmp_path / 'blocker'} is not "
            "a directory",
        },
    }


def test_a_scim_target_that_refuses_its_token_is_unauthorized(
    emu: Emulator, tmp_path: Path
) -> None:
    from tests.contract.scim_harness import shared_server

    server = shared_server()
    target = {"type": "scim", "url": server.tenant_url(), "token": {"env": "STATUS_SCIM_TOKEN"}}
    write_policy(tmp_path, emu, "vault", target=target)

    good = check(emu, tmp_path, "vault.yaml", STATUS_SCIM_TOKEN=server.token)
    bad = check(emu, tmp_path, "vault.yaml", "--format", "json", STATUS_SCIM_TOKEN=WRONG_SCIM_TOKEN)

    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout == 'policy "vault": connected; never run; 0 managed objects\n'
    assert bad.returncode == 1
    connection = connections(bad.stdout)["vault"]
    assert (connection["status"], connection["side"]) == ("unauthorized", "target")
    assert "(401 Unauthorized)" in connection["detail"]
    assert WRONG_SCIM_TOKEN not in bad.stdout + bad.stderr
    assert server.token not in good.stdout + good.stderr


def test_a_sign_in_service_that_cannot_be_reached_is_unreachable(
    emu: Emulator, tmp_path: Path
) -> None:
    write_policy(tmp_path, emu, "closed", authority=f"https://127.0.0.1:{closed_port()}")
    write_policy(tmp_path, emu, "proxied")
    emu.faults.add(
        path="oauth2/v2.0/token", method="POST", status=None, body=b"<html>proxy</html>", times=None
    )

    result = check(emu, tmp_path, ".", "--format", "json")

    assert result.returncode == 1
    found = connections(result.stdout)
    assert (found["closed"]["status"], found["closed"]["side"]) == ("unreachable", "source")
    assert "cannot reach the sign-in service" in found["closed"]["detail"]
    assert (found["proxied"]["status"], found["proxied"]["side"]) == ("unreachable", "source")
    assert "is a proxy or captive portal in the way?" in found["proxied"]["detail"]
    assert found["closed"]["code"] is None


def test_every_policy_is_checked_in_name_order_and_one_failure_fails_the_run(
    emu: Emulator, tmp_path: Path
) -> None:
    weak_id, weak_secret = emu.add_application(roles=["User.Read.All", "GroupMember.Read.All"])
    write_policy(tmp_path, emu, "delta", client_id=weak_id, secret_env="STATUS_WEAK_SECRET")
    write_policy(tmp_path, emu, "alpha")
    write_policy(tmp_path, emu, "charlie", secret_env="STATUS_BAD_SECRET")
    demo = copy_demo(tmp_path / "offline")  # a snapshot policy: connected when it loads

    result = check(
        emu,
        tmp_path,
        ".",
        demo,
        STATUS_WEAK_SECRET=weak_secret,
        STATUS_BAD_SECRET=BAD_SECRET,
    )
    as_json = check(
        emu,
        tmp_path,
        ".",
        demo,
        "--format",
        "json",
        STATUS_WEAK_SECRET=weak_secret,
        STATUS_BAD_SECRET=BAD_SECRET,
    )

    assert result.returncode == 1
    names = [line.split('"')[1] for line in result.stdout.splitlines()]
    assert names == ["alpha", "charlie", "delta", "demo"]
    statuses = {
        name: line.split(": ")[1].split(";")[0]
        for name, line in lines_by_policy(result.stdout).items()
    }
    assert statuses["alpha"] == "connected"
    assert statuses["demo"] == "connected"
    assert lines_by_policy(result.stdout)["charlie"].startswith('policy "charlie": unauthorized: ')
    assert lines_by_policy(result.stdout)["delta"].startswith('policy "delta": forbidden: ')
    found = connections(as_json.stdout)
    assert [found[name]["status"] for name in ("alpha", "charlie", "delta", "demo")] == [
        "connected",
        "unauthorized",
        "forbidden",
        "connected",
    ]
    assert found["demo"]["detail"].startswith("snapshot read; sqlite ")
    output = result.stdout + result.stderr + as_json.stdout + as_json.stderr
    for secret in (emu.client_secret, weak_secret, BAD_SECRET):
        assert secret not in output
    assert "Traceback" not in output


def test_without_check_status_does_not_touch_the_network(emu: Emulator, tmp_path: Path) -> None:
    write_policy(tmp_path, emu, "vault")

    text = run_syncctl("status", "vault.yaml", cwd=tmp_path)
    as_json = run_syncctl("status", "vault.yaml", "--format", "json", cwd=tmp_path)

    assert (text.returncode, as_json.returncode) == (0, 0)
    assert text.stdout == 'policy "vault": never run; 0 managed objects\n'
    (row,) = json.loads(as_json.stdout)["policies"]
    assert "connection" not in row
    assert emu.recorded() == []


def test_an_existing_database_is_opened_without_being_changed(
    emu: Emulator, tmp_path: Path
) -> None:
    database = tmp_path / "vault.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE other (x)")
    before = database.read_bytes()
    (tmp_path / "junk.db").write_bytes(b"not a database at all, but long enough" * 40)
    write_policy(tmp_path, emu, "vault")
    write_policy(tmp_path, emu, "junk")

    result = check(emu, tmp_path, ".", "--format", "json")

    found = connections(result.stdout)
    assert found["vault"]["target"] == {
        "status": "connected",
        "detail": f"sqlite {database}: database opens",
    }
    assert found["junk"]["status"] == "unreachable"
    assert found["junk"]["detail"].startswith(f"sqlite {tmp_path / 'junk.db'}: cannot read")
    assert database.read_bytes() == before  # no migration, no WAL switch
    assert result.returncode == 1


def test_a_sign_in_service_failing_with_5xx_is_unreachable_not_unauthorized(
    emu: Emulator, tmp_path: Path
) -> None:
    write_policy(tmp_path, emu, "vault")
    emu.faults.add(path="oauth2/v2.0/token", method="POST", status=503, times=None)

    result = check(emu, tmp_path, "vault.yaml", "--format", "json")

    assert result.returncode == 1
    connection = connections(result.stdout)["vault"]
    assert (connection["status"], connection["side"]) == ("unreachable", "source")
    assert connection["code"] is None
