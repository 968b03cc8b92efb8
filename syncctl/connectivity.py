"""``validate --online``: can each policy reach its source and its target right now?"""

from __future__ import annotations

from collections.abc import Sequence

from syncctl.errors import SyncctlError
from syncctl.policy.model import Policy


def check_online(policies: Sequence[Policy]) -> list[tuple[str, str]]:
    """(policy name, one-line reason) for every check that failed; [] when all answered."""
    from syncctl.source import check_source
    from syncctl.targets.base import open_target

    failures: list[tuple[str, str]] = []
    for policy in policies:
        try:
            check_source(policy)
        except SyncctlError as exc:
            failures.append((policy.name, f"source: {exc}"))
        try:
            target = open_target(policy)
            try:
                check = getattr(target, "check", None)
                if callable(check):
                    check()
            finally:
                target.close()
        except SyncctlError as exc:
            failures.append((policy.name, f"target: {exc}"))
    return failures
