"""Plan addresses: the stable names people and the applier use for changes.

``user/<userName>``, ``group/<displayName>``, ``membership/<group displayName>/<userName>``.
A group's displayName may contain "/", a userName (an Entra UPN) cannot, so a membership
address splits on its last "/".
"""

from __future__ import annotations

from syncctl.model import ObjectKind


def object_address(kind: ObjectKind, key: str) -> str:
    return f"{kind.value}/{key}"


def membership_address(group_key: str, user_key: str) -> str:
    return f"membership/{group_key}/{user_key}"


def split_membership(address: str) -> tuple[str, str]:
    """(group displayName, userName) of a membership address."""
    body = address.removeprefix("membership/")
    group, _, user = body.rpartition("/")
    return group, user


def split_object(address: str) -> tuple[str, str]:
    """(kind, key) of a user or group address."""
    kind, _, key = address.partition("/")
    return kind, key
