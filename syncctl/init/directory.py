"""The signed-in directory ``syncctl init`` searches: the same search and table as
``syncctl search``, with row numbers to pick from, and group picks resolved to exactly one
group (by number, object id or exact display name)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from syncctl.init.questions import AnswerError
from syncctl.policy.model import is_object_id
from syncctl.source.search import DirectoryEntry

USER_TYPES = ("Member", "Guest")

Search = Callable[[str], list[DirectoryEntry]]


@dataclass(frozen=True, slots=True)
class GroupChoice:
    name: str
    id: str
    by_id: bool = False  # the display name is not unique: the policy names the object id

    @property
    def written(self) -> str:
        return self.id if self.by_id else self.name


def numbered_table(entries: Sequence[DirectoryEntry]) -> str:
    """``syncctl search``'s table with a row number in front, to pick by."""
    from syncctl.cli.source import render_table

    lines = render_table(list(entries)).splitlines()
    numbered = ["  #  " + lines[0]]
    numbered += [f"{index:>3}  {line}" for index, line in enumerate(lines[1:], start=1)]
    return "\n".join(line.rstrip() for line in numbered)


def pick_groups(
    key: str, answer: Sequence[str], shown: Sequence[DirectoryEntry], search: Search
) -> tuple[GroupChoice, ...]:
    """Each pick is a row number of ``shown``, an object id or an exact display name."""
    picked: dict[str, GroupChoice] = {}
    for item in answer:
        entry = _one_group(key, item.strip(), shown, search)
        picked.setdefault(entry.id, _choice(entry, search))
    return tuple(picked.values())


def _one_group(
    key: str, item: str, shown: Sequence[DirectoryEntry], search: Search
) -> DirectoryEntry:
    if not item:
        raise AnswerError(key, "an empty pick (two commas in a row?)")
    if item.isdigit():
        number = int(item)
        if not 1 <= number <= len(shown):
            raise AnswerError(key, f"{number} is not a row of the table (1 to {len(shown)})")
        entry = shown[number - 1]
        if entry.type in USER_TYPES:
            raise AnswerError(key, f"{number} ({entry.name}) is a user, not a group")
        return entry
    groups = [e for e in search(item) if e.type not in USER_TYPES]
    if is_object_id(item):
        found = [e for e in groups if e.id.lower() == item.lower()]
        if not found:
            raise AnswerError(key, f"no group has the object id {item}")
        return found[0]
    named = [e for e in groups if e.name.casefold() == item.casefold()]
    if not named:
        close = ", ".join(repr(e.name) for e in groups[:3])
        hint = f" (found {close})" if close else ""
        raise AnswerError(key, f"no group is named {item!r}{hint}")
    if len(named) > 1:
        ids = ", ".join(e.id for e in named)
        raise AnswerError(
            key, f"{len(named)} groups are named {item!r}: pick one by object id ({ids})"
        )
    return named[0]


def _choice(entry: DirectoryEntry, search: Search) -> GroupChoice:
    # Names read better in a policy, but one that another group shares would not resolve.
    same = [e for e in search(entry.name) if e.type not in USER_TYPES and e.name == entry.name]
    return GroupChoice(entry.name, entry.id, by_id=len(same) != 1 or not entry.name)
