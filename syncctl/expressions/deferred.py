"""The only non-deterministic corner of the expression language.

Guid(), Now() and RandomString() are allowed only in ``apply: on_create`` mappings. At plan
time the mapper turns such a mapping into a ``Deferred`` value (equal for the same expression
and object, shown as "(known after apply)"), so plans stay deterministic; the applier calls
``Deferred.resolve()`` when it creates the object, and only then do these functions run.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from syncctl.expressions.dates import format_entra
from syncctl.expressions.values import text, whole_number
from syncctl.plan.model import KNOWN_AFTER_APPLY


class Deferred:
    """A value only known at apply time: ``Guid()``, ``Now()``, ``RandomString()`` on create.

    Plans stay deterministic: two Deferreds of the same expression and object are equal and
    hash alike, and ``repr`` shows ``(known after apply)``. ``resolve`` computes the value (the
    applier calls it once, when it creates the object); it may use the clock or randomness.
    """

    __slots__ = ("_compute", "expression", "object_id")

    def __init__(self, expression: str, object_id: str, compute: Callable[[], Any]) -> None:
        self.expression = expression
        self.object_id = object_id
        self._compute = compute

    def resolve(self) -> Any:
        return self._compute()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Deferred):
            return NotImplemented
        return (self.expression, self.object_id) == (other.expression, other.object_id)

    def __hash__(self) -> int:
        return hash(("Deferred", self.expression, self.object_id))

    def __repr__(self) -> str:
        return KNOWN_AFTER_APPLY

    __str__ = __repr__


def guid() -> str:
    return str(uuid.uuid4())


def now() -> str:
    return format_entra(datetime.now(UTC))


_SPECIAL = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/"  # Windows password complexity special characters
_RANDOM_MAX = 256


def random_string(  # noqa: PLR0917 (Microsoft's signature)
    length: Any, numbers: Any, special: Any, capital: Any, lower: Any, avoid: Any = None
) -> str:
    total = whole_number(length, "Length")
    minimums = [
        (whole_number(numbers, "MinimumNumbers"), string.digits),
        (whole_number(special, "MinimumSpecialCharacters"), _SPECIAL),
        (whole_number(capital, "MinimumCapital"), string.ascii_uppercase),
        (whole_number(lower, "MinimumLowerCase"), string.ascii_lowercase),
    ]
    if not 1 <= total <= _RANDOM_MAX:
        raise ValueError(f"Length must be 1 to {_RANDOM_MAX}, got {total}")
    if any(count < 0 for count, _ in minimums):
        raise ValueError("minimum counts must not be negative")
    if sum(count for count, _ in minimums) > total:
        raise ValueError(f"Length {total} is less than the sum of the minimums")
    excluded = frozenset("" if avoid is None else text(avoid))
    pools = [("".join(c for c in chars if c not in excluded), count) for count, chars in minimums]
    chosen: list[str] = []
    for pool, count in pools:
        if count and not pool:
            raise ValueError("CharactersToAvoid excludes every character of a required class")
        chosen.extend(secrets.choice(pool) for _ in range(count))
    everything = "".join(pool for pool, _ in pools)
    chosen.extend(secrets.choice(everything) for _ in range(total - len(chosen)))
    secrets.SystemRandom().shuffle(chosen)
    return "".join(chosen)
