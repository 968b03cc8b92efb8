"""Splitting SCIM Bulk operations into requests the server accepts (RFC 7644 §3.7).

A BulkRequest may hold at most ``maxOperations`` operations and ``maxPayloadSize`` bytes
(from /ServiceProviderConfig). Operations keep their order; an operation larger than the
payload limit on its own still goes (alone), and the server's 413 then sends the caller to
single requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

ENVELOPE_BYTES = 1024  # schemas, "Operations" and separators around the operations


def chunk_operations(
    items: Sequence[T], sizes: Sequence[int], *, max_operations: int, max_payload: int
) -> list[list[T]]:
    """Consecutive groups of ``items`` with at most ``max_operations`` members whose
    ``sizes`` (serialised bytes) add up to at most ``max_payload - ENVELOPE_BYTES``."""
    if len(items) != len(sizes):
        raise ValueError("one size per item")
    budget = max_payload - ENVELOPE_BYTES
    limit = max(1, max_operations)
    chunks: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item, size in zip(items, sizes, strict=True):
        if current and (len(current) >= limit or used + size > budget):
            chunks.append(current)
            current, used = [], 0
        current.append(item)
        used += size
    if current:
        chunks.append(current)
    return chunks
