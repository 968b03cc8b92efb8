"""A problem found in one policy document, located by JSON path until it meets the YAML marks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from syncctl.policy.yamlpos import JsonPath


@dataclass(frozen=True, slots=True)
class Problem:
    path: JsonPath
    message: str
    at_key: bool = False  # point at the key that introduces `path`, not at its value
    expression_column: int | None = None  # 1-based column inside an expression scalar
    severity: str = "error"
    missing: str | None = None  # the required key this problem reports as missing
    suggestion: str | None = None  # for an unknown key: the known key it is probably a typo of


def describe_path(path: JsonPath) -> str:
    """``("source", "groups", 1, "match")`` -> ``source.groups[1].match``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "the policy"


def closest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = closest(word, choices)
    return f" (did you mean '{close}'?)" if close else ""


def without_typo_echoes(problems: list[Problem]) -> list[Problem]:
    """Drop "missing key X" where the same mapping has an unknown key that is a typo of X:
    one defect, one message."""
    typos = {(p.path[:-1], p.suggestion) for p in problems if p.suggestion is not None}
    return [p for p in problems if p.missing is None or (p.path, p.missing) not in typos]
