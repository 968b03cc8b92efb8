"""The per-policy state file: what syncctl remembers between runs.

It holds only identifiers, timestamps and counts, never a secret or an attribute value:
- ``managed``: Entra ids this policy created or adopted on the target. Written *before* the
  create/adopt (write-ahead), so a target that cannot mark ownership itself (SCIM) still
  recognises the object after a crash.
- ``disabled_at``: when syncctl disabled each object (drives ``deletion.delete_after``).
- ``last_run``: when, which operation, outcome, counts, error (``syncctl status``);
  ``last_apply``: the same for the latest apply, which a later plan does not hide.
- ``synced``: per managed object, a short digest of the values syncctl last wrote, so a plan
  can tell an edit made on the target (drift) from a change in Entra. A digest, not the values.
- ``source_cache``: the cached Entra slice of the last read (a blob of the backend, named by
  its digest: ``StateBackend.save_blob``) with what it depends on, and ``delta_links``: the
  Graph delta links that continue from it. Slice and links are saved together, in the same
  state save, after every read: they mirror Entra, not the target.

Writes are atomic (temp file in the same directory, fsync, rename, fsync of the directory),
so a crash leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncctl.errors import SyncctlError
from syncctl.fileio import write_text_atomic
from syncctl.jsontext import indented_json
from syncctl.secrethash import PasswordSet

# 2 added ``tenant``; 3 added ``source_cache``. Older documents are migrated forward on load;
# a newer one is refused (an older syncctl must not drop what it does not understand).
STATE_FORMAT_VERSION = 3


class StateError(SyncctlError):
    """The state file exists but cannot be read or written."""


@dataclass(frozen=True, slots=True)
class LastRun:
    operation: str  # "plan" | "apply"
    started_at: str  # ISO 8601 UTC
    finished_at: str
    outcome: str  # a syncctl.outcomes.Outcome value
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None  # one line, never a secret
    errors: int = 0  # objects that could not be planned, plus changes that failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome,
            "counts": {k: self.counts[k] for k in sorted(self.counts)},
            "error": self.error,
            "errors": self.errors,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LastRun:
        return cls(
            operation=str(data["operation"]),
            started_at=str(data["started_at"]),
            finished_at=str(data["finished_at"]),
            outcome=str(data["outcome"]),
            counts={str(k): int(v) for k, v in dict(data.get("counts") or {}).items()},
            error=None if data.get("error") is None else str(data["error"]),
            errors=int(data.get("errors") or 0),
        )


@dataclass(frozen=True, slots=True)
class SourceCache:
    """Where the cached Entra slice is and what it was read for."""

    blob: str  # the backend blob holding it (``slice-SHA256``)
    key: str  # digest of what it depends on: tenant, scope, groups, selected properties
    full_read_at: str  # ISO 8601 UTC of the last full read it descends from
    # The no-change fast path: digest of the inputs of the last plan that had nothing to do,
    # and the blob holding that plan (None: the last plan had work, errors, or was not made).
    quiet_inputs: str | None = None
    quiet_blob: str | None = None

    def blob_names(self) -> tuple[str, ...]:
        return (self.blob,) if self.quiet_blob is None else (self.blob, self.quiet_blob)

    def to_dict(self) -> dict[str, Any]:
        return {
            "blob": self.blob,
            "key": self.key,
            "full_read_at": self.full_read_at,
            "quiet_inputs": self.quiet_inputs,
            "quiet_blob": self.quiet_blob,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceCache:
        return cls(
            blob=str(data["blob"]),
            key=str(data["key"]),
            full_read_at=str(data["full_read_at"]),
            quiet_inputs=_optional_str(data.get("quiet_inputs")),
            quiet_blob=_optional_str(data.get("quiet_blob")),
        )


@dataclass(frozen=True, slots=True)
class State:
    policy: str
    managed: frozenset[str] = frozenset()
    disabled_at: Mapping[str, datetime] = field(default_factory=dict)
    last_run: LastRun | None = None
    last_apply: LastRun | None = None
    delta_links: Mapping[str, str] = field(default_factory=dict)
    synced: Mapping[str, str] = field(default_factory=dict)  # Entra id -> Change.synced
    tenant: str | None = None  # the policy's tenant.id; None in a migrated version 1 state
    source_cache: SourceCache | None = None
    # Writeback: Entra id -> the password syncctl last set there (a digest, never the value).
    passwords: Mapping[str, PasswordSet] = field(default_factory=dict)

    def blob_names(self) -> tuple[str, ...]:
        """The backend blobs this state refers to (``migrate`` copies them, saves keep them)."""
        return () if self.source_cache is None else self.source_cache.blob_names()

    def with_managed(self, ids: Iterable[str]) -> State:
        return replace(self, managed=self.managed | frozenset(ids))

    def without_managed(self, ids: Iterable[str]) -> State:
        gone = frozenset(ids)
        return replace(
            self,
            managed=self.managed - gone,
            disabled_at={k: v for k, v in self.disabled_at.items() if k not in gone},
            synced={k: v for k, v in self.synced.items() if k not in gone},
        )

    def with_synced(self, digests: Mapping[str, str]) -> State:
        if all(self.synced.get(k) == v for k, v in digests.items()):
            return self
        return replace(self, synced={**self.synced, **digests})

    def with_disabled(self, ids: Iterable[str], when: datetime) -> State:
        merged = dict(self.disabled_at)
        for entra_id in ids:
            merged.setdefault(entra_id, when)  # keep the first disable: the timer runs from it
        return replace(self, disabled_at=merged)

    def with_enabled(self, ids: Iterable[str]) -> State:
        back = frozenset(ids)
        return replace(
            self, disabled_at={k: v for k, v in self.disabled_at.items() if k not in back}
        )

    def with_passwords(self, records: Mapping[str, PasswordSet]) -> State:
        if not records:
            return self
        return replace(self, passwords={**self.passwords, **records})

    def for_tenant(self, tenant: str) -> State:
        return self if self.tenant == tenant else replace(self, tenant=tenant)

    @property
    def is_empty(self) -> bool:
        """Owns nothing and remembers no timers: what a lost state looks like."""
        return not self.managed and not self.disabled_at

    def with_last_run(self, run: LastRun) -> State:
        if run.operation == "apply":
            return replace(self, last_run=run, last_apply=run)
        return replace(self, last_run=run)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": STATE_FORMAT_VERSION,
            "policy": self.policy,
            "tenant": self.tenant,
            "managed": sorted(self.managed),
            "disabled_at": {k: iso(self.disabled_at[k]) for k in sorted(self.disabled_at)},
            "last_run": None if self.last_run is None else self.last_run.to_dict(),
            "last_apply": None if self.last_apply is None else self.last_apply.to_dict(),
            "delta_links": {k: self.delta_links[k] for k in sorted(self.delta_links)},
            "synced": {k: self.synced[k] for k in sorted(self.synced)},
            "source_cache": None if self.source_cache is None else self.source_cache.to_dict(),
        } | self._passwords_dict()

    def _passwords_dict(self) -> dict[str, Any]:
        # Only when there are some: states without writeback stay as they were.
        if not self.passwords:
            return {}
        return {"passwords": {k: self.passwords[k].to_dict() for k in sorted(self.passwords)}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> State:
        data = migrate(data, where)
        try:
            return cls(
                policy=str(data["policy"]),
                tenant=None if data.get("tenant") is None else str(data["tenant"]),
                managed=frozenset(str(x) for x in data.get("managed") or ()),
                disabled_at={
                    str(k): parse_iso(str(v))
                    for k, v in dict(data.get("disabled_at") or {}).items()
                },
                last_run=None
                if data.get("last_run") is None
                else LastRun.from_dict(data["last_run"]),
                last_apply=None
                if data.get("last_apply") is None
                else LastRun.from_dict(data["last_apply"]),
                delta_links={
                    str(k): str(v) for k, v in dict(data.get("delta_links") or {}).items()
                },
                synced={str(k): str(v) for k, v in dict(data.get("synced") or {}).items()},
                source_cache=None
                if data.get("source_cache") is None
                else SourceCache.from_dict(data["source_cache"]),
                passwords={
                    str(k): PasswordSet.from_dict(v)
                    for k, v in dict(data.get("passwords") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{where}: malformed state document ({exc})") from None


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def migrate(data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """``data`` brought forward to STATE_FORMAT_VERSION, one version at a time."""
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"{where}: state document has no valid format_version ({version!r})")
    if version > STATE_FORMAT_VERSION:
        raise StateError(
            f"{where}: state format_version {version} was written by a newer syncctl "
            f"(this one reads up to {STATE_FORMAT_VERSION}); upgrade syncctl"
        )
    upgraded = dict(data)
    if version == 1:
        upgraded = {**upgraded, "tenant": None, "format_version": 2}
    if upgraded["format_version"] == 2:
        # Links without a slice cannot be continued from: a version 2 state never had both.
        upgraded = {**upgraded, "source_cache": None, "delta_links": {}, "format_version": 3}
    return upgraded


def parse_state(text: str, where: str, *, policy: str | None, tenant: str | None) -> State:
    """A state document from its JSON text, checked to belong to ``policy`` of ``tenant``
    (when given). Every backend reads through here."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"{where}:{exc.lineno}: state is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise StateError(f"{where}: state must hold a JSON object")
    state = State.from_dict(data, where)
    if policy is not None and state.policy != policy:
        raise StateError(f'{where}: state belongs to policy "{state.policy}", not "{policy}"')
    if tenant is not None and state.tenant not in (None, tenant):
        raise StateError(
            f"{where}: state belongs to tenant {state.tenant}, not {tenant} (tenant.id "
            "changed? the objects it manages are another tenant's)"
        )
    return state


def render_state(state: State) -> str:
    """The document every backend stores."""
    return indented_json(state.to_dict(), indent=1, ensure_ascii=True) + "\n"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_state(path: Path, policy: str | None, *, tenant: str | None = None) -> State:
    """The state file at ``path``; a missing file is a fresh state (first run)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return State(policy=policy or path.name.removesuffix(".state.json"), tenant=tenant)
    except OSError as exc:
        raise StateError(f"{path}: cannot read state file: {exc.strerror}") from None
    return parse_state(text, str(path), policy=policy, tenant=tenant)


def save_state(path: Path, state: State) -> None:
    write_atomic(path, render_state(state))


def write_atomic(path: Path, text: str) -> None:
    """Replace the state file ``path`` atomically (see ``syncctl.fileio``)."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise StateError(f"{path}: cannot write state file: {exc.strerror}") from None
