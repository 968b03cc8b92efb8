"""`syncctl export` and `syncctl search` through the installed binary against the emulator,
and the offline round trip: planning from an exported file reads exactly what Graph gave."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncctl.emulator import Emulator
from syncctl.emulator.faults import drop_items
from syncctl.errors import SnapshotError
from syncctl.source import load_snapshot, read_source
from tests.integration.source.conftest import SECRET_ENV

SYNCCTL = str(Path(sys.executable).with_name("syncctl"))
pytestmark = pytest.mark.slow  # each test starts the real binary (about 1.5 s apiece)


def _write_policy(emu: Emulator, directory: Path, name: str = "emu") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(
        f"""version: 1
name: {name}
tenant:
  id: {emu.tenant_id}
  client_id: {emu.client_id}
  credential:
    client_secret: {{env: {SECRET_ENV}}}
  endpoints:
    authority: {emu.authority}
    graph: {emu.graph}
  ca_bundle: {emu.ca_bundle}
source:
  scope_groups: [Password Manager Users]
  groups:
    - Vault Admins
    - {{match: "^PM-"}}
target:
  type: sqlite
  path: {name}.db
""",
        encoding="utf-8",
    )
    return path


def _run(*args: str, secret: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
    env[SECRET_ENV] = secret
    return subprocess.run(
        [SYNCCTL, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_export_then_offline_read_equals_online_read(emu: Emulator, tmp_path: Path) -> None:
    policy_file = _write_policy(emu, tmp_path)
    out = tmp_path / "snap.json"
    result = _run("export", str(policy_file), "-o", str(out), secret=emu.client_secret)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "Wrote" in result.stderr
    first = out.read_bytes()
    assert (
        _run("export", str(policy_file), "-o", str(out), secret=emu.client_secret).returncode == 0
    )
    assert out.read_bytes() == first  # deterministic

    from syncctl.policy import load_policies

    (online_policy,) = load_policies([policy_file])
    offline_policy = dataclasses.replace(
        online_policy, tenant=dataclasses.replace(online_policy.tenant, snapshot=out)
    )
    slice_ = load_snapshot(out)
    some_user = sorted(slice_.users)[0]
    managed = [some_user]
    online = read_source(online_policy, managed)
    offline = read_source(offline_policy, managed)
    assert offline.fingerprint() == online.fingerprint()
    assert len(online.users) > 10


def test_search_text_and_json(emu: Emulator, tmp_path: Path) -> None:
    policy_file = _write_policy(emu, tmp_path)
    text = _run("search", str(policy_file), "Vault", secret=emu.client_secret)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["Name", "Type", "Department", "Description", "Object", "id"]
    vault = emu.tenant.group_by_name("Vault Admins")
    assert vault is not None
    assert any(
        line.startswith("Vault Admins") and "Security Group" in line and vault["id"] in line
        for line in lines[1:]
    )
    as_json = _run("search", str(policy_file), "PM-", "--format", "json", secret=emu.client_secret)
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    names = [r["name"] for r in rows]
    assert {"PM-Engineering", "PM-Finance", "PM-Support", "PM-Archive"} <= set(names)
    assert names == sorted(names, key=str.casefold)
    assert set(rows[0]) == {"name", "type", "department", "description", "id", "tenant"}


def test_search_all_lists_users_with_member_and_guest_types(emu: Emulator, tmp_path: Path) -> None:
    policy_file = _write_policy(emu, tmp_path)
    result = _run("search", str(policy_file), "--format", "json", secret=emu.client_secret)
    rows = json.loads(result.stdout)
    types = {r["type"] for r in rows}
    assert {"Member", "Guest", "Security Group", "Microsoft 365 Group"} <= types
    assert len(rows) == len(emu.tenant.users) + len(emu.tenant.groups)


def test_wrong_secret_fails_with_one_line_and_exit_1(emu: Emulator, tmp_path: Path) -> None:
    policy_file = _write_policy(emu, tmp_path)
    out = tmp_path / "snap.json"
    result = _run("export", str(policy_file), "-o", str(out), secret="wrong-secret-value")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: sign-in to tenant")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "wrong-secret-value" not in result.stderr
    assert not out.exists()


def test_export_needs_exactly_one_policy(emu: Emulator, tmp_path: Path) -> None:
    _write_policy(emu, tmp_path, "one")
    _write_policy(emu, tmp_path, "two")
    result = _run("export", str(tmp_path), "-o", str(tmp_path / "x.json"), secret="s")
    assert result.returncode == 1
    assert "holds 2 policies" in result.stderr


@pytest.mark.parametrize("term", ["", "pm-"])
def test_search_offline_demo(term: str) -> None:
    demo = Path(__file__).resolve().parents[3] / "policies" / "demo.yaml"
    result = _run("search", str(demo), term, "--format", "json", secret="unused")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    if term:
        assert [r["name"] for r in rows] == ["PM-Engineering", "PM-Finance"]
    else:
        assert len(rows) == 36  # 32 users + 4 groups in policies/snapshots/demo.json


def test_validate_online_signs_in_and_names_a_refused_secret(emu: Emulator, tmp_path: Path) -> None:
    policy_file = _write_policy(emu, tmp_path)
    good = _run("validate", "--online", str(policy_file), secret=emu.client_secret)
    assert good.returncode == 0, good.stderr
    bad = _run("validate", "--online", str(policy_file), secret="not-the-secret")
    assert bad.returncode == 1
    assert "policy emu" in bad.stderr and "source: sign-in to tenant" in bad.stderr
    assert "not-the-secret" not in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
    offline = _run("validate", str(policy_file), secret="not-the-secret")
    assert offline.returncode == 0  # plain validate never signs in


def test_export_of_a_truncated_read_exits_1_and_writes_no_file(
    emu: Emulator, tmp_path: Path
) -> None:
    policy_file = _write_policy(emu, tmp_path)
    out = tmp_path / "snap.json"
    emu.faults.add(
        path="members/microsoft.graph.user", status=None, rewrite=drop_items(10), times=None
    )
    result = _run("export", str(policy_file), "-o", str(out), secret=emu.client_secret)
    assert result.returncode == 1, result.stderr
    assert "incomplete answer" in result.stderr and "@odata.count" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
    # Nor does a failed export replace the snapshot a policy already reads.
    out.write_text("previous", encoding="utf-8")
    assert (
        _run("export", str(policy_file), "-o", str(out), secret=emu.client_secret).returncode == 1
    )
    assert out.read_text(encoding="utf-8") == "previous"


def test_a_token_answer_that_is_not_json_prints_one_line(emu: Emulator, tmp_path: Path) -> None:
    policy_file = _write_policy(emu, tmp_path)
    emu.faults.add(
        path="oauth2/v2.0/token", method="POST", status=None, body=b"<html>proxy</html>", times=None
    )
    result = _run("export", str(policy_file), "-o", str(tmp_path / "s.json"), secret="x" * 12)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: sign-in to tenant"), result.stderr
    assert "oauth2/v2.0/token answered HTTP 200 with a body that is not JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # no MSAL traceback through logging


def test_export_by_domain_records_the_tenant_id_so_either_name_reads_it(
    emu: Emulator, tmp_path: Path
) -> None:
    by_domain = _write_policy(emu, tmp_path)
    by_domain.write_text(
        by_domain.read_text(encoding="utf-8").replace(
            f"id: {emu.tenant_id}", f"id: {emu.tenant.domain}"
        ),
        encoding="utf-8",
    )
    out = tmp_path / "snap.json"
    result = _run("export", str(by_domain), "-o", str(out), secret=emu.client_secret)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert (document["tenant"], document["tenant_id"]) == (emu.tenant.domain, emu.tenant_id)

    from syncctl.policy import load_policies

    (policy,) = load_policies([by_domain])
    for name in (emu.tenant.domain, emu.tenant_id.upper()):
        offline = dataclasses.replace(
            policy, tenant=dataclasses.replace(policy.tenant, id=name, snapshot=out)
        )
        assert len(read_source(offline, ()).users) > 10
    other = dataclasses.replace(
        policy, tenant=dataclasses.replace(policy.tenant, id="fabrikam.example", snapshot=out)
    )
    with pytest.raises(SnapshotError, match=r"snap\.json: snapshot was read from tenant"):
        read_source(other, ())
