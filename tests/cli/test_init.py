"""``syncctl init`` through the real binary against the Graph emulator: from an answers file
(how pipelines and these tests run it), at a pseudo-terminal as a person would answer, and
signed in interactively with a device code; then the written policy validates, applies and
plans "No changes"."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from tests.cli.binary import SYNCCTL, run_syncctl

SECRET_ENV = "INIT_TEST_SECRET"
SCOPE = "Password Manager Users"


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with running_emulator(generate_tenant(users=30, groups=6, seed=14)) as emu:
        yield emu


def answers(emu: Emulator, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "tenant": emu.tenant_id,
        "credential": "client_secret",
        "client_id": emu.client_id,
        "client_secret_env": SECRET_ENV,
        "endpoints": {"authority": emu.authority, "graph": emu.graph},
        "ca_bundle": str(emu.ca_bundle),
        "scope_groups": [SCOPE],
        "groups": ["Vault Admins"],
        "target": "sqlite",
        "sqlite_path": "vault.db",
        "name": "vault",
        "output": "vault.yaml",
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def init(
    emu: Emulator, cwd: Path, document: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    (cwd / "answers.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return run_syncctl(
        "init", "--answers", "answers.yaml", *args, cwd=cwd, **{SECRET_ENV: emu.client_secret}
    )


def syncctl(emu: Emulator, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_syncctl(*args, cwd=cwd, **{SECRET_ENV: emu.client_secret})


def expected_users(emu: Emulator, group: str = SCOPE) -> set[str]:
    """Enabled member users anywhere below ``group``: what the policy provisions."""
    tenant = emu.tenant
    found = tenant.group_by_name(group)
    assert found is not None
    users = (
        tenant.users[i] for i in tenant.transitive_members(str(found["id"])) if i in tenant.users
    )
    return {
        str(u["userPrincipalName"])
        for u in users
        if u.get("accountEnabled", True) and u.get("userType") != "Guest"
    }


def target_users(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT user_name FROM users")}


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_answers_file_writes_a_policy_that_validates_applies_and_converges(
    emu: Emulator, tmp_path: Path
) -> None:
    result = init(emu, tmp_path, answers(emu, delete_after="30d", max_deletes=5))

    assert result.returncode == 0, result.stderr
    # The plan of the new policy, as `syncctl plan` prints it, before the file is written.
    assert 'syncctl will perform the following actions for policy "vault"' in result.stdout
    assert "Plan: 5 to create" in result.stdout
    assert result.stdout.index("Plan: ") < result.stdout.index("Wrote vault.yaml")
    text = (tmp_path / "vault.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Policy vault: written by `syncctl init`")
    assert "#   syncctl apply vault.yaml" in text
    assert "client_secret: {env: INIT_TEST_SECRET}" in text
    assert emu.client_secret not in text
    policy = yaml.safe_load(text)
    assert policy["source"] == {"scope_groups": [SCOPE], "nested": True, "groups": ["Vault Admins"]}
    assert policy["deletion"]["delete_after"] == "30d"
    assert policy["deletion"]["max_deletes"] == 5
    assert list(policy) == ["version", "name", "tenant", "source", "target", "deletion"]
    assert not [n for n in files(tmp_path) if n.startswith(".vault.init")]  # no draft left

    validated = syncctl(emu, tmp_path, "validate", "vault.yaml")
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout == "ok: vault.yaml (policy vault): schema, expressions, references\n"
    applied = syncctl(emu, tmp_path, "apply", "--auto-approve", "vault.yaml")
    assert applied.returncode == 0, applied.stderr
    assert target_users(tmp_path / "vault.db") == expected_users(emu)
    assert len(expected_users(emu)) == 5
    planned = syncctl(emu, tmp_path, "plan", "vault.yaml")
    assert planned.returncode == 0, planned.stderr
    assert "No changes" in planned.stdout


def test_the_same_answers_write_the_same_file(emu: Emulator, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for directory in (first, second):
        directory.mkdir()
        assert init(emu, directory, answers(emu)).returncode == 0
    assert (first / "vault.yaml").read_bytes() == (second / "vault.yaml").read_bytes()


def test_a_scim_target_names_the_token_variable(emu: Emulator, tmp_path: Path) -> None:
    document = answers(
        emu,
        target="scim",
        sqlite_path=None,
        scim_url="https://vault.example.com/scim/v2/",
        scim_token_env="VAULT_SCIM_TOKEN",
        name=None,
        output=None,
    )
    # The plan needs the SCIM service; writing and validating the file does not.
    result = init(emu, tmp_path, document)

    written = tmp_path / "vault.yaml"  # the name is suggested from the host
    assert written.is_file(), result.stderr
    target = yaml.safe_load(written.read_text(encoding="utf-8"))["target"]
    assert target == {
        "type": "scim",
        "url": "https://vault.example.com/scim/v2",
        "token": {"env": "VAULT_SCIM_TOKEN"},
    }
    assert syncctl(emu, tmp_path, "validate", "vault.yaml").returncode == 0


def test_an_existing_file_is_kept_without_force(emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "vault.yaml").write_text("# mine\n", encoding="utf-8")

    refused = init(emu, tmp_path, answers(emu))

    assert refused.returncode == 1
    assert refused.stderr == "Error: output: vault.yaml exists; pass --force to replace it\n"
    assert (tmp_path / "vault.yaml").read_text(encoding="utf-8") == "# mine\n"
    forced = init(emu, tmp_path, answers(emu), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "vault.yaml").read_text(encoding="utf-8").startswith("# Policy vault")


def test_output_flag_overrides_the_answer(emu: Emulator, tmp_path: Path) -> None:
    result = init(emu, tmp_path, answers(emu), "--output", "policies/first.yaml")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "policies" / "first.yaml").is_file()
    assert not (tmp_path / "vault.yaml").exists()
    # The database path stays relative to the policy file, the CA bundle still resolves.
    assert syncctl(emu, tmp_path, "validate", "policies/first.yaml").returncode == 0


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"scope_groups": ["No Such Group"]}, "scope_groups: no group is named 'No Such Group'"),
        ({"groups": ["Vault Admins", "Nobody"]}, "groups: no group is named 'Nobody'"),
        ({"scope_groups": None}, "scope_groups: missing from answers.yaml"),
        ({"tenant": None}, "tenant: missing from answers.yaml (it has no default)"),
        (
            {"out_of_scope": "remove"},
            "out_of_scope: 'remove' is not one of ignore | disable | delete",
        ),
        (
            {"hard_deleted": "purge"},
            "hard_deleted: 'purge' is not one of ignore | disable | delete",
        ),
        ({"delete_after": "a month"}, "delete_after: 'a month' is not a duration"),
        ({"max_deletes": "lots"}, "max_deletes: 'lots' is not a count (20) or a percentage"),
        (
            {"target": "scim", "scim_url": "vault.example.com"},
            "scim_url: 'vault.example.com' is not an http(s) URL",
        ),
        ({"credential": "password"}, "credential: 'password' is not one of interactive"),
        ({"client_secret_env": "s3cr3t~value"}, "client_secret_env: must be the NAME of"),
        ({"name": "My Vault"}, "name: 'My Vault' must be 1 to 63 lowercase letters"),
        ({"output": "vault.txt"}, "output: 'vault.txt' must end in .yaml or .yml"),
        (
            {"max_delets": 3},
            "max_delets: unknown question in answers.yaml (did you mean 'max_deletes'?)",
        ),
    ],
)
def test_a_bad_answer_is_one_line_naming_the_key_and_nothing_is_written(
    emu: Emulator, tmp_path: Path, changes: dict[str, Any], error: str
) -> None:
    document = answers(emu)
    document.update(changes)
    document = {k: v for k, v in document.items() if v is not None}

    result = init(emu, tmp_path, document)

    assert result.returncode == 1, result
    assert result.stderr.startswith(f"Error: {error}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "s3cr3t~value" not in result.stderr
    assert files(tmp_path) == ["answers.yaml"]


def test_without_a_terminal_or_answers_it_is_a_usage_error(tmp_path: Path) -> None:
    result = run_syncctl("init", cwd=tmp_path, stdin=None)

    assert result.returncode == 1  # syncctl's usage errors exit 1 (main.py)
    assert "no terminal to ask on: give the answers with --answers FILE" in result.stderr
    assert files(tmp_path) == []


def test_a_person_at_a_terminal(emu: Emulator, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
    env.update({"NO_COLOR": "1", SECRET_ENV: emu.client_secret, "COLUMNS": "200"})
    flags = ["--authority", emu.authority, "--graph", emu.graph, "--ca-bundle", str(emu.ca_bundle)]
    child = pexpect.spawn(
        SYNCCTL, ["init", *flags], cwd=str(tmp_path), env=env, encoding="utf-8", timeout=60
    )
    try:
        child.expect("Tenant: ")
        child.sendline(emu.tenant_id)
        child.expect(r"Microsoft cloud \[global\]: ")
        child.sendline("")
        child.expect(r"Credential \[interactive\]: ")
        child.sendline("client_secret")
        child.expect("Client id: ")
        child.sendline(emu.client_id)
        child.expect(r"Environment variable holding the client secret \[SYNCCTL_CLIENT_SECRET\]: ")
        child.sendline(SECRET_ENV)
        child.expect("Search users and groups: ")
        child.sendline("Password")
        child.expect(r"Scope groups: ")
        table = child.before
        header = next(line for line in table.splitlines() if line.lstrip().startswith("#"))
        assert header.split() == ["#", "Name", "Type", "Department", "Description", "Object", "id"]
        row = re.search(rf"^\s*(\d+)\s+{SCOPE}\s+Security Group", table, re.MULTILINE)
        assert row is not None, table
        child.sendline("999")  # not a row: the error names the question, then it asks again
        child.expect(r"Error: scope_groups: 999 is not a row of the table")
        child.expect(r"Scope groups: ")
        child.sendline(row.group(1))
        child.expect(r"Count members of nested groups \[yes\]: ")
        child.sendline("")
        child.expect(r"Groups to create in the application: ")
        child.sendline("/Vault")  # search again, then pick by name
        child.expect(r"Groups to create in the application: ")
        assert "Vault Admins" in child.before
        child.sendline("Vault Admins")
        child.expect("disable: the user keeps their data but cannot sign in")
        child.expect(r"When the user left the scope groups \[disable\]: ")
        child.sendline("remove")
        child.expect(r"Error: out_of_scope: 'remove' is not one of ignore \| disable \| delete")
        child.expect(r"\[disable\]: ")
        child.sendline("")
        for default in ("disable", "disable", "delete"):
            child.expect(rf"\[{default}\]: ")
            child.sendline("")
        child.expect("Delete disabled accounts after: ")
        child.sendline("30d")
        child.expect(r"Most deletes in one run \[10%\]: ")
        child.sendline("")
        child.expect(r"Most disables in one run \[10%\]: ")
        child.sendline("")
        child.expect(r"Target \[sqlite\]: ")
        child.sendline("")
        child.expect(r"SQLite database file \[directory.db\]: ")
        child.sendline("vault.db")
        child.expect(r"Policy name \[vault\]: ")
        child.sendline("")
        child.expect(r"Policy file to write \[vault.yaml\]: ")
        child.sendline("")
        child.expect(r"Plan: 5 to create")
        child.expect("Wrote vault.yaml")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before

    policy = yaml.safe_load((tmp_path / "vault.yaml").read_text(encoding="utf-8"))
    assert policy["source"] == {"scope_groups": [SCOPE], "nested": True, "groups": ["Vault Admins"]}
    assert policy["deletion"]["delete_after"] == "30d"
    assert syncctl(emu, tmp_path, "validate", "vault.yaml").returncode == 0


def test_signed_in_as_yourself_with_a_device_code(emu: Emulator, tmp_path: Path) -> None:
    # An app registration that allows public client flows (device code, no secret).
    client_id, _ = emu.add_application(public_client=True)
    document = answers(emu, credential="interactive", client_id=client_id, client_secret_env=None)
    (tmp_path / "answers.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
    env.update({"NO_COLOR": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")})
    child = pexpect.spawn(
        SYNCCTL,
        ["init", "--answers", "answers.yaml"],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    try:
        child.expect(r"enter the code ([A-Z0-9-]+)")
        code = child.match.group(1)
        assert code in emu.pending_device_codes()
        emu.approve_device_code(code)
        child.expect("Signed in as ")
        child.expect("Plan: 5 to create")
        child.expect("Wrote vault.yaml")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    text = (tmp_path / "vault.yaml").read_text(encoding="utf-8")
    assert "interactive: {}" in text
    assert yaml.safe_load(text)["tenant"]["credential"] == {"interactive": {}}
    assert syncctl(emu, tmp_path, "validate", "vault.yaml").returncode == 0
    # From there to an applied policy, signed in as yourself: the cached sign-in, no prompt.
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    applied = run_syncctl(
        "apply", "--auto-approve", "vault.yaml", cwd=tmp_path, stdin=None, **cache
    )
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete: " in applied.stdout
    assert "enter the code" not in applied.stderr
    again = run_syncctl("plan", "vault.yaml", cwd=tmp_path, stdin=None, **cache)
    assert again.returncode == 0, again.stderr
    assert "No changes" in again.stdout
