"""TenantCache: the flattened slice, and the stored blob (round trip, digest, format)."""

from __future__ import annotations

import json
import zlib

import pytest

from syncctl.model import RemovalReason
from syncctl.source.cache import (
    CACHE_FORMAT,
    CachedGroup,
    CacheUnusable,
    TenantCache,
    blob_name,
    cache_key,
    decode,
)

SCOPE, NESTED, DEEP, VAULT = "g-scope", "g-nested", "g-deep", "g-vault"


def cache() -> TenantCache:
    return TenantCache(
        tenant="contoso.onmicrosoft.com",
        key="key",
        scope=(SCOPE,),
        provisioned=(VAULT,),
        users={
            "u-ann": {"id": "u-ann", "department": None, "accountEnabled": True},
            "u-bob": {"id": "u-bob", "department": "Ops", "accountEnabled": False},
            "u-cat": {"id": "u-cat", "department": "Ops", "accountEnabled": True},
        },
        groups={
            SCOPE: CachedGroup({"displayName": "Scope"}, {"u-ann"}, {NESTED}),
            NESTED: CachedGroup({}, {"u-bob"}, {DEEP}),
            DEEP: CachedGroup({}, {"u-cat"}, {NESTED}),  # a cycle: reached once
            VAULT: CachedGroup({"displayName": "Vault", "groupTypes": []}, {"u-cat", "u-dan"}),
        },
        outside={"u-eve": RemovalReason.SOFT_DELETED},
    )


def test_flatten_gives_transitive_members_of_selected_groups_only() -> None:
    flat = cache().flatten()
    assert sorted(flat.users) == ["u-ann", "u-bob", "u-cat"]
    assert sorted(flat.groups) == [SCOPE, VAULT]
    assert flat.groups[SCOPE].members == ("u-ann", "u-bob", "u-cat")
    assert flat.groups[VAULT].members == ("u-cat", "u-dan")
    assert flat.groups[SCOPE].attributes == {"displayName": "Scope"}


def test_candidates_follow_nested_groups_from_the_scope() -> None:
    assert cache().candidates() == {"u-ann", "u-bob", "u-cat"}
    assert cache().reachable([NESTED]) == {NESTED, DEEP}


def test_round_trip() -> None:
    original = cache()
    name, data = original.encode()
    assert name.startswith("slice-")
    restored = decode(name, data)
    assert restored == original
    assert restored.flatten() == original.flatten()


def test_equal_slices_have_equal_names() -> None:
    assert cache().encode()[0] == cache().encode()[0]
    other = cache()
    other.users["u-ann"]["department"] = "Sales"
    assert other.encode()[0] != cache().encode()[0]


def test_one_flipped_byte_is_refused() -> None:
    name, data = cache().encode()
    raw = bytearray(zlib.decompress(data))
    at = raw.index(b"Ops")
    raw[at] ^= 0x01
    with pytest.raises(CacheUnusable, match="digest"):
        decode(name, zlib.compress(bytes(raw)))


def test_a_flipped_compressed_byte_is_refused() -> None:
    name, data = cache().encode()
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(CacheUnusable):
        decode(name, bytes(damaged))


def test_not_compressed_at_all_is_refused() -> None:
    with pytest.raises(CacheUnusable, match="corrupt"):
        decode("slice-0", b"{}")


def _stored(document: object) -> tuple[str, bytes]:
    raw = json.dumps(document).encode()
    return blob_name(raw), zlib.compress(raw)


def test_another_format_is_refused() -> None:
    document = cache().to_document()
    document["format"] = CACHE_FORMAT + 1
    with pytest.raises(CacheUnusable, match="format"):
        decode(*_stored(document))


def test_older_format_without_the_field_is_refused() -> None:
    document = cache().to_document()
    del document["format"]
    with pytest.raises(CacheUnusable, match="format"):
        decode(*_stored(document))


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("groups"),
        lambda d: d.__setitem__("users", [["u-ann"]]),  # a row shorter than the columns
        lambda d: d.__setitem__("outside", {"u-eve": "vanished"}),
        lambda d: d.__setitem__("groups", "nope"),
    ],
)
def test_malformed_document_with_a_matching_digest_is_refused(damage: object) -> None:
    document = cache().to_document()
    damage(document)  # type: ignore[operator]
    with pytest.raises(CacheUnusable, match="malformed"):
        decode(*_stored(document))


def test_a_json_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(CacheUnusable):
        decode(*_stored([1, 2, 3]))


def test_a_lone_surrogate_in_an_attribute_survives() -> None:
    original = cache()
    original.users["u-ann"]["displayName"] = "Ann \ud800 Lee"
    original.groups[SCOPE].attributes["description"] = "\udfff"
    restored = decode(*original.encode())
    assert restored.users["u-ann"]["displayName"] == "Ann \ud800 Lee"
    assert restored.groups[SCOPE].attributes["description"] == "\udfff"


def test_cache_key_changes_with_what_the_slice_depends_on() -> None:
    base = cache_key("T.onmicrosoft.com", {"scope_groups": ["A"]}, ["id", "x"], ["id"])
    assert base == cache_key("t.onmicrosoft.com", {"scope_groups": ["A"]}, ["x", "id"], ["id"])
    assert base != cache_key("t.onmicrosoft.com", {"scope_groups": ["B"]}, ["id", "x"], ["id"])
    assert base != cache_key("t.onmicrosoft.com", {"scope_groups": ["A"]}, ["id"], ["id"])
    assert base != cache_key("u.onmicrosoft.com", {"scope_groups": ["A"]}, ["id", "x"], ["id"])
