"""The JSON plan (CLI.md "Plan JSON", format_version 1): the plan document, canonically."""

from __future__ import annotations

from typing import Any

from syncctl.plan.planfile import dumps_dict


def render(plan: dict[str, Any]) -> str:
    return dumps_dict(plan)
