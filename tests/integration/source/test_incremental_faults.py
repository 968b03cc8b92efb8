"""Faults on the incremental read, against the TLS emulator with the real client: links that
point elsewhere are refused before anything is sent, broken pages are retried, expired links
recover with a full read, and a round that cannot be read fails the read (never "no
changes")."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from syncctl import source_state
from syncctl.emulator import Emulator, generate_tenant, running_emulator
from syncctl.errors import GraphError
from syncctl.model import SourceSnapshot
from syncctl.policy.model import Policy
from syncctl.source.cache import CacheUnusable, blob_name, decode
from syncctl.source.incremental import SourceSync, SyncedSlice, source_sync
from syncctl.state.local import LocalBackend
from syncctl.state.store import SourceCache, State
from tests.integration.source.conftest import SECRET_ENV, emulator_policy, graph_requests

SCOPE = "Password Manager Users"


@pytest.fixture(scope="module")
def faults_emulator() -> Iterator[Emulator]:
    with running_emulator(generate_tenant(users=150, groups=12, seed=5)) as emu:
        yield emu


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Emulator]:
    """Another Graph (another host): it must never see a request, nor the token."""
    with running_emulator(generate_tenant(users=5, groups=2, seed=1)) as emu:
        yield emu


@pytest.fixture
def emu(faults_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv(SECRET_ENV, faults_emulator.client_secret)
    faults_emulator.faults.clear()
    faults_emulator.throttle(None)
    yield faults_emulator
    faults_emulator.faults.clear()
    faults_emulator.throttle(None)


@pytest.fixture
def sync(emu: Emulator) -> Iterator[SourceSync]:
    with source_sync(emulator_policy(emu)) as opened:
        yield opened


@pytest.fixture
def first(sync: SourceSync) -> SyncedSlice:
    """The first run: a full read with delta links started before it."""
    synced = sync.read(None, {}, full_reason=None, managed=())
    assert synced.full and set(synced.links) == {"users", "groups"}
    return synced


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _moved(url: str, emu: Emulator, other: Emulator) -> str:
    return url.replace(_origin(url), _origin(other.graph), 1)


def _scope_users(emu: Emulator) -> list[str]:
    found = emu.tenant.group_by_name(SCOPE)
    assert found is not None
    return sorted(m for m in emu.tenant.live_members(str(found["id"])) if m in emu.tenant.users)


def _scope_user(emu: Emulator) -> str:
    return _scope_users(emu)[0]


def _full_snapshot(policy: Policy, managed: list[str]) -> SourceSnapshot:
    with source_sync(policy) as fresh:
        synced = fresh.read(None, {}, full_reason="test", managed=managed)
        return fresh.evaluate(synced, managed)


# -- links outside Graph ------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["users", "groups"])
def test_stored_delta_link_to_another_host_is_refused_before_sending(
    emu: Emulator, elsewhere: Emulator, sync: SourceSync, first: SyncedSlice, resource: str
) -> None:
    links = {**first.links, resource: _moved(first.links[resource], emu, elsewhere)}
    elsewhere.reset_requests()
    with pytest.raises(GraphError, match="outside Graph") as raised:
        sync.read(first.cache, links, full_reason=None, managed=())
    assert "\n" not in str(raised.value)
    assert elsewhere.recorded() == []


@pytest.mark.parametrize("link", ["@odata.nextLink", "@odata.deltaLink"])
def test_link_in_a_delta_page_to_another_host_is_refused(
    emu: Emulator, elsewhere: Emulator, sync: SourceSync, first: SyncedSlice, link: str
) -> None:
    target = f"{elsewhere.graph.rstrip('/')}/v1.0/users/delta?$skiptoken=stolen"

    def redirect(body: Any) -> Any:
        body = {k: v for k, v in body.items() if k not in ("@odata.nextLink", "@odata.deltaLink")}
        return {**body, link: target}

    emu.tenant.update_user(_scope_user(emu), department=f"Moved {emu.tenant.seq}")
    rule = emu.faults.add(path=r"users/delta", status=None, rewrite=redirect, times=1)
    elsewhere.reset_requests()
    with pytest.raises(GraphError, match="outside Graph"):
        sync.read(first.cache, first.links, full_reason=None, managed=())
    assert rule.fired == 1
    assert elsewhere.recorded() == []


# -- pages that break, rounds that cannot be read -----------------------------------------------


@pytest.mark.parametrize("page", ["deltatoken", "skiptoken"])
def test_truncated_delta_page_is_retried(
    emu: Emulator, sync: SourceSync, first: SyncedSlice, page: str
) -> None:
    changed = _scope_users(emu)[:3]
    value = f"Truncated {page} {emu.tenant.seq}"
    for user_id in changed:
        emu.tenant.update_user(user_id, department=value)
    emu.service.delta.page_size = 1  # three pages: the fault can land on a follow-up page
    try:
        rule = emu.faults.add(path=rf"users/delta\?.*{page}", truncate=True, times=1)
        emu.reset_requests()
        synced = sync.read(first.cache, first.links, full_reason=None, managed=())
        delta_gets = [r for r in graph_requests(emu) if r[1].endswith("/users/delta")]
        snapshot = sync.evaluate(synced, ())
    finally:
        emu.service.delta.page_size = 100
    assert rule.fired == 1, delta_gets
    assert len(delta_gets) == 4  # three pages and the retry of the truncated one
    assert not synced.full
    for user_id in changed:
        assert synced.cache.users[user_id]["department"] == value
    assert snapshot == _full_snapshot(sync.reader.policy, [])


def test_delta_page_that_is_not_json_is_retried(
    emu: Emulator, sync: SourceSync, first: SyncedSlice
) -> None:
    user_id = _scope_user(emu)
    emu.tenant.update_user(user_id, department=f"After HTML {emu.tenant.seq}")
    rule = emu.faults.add(path=r"groups/delta", status=None, body=b"<html>busy</html>", times=1)
    synced = sync.read(first.cache, first.links, full_reason=None, managed=())
    assert rule.fired == 1
    assert sync.evaluate(synced, ()) == _full_snapshot(sync.reader.policy, [])


@pytest.mark.parametrize("resource", ["users", "groups"])
def test_throttled_out_delta_round_fails_the_read(
    emu: Emulator, sync: SourceSync, first: SyncedSlice, resource: str
) -> None:
    emu.tenant.disable_user(_scope_user(emu))  # a change the caller must not miss
    emu.faults.add(path=rf"{resource}/delta", status=429, retry_after=0, times=None)
    with pytest.raises(GraphError) as raised:
        sync.read(first.cache, first.links, full_reason=None, managed=())
    assert raised.value.status == 429
    assert "\n" not in str(raised.value)


def test_failing_delta_round_fails_a_refresh_too(
    emu: Emulator, sync: SourceSync, first: SyncedSlice
) -> None:
    emu.faults.add(path=r"users/delta", status=503, retry_after=0, times=None)
    with pytest.raises(GraphError):
        sync.read(first.cache, first.links, full_reason="--refresh", managed=())


# -- expired links ------------------------------------------------------------------------------


def test_expired_links_recover_with_a_full_read_and_no_false_changes(
    emu: Emulator, sync: SourceSync, first: SyncedSlice
) -> None:
    managed = sorted(sync.evaluate(first, ()).users)
    before = sync.evaluate(first, managed)
    emu.expire_delta_tokens()
    synced = sync.read(first.cache, first.links, full_reason=None, managed=managed)
    assert synced.full
    assert any("reading Graph in full" in n and "delta" in n for n in synced.notes)
    assert not any("warning" in n for n in synced.notes)
    assert sync.evaluate(synced, managed) == before
    # the new links continue from the full read: the next run is incremental again
    again = sync.read(synced.cache, synced.links, full_reason=None, managed=managed)
    assert not again.full and not again.changed
    assert sync.evaluate(again, managed) == before


# -- a stored slice that cannot be used ---------------------------------------------------------


def test_corrupt_cache_blob_is_unusable(first: SyncedSlice) -> None:
    name, data = first.cache.encode()
    with pytest.raises(CacheUnusable):
        decode(name, data[:-7] + bytes(7))


@pytest.mark.parametrize("damage", ["torn", "older format"])
def test_unusable_stored_slice_means_a_full_read_with_a_warning(
    tmp_path: Path, sync: SourceSync, first: SyncedSlice, damage: str
) -> None:
    backend = LocalBackend(tmp_path / "state.json", policy="test-policy", tenant="t")
    name, data = first.cache.encode()
    if damage == "torn":
        data = data[: len(data) // 2]
    else:
        document = first.cache.to_document()
        document["format"] = 0
        raw = json.dumps(document).encode()
        name, data = blob_name(raw), zlib.compress(raw)
    backend.save_blob(name, data)
    record = SourceCache(blob=name, key=first.cache.key, full_read_at="2026-01-01T00:00:00Z")
    state = State(policy="test-policy", delta_links=first.links, source_cache=record)
    stored = source_state.stored_slice(backend, state)
    assert stored is not None
    with pytest.raises(CacheUnusable, match="corrupt" if damage == "torn" else "format"):
        stored.load()
    # Nothing changed in Entra: the read does not decode the slice, the evaluation must.
    synced = sync.read(stored, dict(state.delta_links), full_reason=None, managed=())
    assert not synced.full
    snapshot = sync.evaluate(synced, ())
    assert synced.full and synced.rewrite  # read in full, and the blob is to be written again
    warning = "corrupt" if damage == "torn" else "format"
    assert any(
        n.startswith("warning: reading Graph in full: ") and warning in n for n in synced.notes
    )
    assert synced.cache.flatten() == first.cache.flatten()
    assert snapshot.users  # never an empty scope


def test_a_read_with_nothing_to_report_costs_the_two_delta_requests(
    emu: Emulator, sync: SourceSync, first: SyncedSlice
) -> None:
    managed = sorted(sync.evaluate(first, ()).users)
    before = sync.evaluate(first, managed)
    for _ in range(3):  # a cron loop of no-change runs
        emu.reset_requests()
        synced = sync.read(first.cache, first.links, full_reason=None, managed=managed)
        assert sync.evaluate(synced, managed) == before
        assert not synced.changed and not synced.full
        assert sorted(r[1] for r in graph_requests(emu)) == [
            "/v1.0/groups/delta",
            "/v1.0/users/delta",
        ]
        first = synced


def test_member_entry_for_an_object_that_no_longer_exists_is_handled(
    emu: Emulator, sync: SourceSync, first: SyncedSlice
) -> None:
    scope = emu.tenant.group_by_name(SCOPE)
    assert scope is not None
    ghost = "00000000-0000-4000-8000-00000000dead"
    outsider = next(u for u in emu.tenant.sorted_ids("users") if u not in first.cache.users)
    emu.tenant.add_member(str(scope["id"]), outsider)

    def haunt(body: Any) -> Any:
        for item in body["value"]:
            if item.get("id") == scope["id"]:
                ghosts = [{"@odata.type": "#microsoft.graph.user", "id": ghost}]
                item["members@delta"] = [*item.get("members@delta", []), *ghosts]
        return body

    rule = emu.faults.add(path=r"groups/delta", status=None, rewrite=haunt, times=1)
    synced = sync.read(first.cache, first.links, full_reason=None, managed=())
    assert rule.fired == 1
    assert ghost not in synced.cache.candidates()
    assert outsider in synced.cache.users
    assert sync.evaluate(synced, ()) == _full_snapshot(sync.reader.policy, [])
