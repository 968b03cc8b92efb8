"""Writeback through the real binary against the Graph emulator: report mode writes nothing and
shows every difference; enforce writes exactly the differing properties and converges; a
password is set once, set again only after a change in the secret or in Entra, and is never
visible anywhere (outputs, plan file, state, audit log)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncctl.emulator import Emulator
from syncctl.emulator.identity import DEFAULT_ROLES
from tests.cli.delta_workspace import SECRET_ENV, Run, Workspace, delta_emulator, scope_user

PASSWORD_ENV = "SVC_PASSWORD"
FIRST = "Vault-r0tated!one"
SECOND = "Vault-r0tated!two"
MOBILE = 'phoneNumbers[type eq "mobile"].value'


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with delta_emulator(users=80, groups=6, seed=41) as emu:
        yield emu


def workspace(
    emu: Emulator, root: Path, name: str, writeback: dict[str, Any], roles: tuple[str, ...]
) -> Workspace:
    """A converged workspace whose app holds the read roles plus ``roles``, and whose users
    carry ``title`` and a mobile number the application owns."""
    space = Workspace.create(emu, root, name)
    client_id, secret = emu.add_application(roles=[*DEFAULT_ROLES, *roles])
    document = space.policy()
    document["tenant"]["client_id"] = client_id
    document["mappings"] = {
        "user": {
            "attributes": {
                "userName": "[userPrincipalName]",
                "displayName": "[displayName]",
            }
        }
    }
    space.write_policy(document)
    space.env[SECRET_ENV] = secret
    converged = space.run("apply", "--auto-approve")
    assert converged.code == 0, converged
    document["writeback"] = writeback
    space.write_policy(document)
    return space


def app_owns(space: Workspace, upn: str, title: str, mobile: str) -> None:
    """The application sets its own values on its row (as the vault's UI would)."""
    changed = space.sql(
        "UPDATE users SET attributes = json_set(attributes, '$.title', ?, '$.phoneNumbers',"
        " json_array(json_object('type', 'mobile', 'value', ?))) WHERE user_name = ?",
        title,
        mobile,
        upn,
    )
    assert changed == 1


def entra_changes(run: Run) -> list[dict[str, Any]]:
    document = json.loads(run.stdout)
    return [c for c in document["policies"][0]["changes"] if c["kind"] == "entra_user"]


def upn_of(emu: Emulator, user_id: str) -> str:
    return str(emu.tenant.users[user_id]["userPrincipalName"])


def test_report_shows_every_difference_and_enforce_writes_exactly_them(
    emu: Emulator, tmp_path: Path
) -> None:
    attributes = {"jobTitle": "[title]", "mobilePhone": f"[{MOBILE}]"}
    space = workspace(
        emu, tmp_path / "ws", "attrs", {"mode": "report", "attributes": attributes},
        ("User.ReadWrite.All",),
    )  # fmt: skip
    first, second = (scope_user(emu, space.managed(), index=i) for i in (0, 1))
    app_owns(space, upn_of(emu, first), "Backup Operator", "+1 555 0100")
    app_owns(
        space, upn_of(emu, second), str(emu.tenant.users[second].get("jobTitle")), "+1 555 0101"
    )
    emu.tenant.writes.clear()

    planned = space.run("plan", "--format", "json", "--detailed-exitcode")
    assert planned.code == 2, planned
    reported = entra_changes(planned)
    assert {c["action"] for c in reported} == {"report"}
    by_user = {c["source_id"]: {a["path"]: a for a in c["attributes"]} for c in reported}
    assert set(by_user) == {first, second}
    assert by_user[first]["jobTitle"]["after"] == "Backup Operator"
    assert by_user[first]["jobTitle"]["before"] == emu.tenant.users[first].get("jobTitle")
    assert set(by_user[second]) == {"mobilePhone"}  # only what differs
    text = space.run("plan")
    assert "Differences from Entra, reported only" in text.stdout, text

    applied = space.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    assert emu.tenant.writes == []  # report mode never writes

    document = space.policy()
    document["writeback"]["mode"] = "enforce"
    space.write_policy(document)
    planned = space.run("plan", "--format", "json", "-o", "plan.json")
    assert {c["action"] for c in entra_changes(planned)} == {"update"}
    # A saved plan whose Entra values moved on is stale: refused, nothing written.
    before = emu.tenant.users[first].get("jobTitle")
    emu.tenant.update_user(first, jobTitle="Edited in Entra")
    stale = space.run("apply", "plan.json")
    assert stale.code == 3, stale
    assert "Saved plan is stale" in stale.stderr
    assert emu.tenant.writes == []
    emu.tenant.update_user(first, jobTitle=before)
    applied = space.run("apply", "--auto-approve")
    assert applied.code == 0, applied
    assert sorted(emu.tenant.writes) == sorted(
        [(first, ("jobTitle", "mobilePhone")), (second, ("mobilePhone",))]
    )
    assert emu.tenant.users[first]["jobTitle"] == "Backup Operator"
    assert emu.tenant.users[second]["mobilePhone"] == "+1 555 0101"

    again = space.run("plan", "--detailed-exitcode")
    assert again.code == 0, again  # converged: Entra holds the application's values


def test_a_password_is_set_once_and_again_only_after_a_change(
    emu: Emulator, tmp_path: Path
) -> None:
    service = next(
        uid for uid, u in sorted(emu.tenant.users.items()) if u.get("accountEnabled", True)
    )
    upn = upn_of(emu, service)
    entry = {"user": upn, "secret": {"env": PASSWORD_ENV}, "mode": "enforce"}
    space = workspace(
        emu, tmp_path / "ws", "pw", {"passwords": [entry]}, ("User-PasswordProfile.ReadWrite.All",)
    )
    space.env[PASSWORD_ENV] = FIRST
    seen: list[str] = []

    def run(*args: str) -> Run:
        result = space.run(*args)
        seen.extend((result.stdout, result.stderr))
        return result

    planned = run("plan", "--format", "json", "--detailed-exitcode", "-o", "plan.json")
    assert planned.code == 2, planned
    (change,) = entra_changes(planned)
    assert change["address"] == f"entra_user/{upn}/passwordProfile"
    assert (change["action"], change["reason"]) == ("update", "password_not_set")
    assert change["attributes"][0]["after"] == "(redacted)"

    applied = run("apply", "--auto-approve", "--audit-log", "audit.jsonl")
    assert applied.code == 0, applied
    assert emu.tenant.password_matches(service, FIRST)
    record = space.state()["passwords"][service]
    assert record["changed_at"] == emu.tenant.users[service]["lastPasswordChangeDateTime"]
    assert run("plan", "--detailed-exitcode").code == 0  # set once

    space.env[PASSWORD_ENV] = SECOND  # the vault rotated it
    planned = run("plan", "--format", "json")
    assert [c["reason"] for c in entra_changes(planned)] == ["password_secret_changed"]
    assert run("apply", "--auto-approve", "--audit-log", "audit.jsonl").code == 0
    assert emu.tenant.password_matches(service, SECOND)
    assert run("plan", "--detailed-exitcode").code == 0

    emu.tenant.advance(60)
    emu.tenant.record_password_change(service)  # an admin reset it in Entra
    planned = run("plan", "--format", "json")
    assert [c["reason"] for c in entra_changes(planned)] == ["password_changed_in_entra"]
    assert run("apply", "--auto-approve", "--audit-log", "audit.jsonl").code == 0
    assert emu.tenant.password_matches(service, SECOND)
    assert run("plan", "--detailed-exitcode").code == 0

    everywhere = [
        *seen,
        (space.root / "plan.json").read_text(),
        space.state_file.read_text(),
        (space.root / "audit.jsonl").read_text(),
    ]
    for secret in (FIRST, SECOND):
        assert not [text for text in everywhere if secret in text]
    assert len((space.root / "audit.jsonl").read_text().splitlines()) == 3


def test_report_mode_flags_a_password_and_writes_nothing(emu: Emulator, tmp_path: Path) -> None:
    service = sorted(emu.tenant.users)[3]
    entry = {"user": service, "secret": {"env": PASSWORD_ENV}}  # by object id; report mode
    space = workspace(emu, tmp_path / "ws", "pwreport", {"passwords": [entry]}, ())
    space.env[PASSWORD_ENV] = FIRST
    emu.tenant.writes.clear()
    planned = space.run("plan", "--format", "json")
    (change,) = entra_changes(planned)
    assert (change["action"], change["reason"]) == ("report", "password_not_set")
    assert change["address"] == f"entra_user/{upn_of(emu, service)}/passwordProfile"
    assert space.run("apply", "--auto-approve").code == 0
    assert emu.tenant.writes == []
    assert not emu.tenant.password_matches(service, FIRST)


def test_refusals_are_per_object_errors_that_never_show_the_password(
    emu: Emulator, tmp_path: Path
) -> None:
    weak, denied = sorted(emu.tenant.users)[5:7]
    entries = [
        {"user": weak, "secret": {"env": "WEAK_PASSWORD"}, "mode": "enforce"},
        {"user": denied, "secret": {"env": PASSWORD_ENV}, "mode": "enforce"},
    ]
    # The app may set no password at all: the second is refused with a 403...
    space = workspace(emu, tmp_path / "ws", "refused", {"passwords": entries}, ())
    space.env.update({"WEAK_PASSWORD": "abc", PASSWORD_ENV: FIRST})
    applied = space.run("apply", "--auto-approve")
    assert applied.code == 1, applied
    assert "User-PasswordProfile.ReadWrite.All" in applied.stdout + applied.stderr
    assert "Traceback" not in applied.stderr
    for secret in ("abc", FIRST):
        assert f'"{secret}"' not in applied.stdout + applied.stderr
    # ... and with the permission, the weak one is refused by Entra's complexity rules.
    document = space.policy()
    client_id, secret = emu.add_application(
        roles=[*DEFAULT_ROLES, "User-PasswordProfile.ReadWrite.All"]
    )
    document["tenant"]["client_id"] = client_id
    space.write_policy(document)
    space.env[SECRET_ENV] = secret
    applied = space.run("apply", "--auto-approve")
    assert applied.code == 1, applied
    assert "complexity" in applied.stdout + applied.stderr
    assert emu.tenant.password_matches(denied, FIRST)
    assert "abc" not in json.dumps(space.state())


def test_a_writeback_loop_is_a_validation_error(emu: Emulator, tmp_path: Path) -> None:
    space = Workspace.create(emu, tmp_path / "ws", "loop")
    document = space.policy()
    document["mappings"] = {
        "user": {"attributes": {"userName": "[userPrincipalName]", "title": "[jobTitle]"}}
    }
    document["writeback"] = {"attributes": {"jobTitle": "[title]"}}
    space.write_policy(document)
    checked = space.run("validate")
    assert checked.code == 1
    assert "would loop" in checked.stderr + checked.stdout
