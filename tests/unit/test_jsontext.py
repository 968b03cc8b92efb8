"""``indented_json`` (how snapshot files and state documents are written) is
``json.dumps(indent=N, sort_keys=True)`` to the byte: users' Git diffs and the golden files
depend on it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.jsontext import indented_json
from syncctl.model import SourceGroup, SourceSnapshot, SourceUser
from syncctl.source.snapshot import dumps_snapshot, snapshot_to_json

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    # Control characters, quotes, backslashes, non-ASCII and lone surrogates.
    | st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=8)
)
_keys = st.text(max_size=6) | st.integers()
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=6), inner, max_size=5)
        # Non-string keys, all of one kind per object (json sorts them, then writes them as text).
        | st.dictionaries(st.integers(), inner, max_size=3)
        | st.dictionaries(st.floats(allow_nan=False), inner, max_size=2)
        | st.dictionaries(st.booleans(), inner, max_size=2)
        | st.dictionaries(st.none(), inner, max_size=1)
    ),
    max_leaves=30,
)


@settings(max_examples=400)
@given(_json, st.booleans(), st.sampled_from([1, 2, 4]))
def test_the_same_text_as_json_dumps(value: Any, ensure_ascii: bool, indent: int) -> None:
    expected = json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=ensure_ascii)
    assert indented_json(value, indent=indent, ensure_ascii=ensure_ascii) == expected


@given(st.dictionaries(_keys, st.integers(), min_size=2, max_size=4))
def test_keys_json_cannot_sort_fail_the_same_way(value: dict[Any, int]) -> None:
    try:
        expected: str | type[Exception] = json.dumps(
            value, indent=2, sort_keys=True, ensure_ascii=False
        )
    except TypeError:
        expected = TypeError
    if expected is TypeError:
        with pytest.raises(TypeError):
            indented_json(value, indent=2, ensure_ascii=False)
    else:
        assert indented_json(value, indent=2, ensure_ascii=False) == expected


@pytest.mark.parametrize("value", [{"a": object()}, [{"b": [1, {2, 3}]}], {(1, 2): 3}])
def test_what_json_cannot_write_is_the_same_type_error(value: Any) -> None:
    with pytest.raises(TypeError) as expected:
        json.dumps(value, indent=2, sort_keys=True)
    with pytest.raises(TypeError) as got:
        indented_json(value, indent=2, ensure_ascii=False)
    assert str(got.value) == str(expected.value)


def test_a_snapshot_file_is_json_dumps_of_its_document() -> None:
    members = tuple(f"u{n}" for n in range(50))
    snapshot = SourceSnapshot(
        tenant="contoso.test",
        users={
            f"u{n}": SourceUser(
                f"u{n}",
                {
                    "id": f"u{n}",
                    "displayName": f"Zoë {n}\ud800" if n == 7 else f"Zoë {n}",
                    "businessPhones": ["+1 555"] if n % 2 else [],
                    "manager": {"id": "u0", "displayName": "Boss"} if n else None,
                    "accountEnabled": n % 3 != 0,
                },
            )
            for n in range(50)
        },
        groups={
            "g1": SourceGroup(
                "g1", {"id": "g1", "displayName": "Team", "groupTypes": ["Unified"]}, members
            )
        },
    )
    document = snapshot_to_json(snapshot)
    # A lone surrogate cannot be UTF-8: the whole file is written with \u escapes instead.
    expected = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    assert dumps_snapshot(snapshot) == expected
