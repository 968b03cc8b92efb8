"""Shared helpers for expression tests."""

from __future__ import annotations

from typing import Any

import pytest

from syncctl.expressions import EvaluationError, compile_expression


def ev(text: str, **attributes: Any) -> Any:
    """Evaluate ``text`` against a source object made of ``attributes``."""
    return compile_expression(text).evaluate(attributes)


def fails(text: str, function: str | None, match: str, **attributes: Any) -> EvaluationError:
    with pytest.raises(EvaluationError, match=match) as info:
        ev(text, **attributes)
    assert info.value.function == function
    return info.value
