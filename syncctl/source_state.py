"""What a run keeps of its Graph read for the next one, through the policy's state backend.

- The cached slice (``syncctl.source.cache``) and its delta links: the slice is a blob named
  by its digest, written before the state that names it; the links are in the state. It is
  decoded only when the run's delta answers have something to apply; a blob that is missing,
  corrupt or of another format then means a full read, with a warning saying why (never an
  empty scope), and the blob is written again.
- The *quiet plan*: after a plan with nothing to do, the digest of everything it depended on
  (syncctl's version, the policy file, the slice, the target's change marker, the state's
  managed ids, timers and sync digests) and that plan, in a blob. A later run whose inputs
  have the same digest, before any ``delete_after`` timer could fire, has the same plan, so
  it neither reads the target nor plans again: a no-change cron run costs its two delta
  requests and a few small reads.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from syncctl import __version__
from syncctl.model import canonical_json
from syncctl.plan.model import ManagedCounts, PolicyPlan
from syncctl.policy.model import Policy
from syncctl.source.cache import CacheUnusable, TenantCache, decode
from syncctl.source.incremental import StoredCache, SyncedSlice
from syncctl.state.backend import StateBackend
from syncctl.state.store import SourceCache, State, iso, parse_iso

QUIET_PREFIX = "plan-"
QUIET_FORMAT = 1


def stored_slice(backend: StateBackend, state: State) -> StoredCache | None:
    """The slice the state names, decoded only when a run needs it: a blob that is missing,
    corrupt, of another format or of another record raises CacheUnusable then (and the run
    reads Graph in full), never an empty scope."""
    record = state.source_cache
    if record is None:
        return None

    def load() -> TenantCache:
        data = backend.load_blob(record.blob)
        if data is None:
            raise CacheUnusable(f"the cached slice {record.blob} is missing from the state backend")
        cache = decode(record.blob, data)
        if cache.key != record.key:
            raise CacheUnusable("the cached slice does not match its state record")
        return cache

    return StoredCache(record.key, load)


def full_read_reason(policy: Policy, state: State, now: datetime, *, refresh: bool) -> str | None:
    """Why this run must read Graph in full whatever the slice (None: delta may do)."""
    if refresh:
        return "--refresh"
    record = state.source_cache
    if record is None:
        return None
    try:
        last = parse_iso(record.full_read_at)
    except ValueError:
        return "the time of the last full read is unreadable"
    every = policy.source.full_refresh_every
    if now - last >= every:
        return f"the last full read is older than source.full_refresh_every ({_duration(every)})"
    return None


def store_slice(backend: StateBackend, state: State, synced: SyncedSlice, now: datetime) -> State:
    """The state naming this run's slice and links; the slice blob is written first when
    it changed (an unchanged slice keeps its blob and its name)."""
    record = state.source_cache
    if synced.changed or synced.rewrite or record is None:
        name, data = synced.cache.encode()
        if record is None or name != record.blob or synced.rewrite:
            backend.save_blob(name, data)
    else:
        name = record.blob
    full_read_at = iso(now) if synced.full or record is None else record.full_read_at
    kept = (
        record if record is not None and record.blob == name and record.key == synced.key else None
    )
    cache_record = SourceCache(
        blob=name,
        key=synced.key,
        full_read_at=full_read_at,
        quiet_inputs=None if kept is None else kept.quiet_inputs,
        quiet_blob=None if kept is None else kept.quiet_blob,
    )
    return replace(state, source_cache=cache_record, delta_links=dict(synced.links))


# -- the quiet plan -------------------------------------------------------------------------


def quiet_inputs(policy: Policy, state: State, marker: str) -> str | None:
    """The digest of everything an empty plan of ``policy`` depended on (None: no slice)."""
    from syncctl.plan.planner import target_description

    if state.source_cache is None:
        return None
    header = {
        "syncctl": __version__,
        "policy": policy.sha256,
        # Where the plan applies: a copied workspace (same file, same state) is another target.
        "tenant": policy.tenant.id,
        "target_description": target_description(policy),
        "slice": state.source_cache.blob,
        "target": marker,
    }
    # Ids and digests are GUIDs and hex: joined by line breaks they are unambiguous, and
    # hashing them that way costs a fraction of canonical JSON of 100,000 entries.
    parts = [
        canonical_json(header),
        "\n".join(sorted(state.managed)),
        "\n".join(f"{k} {iso(v)}" for k, v in sorted(state.disabled_at.items())),
        "\n".join(f"{k} {v}" for k, v in sorted(state.synced.items())),
    ]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def quiet_plan(
    backend: StateBackend, state: State, inputs: str | None, now: datetime
) -> PolicyPlan | None:
    """The recorded empty plan when ``inputs`` are those it was made from and no timer can
    have fired since; None otherwise (plan as usual)."""
    record = state.source_cache
    if inputs is None or record is None or record.quiet_inputs != inputs:
        return None
    if record.quiet_blob is None:
        return None
    data = backend.load_blob(record.quiet_blob)
    if data is None or _digest_name(data) != record.quiet_blob:
        return None
    try:
        document = json.loads(zlib.decompress(data))
        until = document["valid_until"]
        if until is not None and now >= parse_iso(until):
            return None
        return _plan_from(document["plan"])
    except (zlib.error, ValueError, KeyError, TypeError):
        return None  # unreadable: plan as usual, which records a fresh one


def store_quiet(
    backend: StateBackend, policy: Policy, state: State, plan: PolicyPlan, inputs: str | None
) -> State:
    """Record ``plan`` as the quiet plan of ``inputs`` when it had nothing to do; otherwise
    forget any recorded one (the next plan is made in full)."""
    record = state.source_cache
    if record is None:
        return state
    if inputs is None or not plan.is_empty or plan.has_errors or plan.refused is not None:
        if record.quiet_inputs is None:
            return state
        return replace(state, source_cache=replace(record, quiet_inputs=None, quiet_blob=None))
    document = {
        "format": QUIET_FORMAT,
        "valid_until": _first_timer(policy, state),
        "plan": _plan_document(plan),
    }
    data = zlib.compress(canonical_json(document).encode("utf-8", "surrogatepass"), 1)
    name = _digest_name(data)
    if record.quiet_blob != name:
        backend.save_blob(name, data)
    return replace(state, source_cache=replace(record, quiet_inputs=inputs, quiet_blob=name))


def _first_timer(policy: Policy, state: State) -> str | None:
    """When the earliest ``delete_after`` timer fires: the quiet plan is void from then."""
    after = policy.deletion.delete_after
    if after is None or not state.disabled_at:
        return None
    return iso(min(state.disabled_at.values()) + after)


def _digest_name(data: bytes) -> str:
    return QUIET_PREFIX + hashlib.sha256(data).hexdigest()


def _plan_document(plan: PolicyPlan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "policy_sha256": plan.policy_sha256,
        "tenant": plan.tenant,
        "target": plan.target,
        "fingerprints": plan.fingerprints,
        "unmanaged": list(plan.unmanaged),
        "managed": {
            "users": plan.managed.users,
            "groups": plan.managed.groups,
            "active_user_ids": sorted(plan.managed.active_user_ids),
        },
    }


def _plan_from(document: dict[str, Any]) -> PolicyPlan:
    managed = document["managed"]
    return PolicyPlan(
        name=str(document["name"]),
        policy_sha256=str(document["policy_sha256"]),
        tenant=str(document["tenant"]),
        target=dict(document["target"]),
        fingerprints=dict(document["fingerprints"]),
        changes=(),
        unmanaged=tuple(document["unmanaged"]),
        managed=ManagedCounts(
            users=int(managed["users"]),
            groups=int(managed["groups"]),
            active_user_ids=frozenset(managed["active_user_ids"]),
        ),
    )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
