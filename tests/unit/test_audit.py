"""The audit log: one line per change attempted, who ran it, and never a value."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncctl.apply.applier import ChangeResult
from syncctl.audit import AuditLog, current_actor
from syncctl.errors import SyncctlError
from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind, Reason
from syncctl.policy import load_policies
from syncctl.policy.model import Policy
from syncctl.targets.base import Outcome, OutcomeStatus
from tests.cli.binary import copy_demo

WHEN = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
SECRET_VALUE = "Pa55-w0rd-value-never-logged"


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policies([copy_demo(tmp_path)])[0]


def result(n: int, status: OutcomeStatus = OutcomeStatus.APPLIED, *, attempted: bool = True):
    change = Change(
        f"user/u{n}@contoso.com",
        ChangeKind.USER,
        Action.CREATE,
        Reason.ENTERED_SCOPE,
        source_id=f"src-{n}",
        attributes=(AttributeChange("password", None, SECRET_VALUE),),
    )
    return ChangeResult(change, Outcome(change.address, status, f"tgt-{n}"), attempted=attempted)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_line_per_attempted_change_with_who_and_why(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(run_id="run-1", actor="ops@host", override=path)
    audit.open([policy])
    record = audit.recorder(policy)
    assert record is not None
    record([result(1), result(2, OutcomeStatus.FAILED), result(3, attempted=False)], WHEN)
    audit.close()
    got = lines(path)
    assert [g["address"] for g in got] == ["user/u1@contoso.com", "user/u2@contoso.com"]
    first = got[0]
    assert first["time"] == "2026-12-02T06:00:00Z"
    assert (first["policy"], first["tenant"]) == (policy.name, policy.tenant.id)
    assert (first["run_id"], first["actor"]) == ("run-1", "ops@host")
    assert (first["kind"], first["action"], first["reason"]) == ("user", "create", "entered_scope")
    assert (first["source_id"], first["target_id"]) == ("src-1", "tgt-1")
    assert first["outcome"] == "applied"
    assert first["attributes"] == ["password"]  # the path, never the value
    assert got[1]["outcome"] == "failed"
    assert SECRET_VALUE not in path.read_text()


def test_lines_are_appended_and_never_interleaved(policy: Policy, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"earlier": true}\n')
    audit = AuditLog(run_id="r", actor="a", override=path)
    audit.open([policy])
    record = audit.recorder(policy)
    assert record is not None
    threads = [
        threading.Thread(target=record, args=([result(t * 100 + n) for n in range(50)], WHEN))
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()
    got = lines(path)  # every line parses: none was cut by another
    assert got[0] == {"earlier": True}
    assert len(got) == 1 + 8 * 50


def test_the_policy_default_and_stdout(tmp_path: Path) -> None:
    demo = copy_demo(tmp_path)
    assert "\nstate:" not in demo.read_text()
    demo.write_text(demo.read_text() + "\nstate:\n  audit_log: logs/audit.jsonl\n")
    (tmp_path / "logs").mkdir()
    policy = load_policies([demo])[0]
    assert policy.state.audit_log == tmp_path / "logs" / "audit.jsonl"
    echoed: list[str] = []
    audit = AuditLog(run_id="r", actor="a", echo=echoed.append)
    audit.open([policy])
    record = audit.recorder(policy)
    assert record is not None
    record([result(1)], WHEN)
    audit.close()
    assert echoed == [(tmp_path / "logs" / "audit.jsonl").read_text()]


def test_an_unwritable_path_fails_before_anything(policy: Policy, tmp_path: Path) -> None:
    audit = AuditLog(run_id="r", actor="a", override=tmp_path / "no" / "such" / "audit.jsonl")
    with pytest.raises(SyncctlError, match=r"--audit-log .*cannot append"):
        audit.open([policy])


def test_no_file_and_no_stdout_records_nothing(policy: Policy) -> None:
    assert AuditLog(run_id="r", actor="a").recorder(policy) is None


@pytest.mark.parametrize(
    ("env", "actor"),
    [
        ({"SYNCCTL_ACTOR": "change CHG0042 by jo"}, "change CHG0042 by jo"),
        (
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_ACTOR": "octo",
                "GITHUB_REPOSITORY": "org/idp",
                "GITHUB_RUN_ID": "77",
            },
            "github:octo (org/idp run 77)",
        ),
        (
            {
                "GITLAB_CI": "true",
                "GITLAB_USER_LOGIN": "jo",
                "CI_PROJECT_PATH": "it/idp",
                "CI_PIPELINE_ID": "9",
            },
            "gitlab:jo (it/idp pipeline 9)",
        ),
        (
            {
                "TF_BUILD": "True",
                "BUILD_REQUESTEDFOREMAIL": "jo@contoso.com",
                "SYSTEM_TEAMPROJECT": "IT",
                "BUILD_BUILDID": "5",
            },
            "azure-pipelines:jo@contoso.com (IT build 5)",
        ),
        ({"SYNCCTL_ACTOR": "two\nlines"}, "two lines"),
    ],
)
def test_the_actor_comes_from_the_ci_environment(env: dict[str, str], actor: str) -> None:
    assert current_actor(env) == actor


def test_the_actor_is_user_at_host_elsewhere() -> None:
    import socket

    assert current_actor({}).endswith(f"@{socket.gethostname()}")
