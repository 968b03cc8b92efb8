"""Every broken policy in tests/policy_corpus/ gives exactly one error, at the exact place.

Each file holds one defect and says where it is and what the message must say:
``# expect: LINE:COLUMN: MESSAGE`` (MESSAGE is a prefix of the reported message, which may
go on with a path that depends on the checkout).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncctl.policy import check_policies

CORPUS = Path(__file__).resolve().parents[2] / "policy_corpus"
EXPECT = re.compile(r"^# expect: (?P<line>\d+):(?P<column>\d+): (?P<message>.+)$", re.MULTILINE)
CASES = sorted(CORPUS.glob("*.yaml"))


def expectation(path: Path) -> tuple[int, int, str]:
    found = EXPECT.search(path.read_text(encoding="utf-8"))
    assert found, f"{path.name} has no '# expect: LINE:COLUMN: MESSAGE' line"
    return int(found["line"]), int(found["column"]), found["message"]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_policy_reports_one_error_at_the_defect(path: Path) -> None:
    line, column, message = expectation(path)

    result = check_policies([path])

    assert result.policies == []
    assert len(result.errors) == 1, [str(d) for d in result.errors]
    error = result.errors[0]
    assert error.location.file == str(path)
    assert (error.location.line, error.location.column) == (line, column), str(error)
    assert error.message.startswith(message), str(error)


def test_duplicate_policy_names_across_files_are_an_error() -> None:
    directory = CORPUS / "duplicate-names"
    second = directory / "b-second.yaml"
    line, column, message = expectation(second)

    result = check_policies([directory])

    assert [loaded.policy.name for loaded in result.policies] == ["vault"]
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.location.file == str(second)
    assert (error.location.line, error.location.column) == (line, column)
    assert error.message.startswith(message)
    assert error.message.endswith("a-first.yaml")


LITERAL_SECRETS = {
    "literal-client-secret": "s3cr3t-Value~xyz",
    "literal-scim-token": "eyJhbGciOiJIUzI1NiJ9",
    "writeback-literal-password": "Passw0rd!",
}


@pytest.mark.parametrize(("name", "secret"), sorted(LITERAL_SECRETS.items()))
def test_literal_secrets_never_appear_in_messages(name: str, secret: str) -> None:
    path = CORPUS / f"{name}.yaml"
    assert secret in path.read_text(encoding="utf-8")

    result = check_policies([path])

    assert result.errors
    assert "use {env: NAME} or {file: PATH}" in result.errors[0].message
    assert all(secret not in str(diagnostic) for diagnostic in result.diagnostics)
