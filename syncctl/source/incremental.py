"""A policy's slice of Entra kept up to date between runs: a full read with delta links taken
before it, or the delta rounds since the last run applied to the cached slice.

Requests: a run with nothing to report costs one page of ``/groups/delta`` and one of
``/users/delta``. Changes cost their delta pages, plus ``ceil(n / 20)`` ``$batch`` requests
for the n users newly in scope that neither delta answer described, plus a full read of a
group newly nested in the slice. A full read costs what ``syncctl.source.reader`` lists, plus
the two ``$deltatoken=latest`` requests that start the links (taken *before* it, so a change
made while it runs is reported again by the next run rather than missed).

When the read is done in full instead (``full_reason``): no slice yet, a slice for another
scope or set of properties, ``--refresh``, ``source.full_refresh_every`` passed, expired
delta links (410 Gone, ``syncStateNotFound``, ``resyncRequired``), or a delta answer that may
change which groups the policy selects. A refresh that had a usable slice also runs the
delta rounds and compares: a difference delta did not report is a warning (Graph's delta
missed something), never silently taken.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from syncctl.errors import GraphError
from syncctl.model import SourceSnapshot
from syncctl.policy.model import Policy
from syncctl.source.cache import CacheUnusable, TenantCache
from syncctl.source.delta import DeltaApplier, DeltaResult
from syncctl.source.graph import Request
from syncctl.source.progress import Progress
from syncctl.source.reader import GraphReader, graph_session
from syncctl.source.removals import NOT_FOUND

USERS = "users"
GROUPS = "groups"
EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired"})
SHOWN_DIFFERENCES = 3


class DeltaExpired(Exception):
    """Graph no longer continues from the stored delta links: read in full."""


@dataclass(frozen=True, slots=True)
class StoredCache:
    """A slice kept by an earlier run, decoded only when needed: a run whose delta answers
    are empty never pays for loading 100,000 users. ``load`` raises CacheUnusable."""

    key: str
    load: Callable[[], TenantCache]


Previous = TenantCache | StoredCache


class SyncedSlice:
    """The slice after this run's read, and the delta links that continue from it."""

    def __init__(
        self,
        cache: Previous,
        links: dict[str, str],
        full: bool,
        changed: bool,
        notes: list[str] | None = None,
    ) -> None:
        self._cache = cache
        self.links = links
        self.full = full  # read in full (not from delta answers)
        self.changed = changed  # differs from the slice the run started with
        self.rewrite = False  # the stored blob was unusable: write it even under its name
        self.notes = notes if notes is not None else []  # why a full read happened, warnings

    def replace_with(self, other: SyncedSlice) -> None:
        """Become ``other`` (a full read that replaced an unusable stored slice)."""
        self._cache, self.links = other._cache, other.links
        self.full, self.changed, self.rewrite = other.full, other.changed, other.rewrite
        self.notes.extend(other.notes)

    @property
    def key(self) -> str:
        """What the slice was read for (known without decoding a stored one)."""
        return self._cache.key

    @property
    def cache(self) -> TenantCache:
        """The slice (decoded now if it was not yet; CacheUnusable when it cannot be)."""
        if isinstance(self._cache, StoredCache):
            self._cache = self._cache.load()
        return self._cache


class SourceSync:
    """One run's Graph session for a policy: read (in full or by delta), then evaluate."""

    def __init__(self, reader: GraphReader) -> None:
        self.reader = reader
        self.graph = reader.graph

    def read(
        self,
        previous: Previous | None,
        links: Mapping[str, str],
        *,
        full_reason: str | None,
        managed: Collection[str],
    ) -> SyncedSlice:
        notes: list[str] = []
        usable = previous is not None and previous.key == self.reader.cache_key()
        if previous is not None and not usable:
            full_reason = full_reason or "the policy's scope or selected properties changed"
        if previous is None or not {USERS, GROUPS} <= links.keys():
            full_reason = full_reason or "no cached slice yet"
        if full_reason is None:
            assert previous is not None
            try:
                rounds = self._rounds(links)
                if not any(items for items, _ in rounds):
                    # Nothing changed in Entra: the slice stays as stored, not even decoded.
                    new_links = {GROUPS: rounds[0][1], USERS: rounds[1][1]}
                    return SyncedSlice(previous, new_links, False, False, notes)
                cache = _decoded(previous)
                result, new_links = self._incremental(cache, rounds, managed)
            except DeltaExpired as expired:
                notes.append(f"reading Graph in full: {expired}")
            except CacheUnusable as unusable:
                return self._repair(str(unusable), managed, notes)
            else:
                if result.restart is None:
                    return SyncedSlice(cache, new_links, False, result.changed, notes)
                notes.append(f"reading Graph in full: {result.restart}")
            return self._full(managed, notes)
        notes.append(f"reading Graph in full: {full_reason}")
        if not usable:
            return self._full(managed, notes)
        assert previous is not None
        try:
            return self._refresh(_decoded(previous), links, managed, notes)
        except CacheUnusable as unusable:
            return self._repair(str(unusable), managed, [])

    def settle(self, synced: SyncedSlice, managed: Collection[str]) -> None:
        """Make sure ``synced`` holds a usable slice: one stored and not decoded yet that
        turns out unusable is replaced by a full read (with a note), never used half."""
        try:
            synced.cache  # noqa: B018 (decodes it)
        except CacheUnusable as unusable:
            synced.replace_with(self._repair(str(unusable), managed, []))

    def evaluate(self, synced: SyncedSlice, managed_ids: Collection[str]) -> SourceSnapshot:
        """The planner's snapshot; ids the slice knows nothing about are asked of Graph, and
        the answers kept in the slice (so the next run need not ask again)."""
        self.settle(synced, managed_ids)
        before = dict(synced.cache.outside)
        snapshot = self.reader.evaluate(synced.cache, managed_ids)
        if synced.cache.outside != before:
            synced.changed = True
        return snapshot

    # -- the two ways to read ------------------------------------------------------------

    def _full(self, managed: Collection[str], notes: list[str]) -> SyncedSlice:
        links = self._start_links()
        cache = self.reader.read_cache(managed)
        return SyncedSlice(cache, links, True, True, notes)

    def _repair(self, why: str, managed: Collection[str], notes: list[str]) -> SyncedSlice:
        notes.append(f"warning: reading Graph in full: {why}")
        synced = self._full(managed, notes)
        synced.rewrite = True
        return synced

    def _incremental(
        self,
        cache: TenantCache,
        rounds: list[tuple[list[dict[str, Any]], str]],
        managed: Collection[str],
    ) -> tuple[DeltaResult, dict[str, str]]:
        (group_items, group_link), (user_items, user_link) = rounds
        applier = DeltaApplier(
            cache,
            self.reader.policy.source,
            user_select=self.reader.user_select,
            group_select=self.reader.group_select,
            managed=managed,
        )
        applier.apply_groups(group_items)
        applier.apply_users(user_items)
        result = applier.result
        if result.restart is None:
            self._read_new_groups(applier)
            self._fill_users(applier)
            applier.settle()
        return result, {GROUPS: group_link, USERS: user_link}

    def _refresh(
        self,
        previous: TenantCache,
        links: Mapping[str, str],
        managed: Collection[str],
        notes: list[str],
    ) -> SyncedSlice:
        """A full read that also checks what delta said: the delta rounds first (their links
        are kept, as they were taken before the full read), the full read, then one more
        round only to learn which objects changed meanwhile (those are not compared)."""
        try:
            result, new_links = self._incremental(previous, self._rounds(links), managed)
        except DeltaExpired as expired:
            notes.append(f"delta links expired ({expired})")
            return self._full(managed, notes)
        if result.restart is not None:
            return self._full(managed, notes)
        cache = self.reader.read_cache(managed)
        (group_items, _), (user_items, _) = self._rounds(new_links)
        meanwhile = {str(i["id"]) for i in [*group_items, *user_items]}
        for item in group_items:
            members = item.get("members@delta")
            if isinstance(members, list):
                meanwhile.update(str(m.get("id")) for m in members if isinstance(m, dict))
        missed = differences(previous, cache, ignore=meanwhile)
        if missed:
            shown = ", ".join(missed[:SHOWN_DIFFERENCES])
            more = f" and {len(missed) - SHOWN_DIFFERENCES} more" if len(missed) > 3 else ""
            notes.append(
                f"warning: the full read found {len(missed)} difference(s) Graph's delta "
                f"answers had not reported ({shown}{more}); the full read is used"
            )
        return SyncedSlice(cache, new_links, True, True, notes)

    # -- requests --------------------------------------------------------------------------

    def _start_links(self) -> dict[str, str]:
        """Delta links that report changes from now on (``$deltatoken=latest``: no items)."""
        links: dict[str, str] = {}
        for resource, select in self._delta_selects().items():
            params = {"$select": ",".join(select), "$deltatoken": "latest"}
            url = self.graph.delta_url(Request(f"/{resource}/delta", params).relative_url())
            _, links[resource] = self.graph.read_round(url, f"/{resource}/delta")
        return links

    def _delta_selects(self) -> dict[str, list[str]]:
        return {
            GROUPS: sorted({*self.reader.group_select, "members"}),
            USERS: sorted(self.reader.user_select),
        }

    def _rounds(self, links: Mapping[str, str]) -> list[tuple[list[dict[str, Any]], str]]:
        """Both delta rounds, concurrently; DeltaExpired when Graph restarts the sync."""

        def one(resource: str) -> tuple[list[dict[str, Any]], str]:
            try:
                return self.graph.read_round(links[resource], f"/{resource}/delta")
            except GraphError as exc:
                if exc.status == 410 or (exc.code or "").casefold() in EXPIRED_CODES:
                    raise DeltaExpired(f"Graph ended the {resource} delta sync ({exc})") from None
                raise

        return self.graph.map_bounded(one, [GROUPS, USERS])

    def _read_new_groups(self, applier: DeltaApplier) -> None:
        cache = applier.cache
        if not applier.result.new_groups:
            return
        under_scope = cache.reachable(cache.scope)
        scoped = {g for g in applier.result.new_groups if _nested_in(cache, g, under_scope)}
        self.reader.read_groups(cache, sorted(scoped), with_users=True)
        self.reader.read_groups(cache, sorted(applier.result.new_groups - scoped), with_users=False)

    def _fill_users(self, applier: DeltaApplier) -> None:
        """Attributes of users newly in scope: from the users delta answer when it described
        them, otherwise read (20 to a $batch). A user Graph no longer has is in no group."""
        missing = applier.missing_users()
        latest = applier.result.latest
        for user_id in sorted(missing & latest.keys()):
            applier.add_user(user_id, latest[user_id])
        rest = sorted(missing - latest.keys())
        if not rest:
            return
        select = ",".join(self.reader.user_select)
        requests = [Request(f"/users/{u}", {"$select": select}) for u in rest]
        for user_id, request, answer in zip(
            rest, requests, self.graph.get_each(requests), strict=True
        ):
            if answer.status == 200 and answer.body is not None:
                if answer.body.get("id") != user_id:
                    raise GraphError(
                        f"answered with object {answer.body.get('id')!r}, not the one asked for",
                        request=request.label(),
                    )
                applier.add_user(user_id, self.reader.checked_user(answer.body, request))
            elif answer.status == 404 and answer.error and answer.error.code == NOT_FOUND:
                applier.forget_user(user_id)
            else:
                raise answer.error or GraphError(
                    "no usable answer", request=request.label(), status=answer.status
                )


def _nested_in(cache: TenantCache, group_id: str, parents: Collection[str]) -> bool:
    return any(group_id in cache.groups[p].groups for p in parents if p in cache.groups)


def differences(before: TenantCache, after: TenantCache, *, ignore: Collection[str]) -> list[str]:
    """Objects whose flattened slice differs (``user ID`` / ``group ID``), sorted."""
    old, new = before.flatten(), after.flatten()
    found: list[str] = []
    for user_id in sorted(old.users.keys() | new.users.keys()):
        if user_id in ignore:
            continue
        a, b = old.users.get(user_id), new.users.get(user_id)
        if (a is None) != (b is None) or (a and b and a.attributes != b.attributes):
            found.append(f"user {user_id}")
    for group_id in sorted(old.groups.keys() | new.groups.keys()):
        if group_id in ignore:
            continue
        g, h = old.groups.get(group_id), new.groups.get(group_id)
        if g is None or h is None:
            found.append(f"group {group_id}")
            continue
        members_differ = set(g.members) ^ set(h.members)
        if g.attributes != h.attributes or (members_differ - set(ignore)):
            found.append(f"group {group_id}")
    return found


def _decoded(previous: Previous) -> TenantCache:
    return previous if isinstance(previous, TenantCache) else previous.load()


@contextmanager
def source_sync(policy: Policy, progress: Progress | None = None) -> Iterator[SourceSync]:
    from syncctl.source import naming_policy

    with naming_policy(policy), graph_session(policy.tenant, progress) as graph:
        yield SourceSync(GraphReader(policy, graph))
