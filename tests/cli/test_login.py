"""``syncctl login`` / ``logout`` and the runs that use the cached sign-in, end to end: the
real binary, real MSAL (device code, and authorization code with PKCE through a fake
browser) and the emulator's delegated sign-in. Each test steers on the login's output (the
device code message) and the emulator's hooks, never on time."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from tests.cli.binary import SYNCCTL, run_syncctl
from tests.cli.streaming import StreamedRun

READ = ("User.Read.All", "GroupMember.Read.All", "Directory.Read.All")
SECRET_ENV = "LOGIN_TEST_SECRET"
CODE = re.compile(r"enter the code (\S+)")
# Generous: only reached when a login hangs, which is the failure it reports.
WAIT = 60.0


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with running_emulator(generate_tenant(users=30, groups=6, seed=14)) as emu:
        yield emu


@pytest.fixture
def public_app(emu: Emulator) -> Iterator[str]:
    """A registration allowing public client flows, polled without waiting."""
    client_id, _secret = emu.add_application(READ, public_client=True)
    interval = emu.device_code_interval
    emu.device_code_interval = 0  # MSAL polls again at once: no test waits 5 seconds
    emu.interactive_user = None
    yield client_id
    emu.device_code_interval = interval
    emu.interactive_user = None


def write_policy(
    directory: Path,
    emu: Emulator,
    client_id: str,
    *,
    name: str = "hr",
    credential: dict[str, Any] | None = None,
) -> Path:
    document = {
        "version": 1,
        "name": name,
        "tenant": {
            "id": emu.tenant_id,
            "client_id": client_id,
            "credential": credential or {"interactive": {}},
            "endpoints": {"authority": emu.authority, "graph": emu.graph},
            "ca_bundle": str(emu.ca_bundle),
        },
        "source": {"scope_groups": ["Password Manager Users"]},
        "target": {"type": "sqlite", "path": f"{name}.db"},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def members(emu: Emulator) -> list[str]:
    """UPNs of enabled member users, who may sign in."""
    return [
        user["userPrincipalName"]
        for _id, user in sorted(emu.tenant.users.items())
        if user.get("accountEnabled") is not False and user.get("userType", "Member") == "Member"
    ]


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The login's environment: its own cache directory, and no D-Bus session, so the
    keyring is never used and the cache is the owner-only file on every Linux host."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")}
    return {
        **base,
        "NO_COLOR": "1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent",
        **extra,
    }


class Login(StreamedRun):
    """``syncctl login ARGS`` running; its stderr read line by line as it comes."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str | Path) -> None:
        super().__init__("login", *args, cwd=cwd, env=env)

    def user_code(self) -> str:
        """The code in Microsoft's message, as soon as login printed it."""
        return self.wait_for(CODE.pattern)[1]


def sign_in(emu: Emulator, cwd: Path, env: dict[str, str], *args: str | Path) -> str:
    login = Login(cwd, env, *args)
    emu.approve_device_code(login.user_code())
    code, stdout, stderr = login.finish()
    assert code == 0, stderr
    return stdout


def run(cwd: Path, env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    # stdin closed: a run that tried to prompt would fail rather than wait.
    return subprocess.run(
        [SYNCCTL, *map(str, args)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cache_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "syncctl" / "msal").glob("*.bin"))


def cached_secrets(path: Path) -> list[str]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return [
        entry["secret"]
        for kind in ("AccessToken", "RefreshToken", "IdToken")
        for entry in document.get(kind, {}).values()
    ]


def test_device_code_login_then_runs_use_the_cache_silently(
    emu: Emulator, public_app: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    env = environment(tmp_path)
    upn = members(emu)[1]

    login = Login(tmp_path, env, policy.name)
    user_code = login.user_code()
    # The message came before the login finished: it waits on the approval.
    assert login.process.poll() is None
    assert user_code in emu.pending_device_codes()
    emu.approve_device_code(user_code, upn)
    code, stdout, stderr = login.finish()
    assert code == 0, stderr
    assert f"{emu.device_login_url} and enter the code {user_code}" in stderr
    (cache,) = cache_files(tmp_path)
    assert stdout.strip() == (
        f"signed in as {upn} to tenant {emu.tenant_id} for policy hr; cached in {cache} "
        "(a file only you can read: no OS keyring here)"
    )
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    record = json.loads(cache.with_suffix(".json").read_text(encoding="utf-8"))
    assert record["username"] == upn
    assert f"{emu.graph}/User.Read.All" in record["scopes"]
    assert "access_token" not in json.dumps(record)

    outputs = [stdout, stderr]
    for args in (
        ("plan", policy.name, "--out", "hr.plan"),
        ("apply", "--auto-approve", policy.name),
        ("search", policy.name, "Password"),
        ("export", policy.name, "-o", "hr.json"),
        ("status", "--check", policy.name),
    ):
        result = run(tmp_path, env, *args)
        assert result.returncode in (0, 2), (args, result.stderr)
        assert "enter the code" not in result.stderr, args
        outputs += [result.stdout, result.stderr]
    assert emu.pending_device_codes() == []  # nothing but login asked for a code
    status = run(tmp_path, env, "status", "--check", policy.name)
    assert "connected" in status.stdout

    secrets = cached_secrets(cache)
    assert secrets
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.parts]
    assert any(p.name == "hr.plan" for p in files)
    for secret in secrets:
        for text in outputs:
            assert secret not in text
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_logout_then_runs_ask_for_login(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    env = environment(tmp_path)
    sign_in(emu, tmp_path, env, policy.name)
    (cache,) = cache_files(tmp_path)

    result = run(tmp_path, env, "logout", policy.name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("signed out ")
    assert f"from tenant {emu.tenant_id} (policy hr); removed {cache}" in result.stdout
    assert cache_files(tmp_path) == []
    again = run(tmp_path, env, "logout", policy.name)
    assert again.returncode == 0
    assert (
        again.stdout.strip()
        == f"not signed in to tenant {emu.tenant_id} (policy hr): nothing removed"
    )

    for args in (("plan", policy.name), ("search", policy.name)):
        result = run(tmp_path, env, *args)
        assert result.returncode == 1, args
        (line,) = result.stderr.strip().splitlines()[-1:]
        assert line.endswith('run "syncctl login hr.yaml" first'), line  # the file to pass
        assert "not signed in" in line
    export = run(tmp_path, env, "export", policy.name, "-o", "hr.json")
    assert export.returncode == 1
    assert export.stderr.strip().endswith('run "syncctl login hr.yaml" first')
    status = run(tmp_path, env, "status", "--check", "--format", "json", policy.name)
    assert status.returncode == 1
    (entry,) = json.loads(status.stdout)["policies"]
    assert entry["connection"]["status"] == "unauthorized"
    assert "syncctl login hr.yaml" in entry["connection"]["detail"]


def test_revoked_refresh_token_asks_for_login(
    emu: Emulator, public_app: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    env = environment(tmp_path)
    lifetime = emu.token_lifetime
    emu.token_lifetime = 60  # MSAL refreshes a token this close to expiry: every run does
    try:
        stdout = sign_in(emu, tmp_path, env, policy.name)
        upn = stdout.split()[3]
        assert run(tmp_path, env, "plan", policy.name).returncode == 0
        assert emu.revoke_refresh_tokens() >= 1
        plan = run(tmp_path, env, "plan", policy.name)
        export = run(tmp_path, env, "export", policy.name, "-o", "hr.json")
    finally:
        emu.token_lifetime = lifetime
    assert plan.returncode == 1
    (line,) = plan.stderr.strip().splitlines()
    assert "is no longer valid (invalid_grant, AADSTS50173)" in line
    assert line.endswith('run "syncctl login hr.yaml" first'), line
    assert export.returncode == 1
    assert export.stderr.strip() == (
        f"Error: sign-in to tenant {emu.tenant_id} (Interactive): the sign-in of {upn} is no "
        'longer valid (invalid_grant, AADSTS50173); run "syncctl login hr.yaml" first'
    )


def test_declined_device_code(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    login = Login(tmp_path, environment(tmp_path), policy.name)
    emu.decline_device_code(login.user_code())
    code, stdout, stderr = login.finish()
    assert code == 1
    assert stdout == ""
    assert stderr.strip().splitlines()[-1] == (
        f"Error: sign-in to tenant {emu.tenant_id}: the sign-in was declined in the browser; "
        "run syncctl login again and approve it"
    )
    assert cache_files(tmp_path) == [] or not cached_secrets(cache_files(tmp_path)[0])


def test_expired_device_code(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    login = Login(tmp_path, environment(tmp_path), policy.name)
    login.user_code()
    clock = emu.identity.clock
    later = clock() + emu.device_code_lifetime + 1
    emu.identity.clock = lambda: later  # the code's 15 minutes pass
    try:
        code, _stdout, stderr = login.finish()
    finally:
        emu.identity.clock = clock
    assert code == 1
    assert stderr.strip().splitlines()[-1] == (
        f"Error: sign-in to tenant {emu.tenant_id}: the code expired before it was approved; "
        "run syncctl login again and enter the new code promptly"
    )


def test_app_without_public_client_flows(emu: Emulator, tmp_path: Path) -> None:
    client_id, _secret = emu.add_application(READ)  # "Allow public client flows": off
    interval = emu.device_code_interval
    emu.device_code_interval = 0
    try:
        policy = write_policy(tmp_path, emu, client_id)
        login = Login(tmp_path, environment(tmp_path), policy.name)
        code, _stdout, stderr = login.finish()
    finally:
        emu.device_code_interval = interval
    assert code == 1
    line = stderr.strip().splitlines()[-1]
    assert line == (
        f"Error: sign-in to tenant {emu.tenant_id} (Interactive): AADSTS7000218: the app "
        f"registration {client_id} does not allow public client flows: enable 'Allow public "
        "client flows' under Authentication in the app registration, then sign in again"
    )


FAKE_BROWSER = '''#!{python}
"""A browser for tests: opens the sign-in address in the background (webbrowser waits for
this process, while MSAL's listener only answers once the browser was started), signs in
by following the emulator's answer, and posts the form to MSAL's localhost listener."""
import html.parser, ssl, subprocess, sys, urllib.parse, urllib.request

class Form(html.parser.HTMLParser):
    action, fields = "", {{}}
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action", "")
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")

if sys.argv[1] != "--now":
    with open({log!r}, "a") as log:
        log.write(sys.argv[1] + "\\n")
    if {act!r}:
        subprocess.Popen([sys.executable, __file__, "--now", sys.argv[1]], start_new_session=True)
    sys.exit(0)
context = ssl.create_default_context(cafile={ca!r})
page = urllib.request.urlopen(sys.argv[2], context=context).read().decode()
form = Form()
form.feed(page)
data = urllib.parse.urlencode(form.fields).encode()
urllib.request.urlopen(urllib.request.Request(form.action, data=data)).read()
'''


def fake_browser(tmp_path: Path, emu: Emulator, *, act: bool = True) -> tuple[Path, Path]:
    script = tmp_path / "browser.py"
    log = tmp_path / "browser.log"
    script.write_text(
        FAKE_BROWSER.format(python=sys.executable, log=str(log), act=act, ca=str(emu.ca_bundle)),
        encoding="utf-8",
    )
    script.chmod(0o700)
    return script, log


def test_browser_login_with_pkce(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    upn = members(emu)[3]
    emu.interactive_user = upn
    script, log = fake_browser(tmp_path, emu)
    env = environment(tmp_path, BROWSER=str(script))
    login = Login(tmp_path, env, "--browser", policy.name)
    code, stdout, stderr = login.finish()
    assert code == 0, stderr
    assert stdout.startswith(f"signed in as {upn} to tenant {emu.tenant_id} for policy hr;")
    (opened,) = log.read_text(encoding="utf-8").splitlines()
    query = dict(pair.split("=", 1) for pair in opened.split("?", 1)[1].split("&") if "=" in pair)
    assert query["code_challenge_method"] == "S256"
    assert query["prompt"] == "select_account"
    assert query["redirect_uri"].startswith("http%3A%2F%2Flocalhost%3A")
    result = run(tmp_path, env, "plan", policy.name)
    assert result.returncode == 0, result.stderr


def test_browser_closed_times_out(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    script, log = fake_browser(tmp_path, emu, act=False)  # opened, then closed
    env = environment(tmp_path, BROWSER=str(script))
    login = Login(tmp_path, env, "--browser", "--timeout", "1s", policy.name)
    code, _stdout, stderr = login.finish()
    assert code == 1
    assert log.read_text(encoding="utf-8").strip()
    assert stderr.strip().splitlines()[-1] == (
        f"Error: sign-in to tenant {emu.tenant_id}: the browser did not complete the sign-in in "
        "time (closed?); run syncctl login again, or without --browser to use a code"
    )


def test_browser_sign_in_denied(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    emu.interactive_user = "nobody@contoso.example"  # Entra refuses: no such user
    script, _log = fake_browser(tmp_path, emu)
    env = environment(tmp_path, BROWSER=str(script))
    code, _stdout, stderr = Login(tmp_path, env, "--browser", policy.name).finish()
    assert code == 1
    assert stderr.strip().splitlines()[-1] == (
        f"Error: sign-in to tenant {emu.tenant_id}: the sign-in was cancelled or denied in "
        "the browser (access_denied); run syncctl login again"
    )


def test_corrupted_cache(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    env = environment(tmp_path)
    sign_in(emu, tmp_path, env, policy.name)
    (cache,) = cache_files(tmp_path)
    cache.write_text("{not json", encoding="utf-8")
    plan = run(tmp_path, env, "plan", policy.name)
    assert plan.returncode == 1
    (line,) = plan.stderr.strip().splitlines()
    assert f"token cache {cache} cannot be read (not an MSAL token cache)" in line
    result = run(tmp_path, env, "export", policy.name, "-o", "hr.json")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"Error: tenant {emu.tenant_id}: token cache {cache} cannot be read (not an MSAL token "
        'cache); run "syncctl logout hr.yaml" and then "syncctl login hr.yaml"'
    )
    # The fix it names works.
    assert run(tmp_path, env, "logout", policy.name).returncode == 0
    sign_in(emu, tmp_path, env, policy.name)
    assert run(tmp_path, env, "plan", policy.name).returncode == 0


def test_cache_of_another_tenant(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    env = environment(tmp_path)
    sign_in(emu, tmp_path, env, policy.name)
    (cache,) = cache_files(tmp_path)
    other = "0c0ffee0-0000-4000-8000-000000000001"
    cache.write_text(cache.read_text(encoding="utf-8").replace(emu.tenant_id, other))
    result = run(tmp_path, env, "plan", policy.name)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"holds a sign-in to another tenant ({other}) and was not used" in line
    assert 'run "syncctl logout ' in line
    status = run(tmp_path, env, "status", "--check", policy.name)
    assert status.returncode == 1
    assert "unauthorized" in status.stdout
    assert 'run "syncctl logout hr.yaml" and then "syncctl login hr.yaml"' in status.stdout


def test_readable_cache_is_refused(emu: Emulator, public_app: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, emu, public_app)
    env = environment(tmp_path)
    sign_in(emu, tmp_path, env, policy.name)
    (cache,) = cache_files(tmp_path)
    cache.chmod(0o644)
    result = run(tmp_path, env, "plan", policy.name)
    assert result.returncode == 1
    assert "is readable by others (mode 0644) and was not trusted" in result.stderr


def test_one_sign_in_for_every_policy_of_the_tenant(
    emu: Emulator, public_app: str, tmp_path: Path
) -> None:
    write_policy(tmp_path, emu, public_app, name="hr")
    write_policy(tmp_path, emu, public_app, name="it")
    write_policy(
        tmp_path,
        emu,
        emu.client_id,
        name="cron",
        credential={"client_secret": {"env": SECRET_ENV}},
    )
    env = environment(tmp_path, **{SECRET_ENV: emu.client_secret})
    login = Login(tmp_path, env, ".")
    emu.approve_device_code(login.user_code())
    code, stdout, stderr = login.finish()
    assert code == 0, stderr
    assert 'skipping policy "cron": it signs in with clientsecret, not interactively' in stderr
    assert f"to tenant {emu.tenant_id} for policies hr, it;" in stdout
    assert len(stdout.strip().splitlines()) == 1
    assert len(cache_files(tmp_path)) == 1
    for name in ("hr", "it", "cron"):
        assert run(tmp_path, env, "plan", f"{name}.yaml").returncode == 0, name


def test_application_credential_is_unchanged(emu: Emulator, tmp_path: Path) -> None:
    """The same policy with a client secret: no cache, no login, exactly as before."""
    policy = write_policy(
        tmp_path, emu, emu.client_id, credential={"client_secret": {"env": SECRET_ENV}}
    )
    result = run_syncctl(
        "plan",
        policy.name,
        cwd=tmp_path,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        **{SECRET_ENV: emu.client_secret},
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "cache").exists()
    login = run(tmp_path, environment(tmp_path), "login", policy.name)
    assert login.returncode == 1
    assert "no policy there signs in interactively" in login.stderr
