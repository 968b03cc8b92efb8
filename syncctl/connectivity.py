"""``validate --online``: can each policy reach its source and its target right now?

Each policy gets an ``OnlineCheck`` that says what was actually verified, in words, and what
failed, so the CLI never calls a policy "ok" for a check it did not make or that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncctl.errors import PermissionsMissing, SyncctlError
from syncctl.policy.model import Policy


@dataclass(frozen=True, slots=True)
class OnlineCheck:
    policy: Policy
    verified: tuple[str, ...]  # e.g. ("signed in to Entra", "target answered")
    failures: tuple[str, ...]  # one line each, e.g. "source: AADSTS7000215 ..."
    unchecked: tuple[str, ...] = ()  # what there was no way to check, e.g. a SQLite target

    @property
    def ok(self) -> bool:
        return not self.failures


def check_online(policies: Sequence[Policy]) -> list[OnlineCheck]:
    """One ``OnlineCheck`` per policy, in order: the source (snapshot loads, or the credential
    signs in to Entra) and the target (it answers and accepts its credentials)."""
    from syncctl.source import check_source
    from syncctl.targets.base import open_target

    checks: list[OnlineCheck] = []
    for policy in policies:
        verified: list[str] = []
        failures: list[str] = []
        unchecked: list[str] = []
        try:
            unchecked.extend(f"source: {note}" for note in check_source(policy))
            verified.append(
                "snapshot read" if policy.tenant.snapshot is not None else "signed in to Entra"
            )
        except PermissionsMissing as exc:
            failures.extend(f"source: {line}" for line in exc.lines)
        except SyncctlError as exc:
            failures.append(f"source: {exc}")
        try:
            target = open_target(policy)
            try:
                check = getattr(target, "check", None)
                if callable(check):
                    check()
                    verified.append("target answered")
                else:
                    unchecked.append(f"{policy.target.type} target has no online check")
            finally:
                target.close()
        except SyncctlError as exc:
            failures.append(f"target: {exc}")
        checks.append(OnlineCheck(policy, tuple(verified), tuple(failures), tuple(unchecked)))
    return checks
