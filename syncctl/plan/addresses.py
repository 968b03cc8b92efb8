"""Plan addresses: the stable names people and the applier use for changes.

``user/<userName>``, ``group/<displayName>``, ``membership/<group displayName>/<userName>``.
A group's displayName may contain "/", a userName (an Entra UPN) cannot, so a membership
address splits on its last "/". A key holding a lone UTF-16 surrogate is spelled with the
surrogate escaped (``\\ud800``), so every address can be written as UTF-8.
"""

from __future__ import annotations

from syncctl.model import ObjectKind
from syncctl.plan.unicode import printable


def object_address(kind: ObjectKind, key: str) -> str:
    return f"{kind.value}/{printable(key)}"


def membership_address(group_key: str, user_key: str) -> str:
    return membership_prefix(group_key) + printable(user_key)


def membership_prefix(group_key: str) -> str:
    """The start of every membership address of one group (the user's key follows)."""
    return f"membership/{printable(group_key)}/"


def split_membership(address: str) -> tuple[str, str]:
    """(group displayName, userName) of a membership address."""
    body = address.removeprefix("membership/")
    group, _, user = body.rpartition("/")
    return group, user


def split_object(address: str) -> tuple[str, str]:
    """(kind, key) of a user or group address."""
    kind, _, key = address.partition("/")
    return kind, key
