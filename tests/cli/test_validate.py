"""``syncctl validate`` end to end: exit codes, output formats, and no traceback ever."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncctl.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SYNCCTL = Path(sys.executable).parent / "syncctl"
CORPUS = ROOT / "tests" / "policy_corpus"
VALID = (ROOT / "examples" / "sqlite-client-secret.yaml").read_text(encoding="utf-8")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SYNCCTL), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def run_in_process(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            # With standalone_mode=False click returns a command's ctx.exit code instead of
            # raising; the console script passes it to sys.exit.
            returned = main(list(args))
            code = returned if isinstance(returned, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    snapshot = tmp_path / "policies" / "snapshots" / "demo.json"
    if not snapshot.exists():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text("{}")
    return tmp_path


def test_shipped_examples_validate_through_the_real_binary(workdir: Path) -> None:
    result = run_cli("validate", "policies/", "examples/", cwd=workdir)

    assert result.returncode == 0, result.stderr
    files = [p for d in ("policies", "examples") for p in (workdir / d).glob("*.yaml")]
    lines = result.stdout.splitlines()
    assert "ok: policies/demo.yaml (policy demo): schema, expressions, references" in lines
    assert len(lines) == len(files) >= 9
    assert all(line.startswith(("ok: policies/", "ok: examples/")) for line in lines)
    assert result.stderr.startswith("examples/plugin.yaml:")
    assert ": warning: target.type: 'ldap' is not a built-in target" in result.stderr


def test_default_path_is_policies_directory(workdir: Path) -> None:
    result = run_cli("validate", cwd=workdir)

    assert result.returncode == 0
    assert "ok: policies/demo.yaml (policy demo)" in result.stdout


def test_errors_are_file_line_column_lines_and_exit_1(workdir: Path) -> None:
    broken = workdir / "broken.yaml"
    shutil.copy(CORPUS / "unknown-deletion-key.yaml", broken)

    result = run_cli("validate", "broken.yaml", "policies/demo.yaml", cwd=workdir)

    assert result.returncode == 1
    assert result.stderr == (
        "broken.yaml:34:3: error: unknown key 'max_delete' in deletion "
        "(did you mean 'max_deletes'?)\n"
    )
    assert (
        result.stdout == "ok: policies/demo.yaml (policy demo): schema, expressions, references\n"
    )


def test_explain_prints_the_effective_policy_with_secret_references(workdir: Path) -> None:
    code, out, _ = run_in_process(
        "validate", str(workdir / "examples" / "scim-token.yaml"), "--explain"
    )

    assert code == 0
    header, _, body = out.partition("---\n")
    assert header.startswith("ok: ")
    effective = yaml.safe_load(body)
    assert effective["tenant"]["credential"]["certificate"]["password"] == {
        "env": "SYNCCTL_CERT_PASSWORD"
    }
    assert effective["target"]["token"] == {"env": "VAULT_SCIM_TOKEN"}
    assert effective["mappings"]["user"]["attributes"]["userName"]["value"] == "[userPrincipalName]"


def test_json_format(workdir: Path) -> None:
    broken = workdir / "broken.yaml"
    shutil.copy(CORPUS / "literal-client-secret.yaml", broken)

    code, out, err = run_in_process(
        "validate",
        str(broken),
        str(workdir / "policies" / "demo.yaml"),
        "--format",
        "json",
        "--explain",
    )

    assert code == 1
    assert err == ""
    document = json.loads(out)
    assert document["valid"] is False
    assert [p["name"] for p in document["policies"]] == ["demo"]
    assert document["policies"][0]["effective"]["target"]["type"] == "sqlite"
    assert document["diagnostics"] == [
        {
            "file": str(broken),
            "line": 9,
            "column": 20,
            "severity": "error",
            "message": "tenant.credential.client_secret: a literal secret is not allowed here: "
            "use {env: NAME} or {file: PATH}",
        }
    ]
    assert "s3cr3t" not in out


def test_output_is_deterministic(workdir: Path) -> None:
    first = run_in_process("validate", str(workdir / "policies"), "--explain", "--format", "json")
    second = run_in_process("validate", str(workdir / "policies"), "--explain", "--format", "json")

    assert first == second


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01\x02junk", "not a text file"),
        (b"version: [1\n", "invalid YAML"),
        (b"", "file is empty"),
        (b"- a\n- b\n", "found a list"),
        (b"a: &a [*a]\n", "recursive YAML alias"),
    ],
)
def test_junk_gives_one_line_and_exit_1_through_the_binary(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    (tmp_path / "junk.yaml").write_bytes(content)

    result = run_cli("validate", "junk.yaml", cwd=tmp_path)

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_directory_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()

    empty = run_in_process("validate", str(tmp_path / "policies"))
    missing = run_in_process("validate", str(tmp_path / "nope.yaml"))

    assert empty == (
        1,
        "",
        f"{tmp_path / 'policies'}: error: no policy files (*.yaml, *.yml) in this directory\n",
    )
    assert missing == (1, "", f"{tmp_path / 'nope.yaml'}: error: no such file or directory\n")


# --- fuzzing: whatever the input, exit 0 or 1 with output, never a traceback -----------------

SCALARS = [
    "null",
    "~",
    "[]",
    "{}",
    "-1",
    "0",
    "1e309",
    ".nan",
    "true",
    "yes",
    '"5%"',
    "101%",
    "30x",
    "'[userPrincipalName]'",
    '"Guid()"',
    '"Join(\\"x\\""',
    "&anchor x",
    "*nowhere",
    "!!binary aGk=",
    "!!python/object:os.system x",
    "!!timestamp 2024-01-01",
    "2024-01-01",
    "{env: X}",
    "{file: ''}",
    '"\\u0000"',
    "😀",
    "'''",
    "[[[[",
    "}",
    "- x",
    "<<: {a: 1}",
    "? complex",
    "|\n  block",
]


def _mutate_text(text: str, rng: random.Random, count: int) -> str:
    lines = text.splitlines()
    for _ in range(count):
        index = rng.randrange(len(lines)) if lines else 0
        choice = rng.randrange(6)
        if not lines:
            lines = [rng.choice(SCALARS)]
        elif choice == 0:
            del lines[index]
        elif choice == 1:
            lines.insert(index, lines[index])
        elif choice == 2 and ":" in lines[index]:
            key = lines[index].split(":", 1)[0]
            lines[index] = f"{key}: {rng.choice(SCALARS)}"
        elif choice == 3:
            lines[index] = " " * rng.randrange(5) + lines[index].lstrip()
        elif choice == 4:
            cut = rng.randrange(len(lines[index]) + 1)
            lines[index] = lines[index][:cut] + rng.choice(SCALARS) + lines[index][cut:]
        else:
            lines[index] = lines[index][: rng.randrange(len(lines[index]) + 1)]
    return "\n".join(lines) + "\n"


def _mutate_data(value: Any, rng: random.Random, replacement: Any) -> Any:
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        if rng.random() < 0.3:
            return {k: v for k, v in value.items() if k != key} | {f"{key}x": replacement}
        return {**value, key: _mutate_data(value[key], rng, replacement)}
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate_data(value[index], rng, replacement), *value[index + 1 :]]
    return replacement


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


def _assert_clean_run(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.yaml"
        path.write_bytes(content)
        code, out, err = run_in_process("validate", str(path))
    assert code in (0, 1), (code, err)
    assert out or err
    assert "Traceback" not in out + err
    assert "this is a bug in syncctl" not in err, err  # the CLI boundary's wording for a bug
    if code == 0:
        assert out.startswith("ok: ")
    else:
        assert all(line.startswith(str(path)) for line in err.splitlines()), err


# FUZZ_EXAMPLES=5000 for a long local run; CI keeps the suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(content: bytes) -> None:
    _assert_clean_run(content)


@FUZZ
@given(st.text(max_size=200))
def test_random_text_never_crashes(content: str) -> None:
    _assert_clean_run(content.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=4))
def test_mutated_yaml_text_never_crashes(rng: random.Random, count: int) -> None:
    _assert_clean_run(_mutate_text(VALID, rng, count).encode("utf-8"))


@FUZZ
@given(st.randoms(use_true_random=False), json_values)
def test_mutated_policy_data_never_crashes(rng: random.Random, replacement: Any) -> None:
    document = yaml.safe_load(VALID)
    mutated = _mutate_data(document, rng, replacement)
    _assert_clean_run(yaml.safe_dump(mutated, allow_unicode=True).encode("utf-8", "surrogatepass"))


def test_mutated_policies_through_the_real_binary(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    for index in range(20):
        (tmp_path / f"m{index:02}.yaml").write_text(_mutate_text(VALID, rng, 3), encoding="utf-8")

    result = run_cli("validate", ".", cwd=tmp_path)

    assert result.returncode in (0, 1)
    assert result.stdout or result.stderr
    assert "Traceback" not in result.stderr
    assert "this is a bug in syncctl" not in result.stderr


def test_a_home_directory_that_does_not_exist_is_a_missing_file_not_a_crash(
    workdir: Path,
) -> None:
    # Found by the fuzzer: Path.expanduser() raises for ~someone without a home.
    policy = workdir / "policies" / "demo.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(
        text.replace("snapshot: snapshots/demo.json", "snapshot: ~no-such-user-x/demo.json"),
        encoding="utf-8",
    )
    code, _out, err = run_in_process("validate", str(policy))
    assert code == 1
    assert "tenant.snapshot: file not found:" in err
    assert "~no-such-user-x/demo.json" in err
    assert "bug in syncctl" not in err


# --- validate --online says "ok" only for what it verified -----------------------------------

SCIM_POLICY = """\
version: 1
name: {name}
tenant:
  id: contoso.onmicrosoft.com
  snapshot: snapshots/demo.json
source:
  scope_groups: [Password Manager Users]
target:
  type: scim
  url: {url}
  token: {{env: SCIM_TOKEN}}
"""


def run_online(*args: str, cwd: Path, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCCTL_", "AZURE_"))}
    env.update(SCIM_TOKEN=token, NO_COLOR="1")
    return subprocess.run(
        [str(SYNCCTL), "validate", "--online", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_online_failure_is_an_error_line_and_never_ok(workdir: Path) -> None:
    policies = workdir / "policies"
    (policies / "snapshots" / "broken.json").write_text("[not a snapshot", encoding="utf-8")
    demo = (policies / "demo.yaml").read_text(encoding="utf-8")
    (policies / "broken.yaml").write_text(
        demo.replace("name: demo", "name: broken").replace("demo.json", "broken.json"),
        encoding="utf-8",
    )

    offline = run_cli("validate", "policies/demo.yaml", "policies/broken.yaml", cwd=workdir)
    online = run_online("policies/demo.yaml", "policies/broken.yaml", cwd=workdir)

    assert offline.returncode == 0  # the snapshot's content is only read online
    assert online.returncode == 1
    assert online.stdout == (
        "ok: policies/demo.yaml (policy demo): schema, expressions, references, snapshot read; "
        "sqlite target has no online check\n"
    )
    errors = online.stderr.splitlines()
    assert len(errors) == 1, online.stderr
    assert errors[0].startswith("error: policies/broken.yaml (policy broken): source: ")
    assert "Traceback" not in online.stderr


def test_online_ok_names_the_target_check_and_a_refused_token_is_not_ok(workdir: Path) -> None:
    from tests.contract.scim_harness import shared_server

    server = shared_server()
    (workdir / "policies" / "vault.yaml").write_text(
        SCIM_POLICY.format(name="vault", url=server.tenant_url()), encoding="utf-8"
    )

    good = run_online("policies/vault.yaml", cwd=workdir, token=server.token)
    bad = run_online("policies/vault.yaml", cwd=workdir, token="wrong-token-123")

    assert good.returncode == 0, good.stderr
    assert good.stdout == (
        "ok: policies/vault.yaml (policy vault): schema, expressions, references, "
        "snapshot read, target answered\n"
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    # (stderr also carries the target's warning that it speaks plain http to loopback)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, bad.stderr
    assert errors[0].startswith("error: policies/vault.yaml (policy vault): target: ")
    assert "wrong-token-123" not in bad.stderr


def test_online_json_carries_what_was_verified(workdir: Path) -> None:
    result = run_online("policies/demo.yaml", "--format", "json", cwd=workdir)

    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["policies"]
    assert entry["verified"] == ["schema", "expressions", "references"]
    assert entry["online"] == {
        "ok": True,
        "verified": ["snapshot read"],
        "failures": [],
        "unchecked": ["sqlite target has no online check"],
    }


# --- paths the OS refuses: one located line, not "unexpected OSError" ------------------------

LONG = "a" * 300


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("path: .syncctl/demo.db", f"path: {LONG}/demo.db", "target.path"),
        ("snapshot: snapshots/demo.json", f"snapshot: {LONG}.json", "tenant.snapshot"),
        ("version: 1\n", f"version: 1\nstate:\n  path: {LONG}.json\n", "state.path"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_path_component_over_255_bytes_is_located(
    workdir: Path, command: str, old: str, new: str, key: str
) -> None:
    policy = workdir / "policies" / "demo.yaml"
    text = policy.read_text(encoding="utf-8")
    assert old in text
    policy.write_text(text.replace(old, new, 1), encoding="utf-8")
    lines = policy.read_text(encoding="utf-8").splitlines()
    line = next(number for number, content in enumerate(lines, 1) if LONG in content)

    result = run_cli(command, "policies/demo.yaml", cwd=workdir)

    assert result.returncode == 1
    assert result.stderr.startswith(f"policies/demo.yaml:{line}:")
    assert f": error: {key}: a path component is " in result.stderr
    assert "over the file system limit of 255 bytes" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "unexpected" not in result.stderr


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_policy_path_over_255_bytes_on_the_command_line(tmp_path: Path, command: str) -> None:
    for path in (f"{LONG}.yaml", f"{LONG}/demo.yaml"):
        result = run_cli(command, path, cwd=tmp_path)

        assert result.returncode == 1
        assert result.stderr == (
            f"{path}: error: cannot read: file name too long "
            "(a path component over 255 bytes, or the whole path too long)\n"
        )
