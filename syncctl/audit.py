"""The audit log: one JSON line per change an apply attempted, and nothing else.

Who was deprovisioned, when, by which run and on whose behalf: what an auditor asks after an
offboarding. Lines are written as each phase of the apply is journalled (a run killed halfway
still leaves the lines of what it did), appended with one ``write`` on an ``O_APPEND`` file
(runs of several policies, or several processes, never interleave inside a line) and synced
to disk. A line names the change (address, kind, action, reason, ids) and its outcome, never
attribute values (``Redact()`` or not) and never secrets; attribute *paths* are listed.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from syncctl.apply.applier import ChangeResult, ResultsFn
from syncctl.errors import SyncctlError
from syncctl.policy.model import Policy
from syncctl.redaction import mask
from syncctl.state.store import iso

AUDIT_FORMAT = "1"
_FIELD_LIMIT = 200  # identities come from the environment: bounded, one line


def new_run_id() -> str:
    return uuid.uuid4().hex


def current_actor(environ: Mapping[str, str] | None = None) -> str:
    """Who runs syncctl: ``SYNCCTL_ACTOR`` when set, else the CI system's identity of the
    person or trigger behind the job, else ``user@host``."""
    env = os.environ if environ is None else environ
    explicit = env.get("SYNCCTL_ACTOR", "").strip()
    if explicit:
        return _clean(explicit)
    for detect in (_github, _gitlab, _azure_pipelines, _jenkins):
        found = detect(env)
        if found:
            return _clean(found)
    return _clean(f"{_user()}@{socket.gethostname()}")


def _github(env: Mapping[str, str]) -> str | None:
    if env.get("GITHUB_ACTIONS") != "true":
        return None
    run = f"{env.get('GITHUB_REPOSITORY', '?')} run {env.get('GITHUB_RUN_ID', '?')}"
    return f"github:{env.get('GITHUB_ACTOR', 'unknown')} ({run})"


def _gitlab(env: Mapping[str, str]) -> str | None:
    if env.get("GITLAB_CI") != "true":
        return None
    pipeline = f"{env.get('CI_PROJECT_PATH', '?')} pipeline {env.get('CI_PIPELINE_ID', '?')}"
    return f"gitlab:{env.get('GITLAB_USER_LOGIN', 'unknown')} ({pipeline})"


def _azure_pipelines(env: Mapping[str, str]) -> str | None:
    if env.get("TF_BUILD", "").lower() != "true":
        return None
    who = env.get("BUILD_REQUESTEDFOREMAIL") or env.get("BUILD_REQUESTEDFOR") or "unknown"
    build = f"{env.get('SYSTEM_TEAMPROJECT', '?')} build {env.get('BUILD_BUILDID', '?')}"
    return f"azure-pipelines:{who} ({build})"


def _jenkins(env: Mapping[str, str]) -> str | None:
    if not env.get("JENKINS_URL"):
        return None
    return f"jenkins:{env.get('BUILD_USER_ID', 'unknown')} ({env.get('BUILD_TAG', '?')})"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return f"uid-{os.getuid()}"


def _clean(text: str) -> str:
    return " ".join(text.split())[:_FIELD_LIMIT]


def audit_record(
    result: ChangeResult, *, policy: Policy, when: datetime, run_id: str, actor: str
) -> dict[str, object]:
    change, outcome = result.change, result.outcome
    return {
        "format_version": AUDIT_FORMAT,
        "time": iso(when),
        "run_id": run_id,
        "actor": actor,
        "policy": policy.name,
        "tenant": policy.tenant.id,
        "address": change.address,
        "kind": change.kind.value,
        "action": change.action.value,
        "reason": change.reason.value,
        "outcome": outcome.status.value,
        "message": None if outcome.message is None else mask(outcome.message),
        "source_id": change.source_id,
        "target_id": outcome.target_id or change.target_id,
        "group": change.group,
        "user": change.user,
        "attributes": [a.path for a in change.attributes],
    }


class AuditLog:
    """Where one command's audit lines go: each policy's file (``--audit-log`` or its
    ``state.audit_log``), and ``echo`` (``--format jsonl`` on stdout) when given. Files are
    opened by ``open``, before anything is applied, so an unwritable path stops the run
    before it changes anything."""

    def __init__(
        self,
        *,
        run_id: str,
        actor: str,
        override: Path | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.actor = actor
        self._override = override
        self._echo = echo
        self._files: dict[Path, IO[bytes]] = {}
        self._lock = threading.Lock()

    def open(self, policies: Sequence[Policy]) -> None:
        for policy in policies:
            path = self._path_of(policy)
            if path is None or path in self._files:
                continue
            option = "--audit-log" if self._override is not None else "state.audit_log"
            if path.is_dir():
                raise SyncctlError(f"{option} {path}: is a directory")
            try:
                self._files[path] = open(path, "ab", buffering=0)  # noqa: SIM115 (kept open)
            except OSError as exc:
                self.close()
                raise SyncctlError(f"{option} {path}: cannot append: {exc.strerror}") from None

    def recorder(self, policy: Policy) -> ResultsFn | None:
        """What the applier calls after each phase of ``policy``; None: nothing to record."""
        path = self._path_of(policy)
        if path is None and self._echo is None:
            return None

        def record(results: Sequence[ChangeResult], when: datetime) -> None:
            lines = [
                json.dumps(
                    audit_record(r, policy=policy, when=when, run_id=self.run_id, actor=self.actor),
                    sort_keys=True,
                    ensure_ascii=False,
                )
                for r in results
                if r.attempted
            ]
            if lines:
                self._write(path, lines)

        return record

    def _write(self, path: Path | None, lines: list[str]) -> None:
        data = "".join(f"{line}\n" for line in lines)
        with self._lock:
            if path is not None:
                handle = self._files[path]
                try:
                    handle.write(data.encode("utf-8", "surrogateescape"))
                    os.fsync(handle.fileno())
                except OSError as exc:
                    raise SyncctlError(f"audit log {path}: {exc.strerror}") from None
            if self._echo is not None:
                self._echo(data)

    def _path_of(self, policy: Policy) -> Path | None:
        return self._override if self._override is not None else policy.state.audit_log

    def close(self) -> None:
        with self._lock:
            for handle in self._files.values():
                with contextlib.suppress(OSError):
                    handle.close()
            self._files.clear()
