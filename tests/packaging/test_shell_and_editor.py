"""Shell completion (click's ``_SYNCCTL_COMPLETE`` mechanism, as docs/deploy.md documents it)
and ``syncctl schema`` (the installed JSON Schemas, for editors), through the real binary."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.cli.binary import REPO, SYNCCTL, run_syncctl


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _syncctl_completion syncctl"),
        ("zsh", "#compdef syncctl"),
        ("fish", "complete --no-files --command syncctl"),
    ],
)
def test_completion_scripts(shell: str, marker: str, tmp_path: Path) -> None:
    done = run_syncctl(cwd=tmp_path, _SYNCCTL_COMPLETE=f"{shell}_source")
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout
    assert "_SYNCCTL_COMPLETE" in done.stdout  # the script calls syncctl back to complete


def complete(words: str, tmp_path: Path) -> list[tuple[str, str]]:
    index = len(words.split()) - (0 if words.endswith(" ") else 1)
    done = run_syncctl(
        cwd=tmp_path,
        _SYNCCTL_COMPLETE="bash_complete",
        COMP_WORDS=words,
        COMP_CWORD=str(index),
    )
    assert done.returncode == 0, done.stderr
    return [tuple(line.split(",", 1)) for line in done.stdout.splitlines()]  # type: ignore[misc]


def test_commands_options_and_choices_complete(tmp_path: Path) -> None:
    # The lazily loaded command group lists every command without importing any.
    assert complete("syncctl pl", tmp_path) == [("plain", "plan")]
    assert ("plain", "schema") in complete("syncctl s", tmp_path)
    assert ("plain", "--detailed-exitcode") in complete("syncctl plan --det", tmp_path)
    assert sorted(complete("syncctl schema p", tmp_path)) == [
        ("plain", "plan"),
        ("plain", "policy"),
    ]


def test_the_bash_script_completes_in_bash(tmp_path: Path) -> None:
    script = run_syncctl(cwd=tmp_path, _SYNCCTL_COMPLETE="bash_source").stdout
    (tmp_path / "syncctl.bash").write_text(script, encoding="utf-8")
    # What bash does on TAB after `syncctl pl`: call the function the script registered.
    done = subprocess.run(
        [
            "bash",
            "--norc",
            "-c",
            "source ./syncctl.bash && COMP_WORDS=(syncctl pl) COMP_CWORD=1 "
            '&& _syncctl_completion syncctl && printf "%s\\n" "${COMPREPLY[@]}"',
        ],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SYNCCTL_")},
            "PATH": f"{Path(SYNCCTL).parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plan"]


def test_schema_prints_the_installed_policy_schema(tmp_path: Path) -> None:
    done = run_syncctl("schema", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert done.stdout == f"{path}\n" and path.is_absolute() and path.is_file()
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/policy.schema.json")
    assert "policy" in schema["title"]
    # An editor pointed at it accepts the demo policy and flags a wrong key.
    demo = yaml.safe_load((REPO / "policies" / "demo.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(demo)
    wrong = {**demo, "deletion": {"max_delets": 3}}
    assert not jsonschema.Draft202012Validator(schema).is_valid(wrong)


@pytest.mark.parametrize("name", ["policy", "plan", "snapshot"])
def test_schema_names_and_content(name: str, tmp_path: Path) -> None:
    path = run_syncctl("schema", name, cwd=tmp_path).stdout.strip()
    assert Path(path).name == f"{name}.schema.json"
    content = run_syncctl("schema", "--content", name, cwd=tmp_path)
    assert content.returncode == 0, content.stderr
    assert json.loads(content.stdout) == json.loads(Path(path).read_text(encoding="utf-8"))


def test_schema_refuses_an_unknown_name(tmp_path: Path) -> None:
    done = run_syncctl("schema", "policies", cwd=tmp_path)
    assert done.returncode == 1
    assert "'policies' is not one of 'policy', 'plan', 'snapshot'" in done.stderr
