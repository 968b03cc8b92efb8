"""Recognising values that only exist at apply time (``Guid()``, ``Now()``, ``RandomString()``
on create): the planner never compares them, the plan document shows "(known after apply)"."""

from __future__ import annotations

from typing import Any

from syncctl.expressions import Deferred


def is_deferred(value: Any) -> bool:
    return isinstance(value, Deferred)
