"""Bulk requests stay within the server's maxOperations and maxPayloadSize, in order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncctl.targets.scim_bulk import ENVELOPE_BYTES, chunk_operations


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=5000), max_size=300),
    max_operations=st.integers(min_value=1, max_value=120),
    max_payload=st.integers(min_value=ENVELOPE_BYTES + 1, max_value=50_000),
)
def test_chunks_cover_everything_in_order_within_limits(
    sizes: list[int], max_operations: int, max_payload: int
) -> None:
    items = list(range(len(sizes)))
    chunks = chunk_operations(items, sizes, max_operations=max_operations, max_payload=max_payload)
    assert [i for chunk in chunks for i in chunk] == items
    budget = max_payload - ENVELOPE_BYTES
    for chunk in chunks:
        assert 1 <= len(chunk) <= max_operations
        total = sum(sizes[i] for i in chunk)
        assert total <= budget or len(chunk) == 1  # an oversized operation travels alone
    # Greedy: a chunk is only closed when the next operation would not fit.
    for chunk, following in itertools.pairwise(chunks):
        nxt = following[0]
        assert len(chunk) == max_operations or sum(sizes[i] for i in chunk) + sizes[nxt] > budget


def test_sizes_must_match() -> None:
    with pytest.raises(ValueError):
        chunk_operations([1, 2], [10], max_operations=5, max_payload=5000)
