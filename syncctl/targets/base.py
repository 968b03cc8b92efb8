"""The small Protocol every target implements, and the registry that finds them.

A target reads what it holds (``read``), applies batches of plan changes (``apply``) and, when
it can, tells cheaply whether anything changed since an earlier call (``change_marker``). The
applier decides order and concurrency; the target decides how to carry out one batch (one
SQLite transaction, SCIM PATCH/Bulk). Membership changes name Entra ids (``Change.group``,
``Change.user``): the target resolves them to its own ids, including objects created earlier
in the same apply.

Every write must be idempotent, because a crashed apply is simply run again:
- create of an ``external_id`` the target already holds for this owner updates it instead;
- delete of something already gone, add of a member already there, remove of a member
  already absent: success, not failure;
- an object whose version differs from ``Change.version`` (when given) is not overwritten:
  the outcome is ``stale``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from typing import Protocol

from syncctl.errors import TargetError
from syncctl.model import TargetSnapshot
from syncctl.plan.model import Change
from syncctl.policy.model import Policy


class OutcomeStatus(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"  # already in the wanted state (idempotent re-run)
    FAILED = "failed"
    STALE = "stale"  # the object changed on the target since planning; not overwritten


@dataclass(frozen=True, slots=True)
class Outcome:
    address: str
    status: OutcomeStatus
    target_id: str | None = None  # set on create / adopt
    message: str | None = None  # why it failed (one line, no secrets)


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_batch: int = 100  # changes per apply() call that make sense
    parallel_safe: bool = True  # apply() may be called from several threads at once
    versions: bool = True  # Change.version is enforced (stale-plan protection)
    # The target records which policy owns each object itself (SQLite's managed_by column),
    # so ownership survives a lost state; others (SCIM) know it only from the state.
    marks_ownership: bool = False


class Target(Protocol):
    """What the engine needs of a directory that syncctl provisions into."""

    def capabilities(self) -> Capabilities: ...

    def read(self, owner: str, known_ids: Collection[str]) -> TargetSnapshot:
        """Everything the target holds. ``owner`` is the policy name; ``known_ids`` are the
        Entra ids the state says this policy manages (targets that cannot mark ownership
        themselves, like SCIM, use them to cross-check ``externalId``)."""
        ...

    def apply(self, changes: Sequence[Change], owner: str) -> list[Outcome]:
        """Carry out one batch; one Outcome per change, in order. Raises only for failures
        of the whole target (unreachable, auth); per-change failures are Outcomes."""
        ...

    def change_marker(self) -> str | None:
        """An opaque token that stays equal between two calls exactly when nothing the target
        holds changed in between — whoever changed it (syncctl, or an application writing to the
        directory directly). None: this target cannot tell (SCIM: no change feed), so the caller
        must read it.

        Take the marker before ``read``: a change landing between the two is then seen as a
        change next time, instead of being covered by a marker the read never saw."""
        ...

    def close(self) -> None: ...


def change_marker(target: Target) -> str | None:
    """``target.change_marker()``, or None for a plugin written before targets had one (and
    for anything but a string, which cannot be a marker): the caller then reads the target."""
    method = getattr(target, "change_marker", None)
    if not callable(method):
        return None
    marker = method()
    return marker if isinstance(marker, str) else None


TargetFactory = Callable[[Policy], Target]

_BUILTIN: dict[str, str] = {
    "sqlite": "syncctl.targets.sqlite:SqliteDirectory",
    "scim": "syncctl.targets.scim:ScimDirectory",
}


def available_targets() -> list[str]:
    names = set(_BUILTIN)
    names.update(ep.name for ep in entry_points(group="syncctl.targets"))
    return sorted(names)


def open_target(policy: Policy) -> Target:
    """Build the target a policy names. Built-ins first, then the syncctl.targets group."""
    kind = policy.target.type
    if kind in _BUILTIN:
        module_name, _, attr = _BUILTIN[kind].partition(":")
        import importlib

        factory: TargetFactory = getattr(importlib.import_module(module_name), attr)
        return factory(policy)
    for ep in entry_points(group="syncctl.targets"):
        if ep.name == kind:
            plugin: TargetFactory = ep.load()
            return plugin(policy)
    known = ", ".join(available_targets())
    raise TargetError(f'unknown target type "{kind}" (known: {known})')
