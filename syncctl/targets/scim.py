"""The SCIM 2.0 target (RFC 7643/7644): ``target: {type: scim, url, token | oauth}``.

Ownership lives in ``externalId``: an object is managed when its externalId is one of the
Entra ids the state says this policy manages (the applier records them before it creates or
adopts, so a crash never leaves an object syncctl cannot recognise). Everything else is listed
as unmanaged and never written.

The instance keeps the Entra id -> SCIM id maps and group member sets it learned from
``read`` and from its own creates, so membership changes (which name Entra ids) resolve to
SCIM ids without extra requests, and idempotent re-runs skip members already in place.

Writes adapt to what ``/ServiceProviderConfig`` claims and to what the server actually does:
PATCH (PUT with the full resource when PATCH is unsupported or answers 501), If-Match when
ETags are offered, member removal as ``members[value eq "id"]`` with the value-array form as a
fallback. See docs/scim.md for every server deviation this tolerates.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from syncctl.errors import TargetError, TransientTargetError
from syncctl.model import ObjectKind, TargetObject, TargetSnapshot
from syncctl.plan.model import Action, AttributeChange, Change, ChangeKind
from syncctl.policy.model import Policy, ScimTarget
from syncctl.scimpath import ENTERPRISE_USER, from_resource, patch_path, to_resource
from syncctl.targets import scim_filter
from syncctl.targets.base import Capabilities, Outcome, OutcomeStatus
from syncctl.targets.scim_bulk import chunk_operations
from syncctl.targets.scim_discovery import ServiceProvider, discover
from syncctl.targets.scim_http import ConnectionLost, ScimHttp
from syncctl.targets.scim_resources import (
    error_detail,
    last_segment,
    matches,
    merge_elements,
    remove_path,
    resource_version,
)

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_CHUNK = 100  # operations per /Bulk request (fewer when the server's maxOperations is lower)
PAGE_SIZE = 200  # listing costs ~1.3 ms per resource on scim2-server; 100-200 keeps pages quick
MEMBER_CHUNK = 100  # members per PATCH request
CREATE_ATTEMPTS = 3  # POSTs per create when the connection drops and nothing was created
DEFAULT_PARALLELISM = 8  # connection pool size; the applier decides how many threads call us


@dataclass(frozen=True, slots=True)
class _Kind:
    kind: ObjectKind
    key: str  # userName / displayName


_USER = _Kind(ObjectKind.USER, "userName")
_GROUP = _Kind(ObjectKind.GROUP, "displayName")


@dataclass(frozen=True, slots=True)
class _BulkItem:
    index: int  # position in the apply() batch
    change: Change
    kind: _Kind
    op: dict[str, Any]


class ScimDirectory:
    """A SCIM 2.0 service provider as a syncctl target."""

    def __init__(
        self,
        policy: Policy,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        bulk: bool | None = None,
    ) -> None:
        """``bulk``: None uses /Bulk for creates when the server offers it; False never."""
        if not isinstance(policy.target, ScimTarget):
            raise TargetError(f"policy {policy.name}: target is not of type scim")
        self._policy = policy
        self._http = ScimHttp(policy.target, max_connections=max(1, parallelism))
        self._user_paths = tuple(m.target for m in policy.mappings.user.attributes)
        self._group_paths = tuple(m.target for m in policy.mappings.group.attributes)
        self._lock = threading.Lock()
        self._sp: ServiceProvider | None = None
        self._read_done = False
        self._managed: set[str] = set()  # Entra ids this policy manages (from read + writes)
        self._ids: dict[ObjectKind, dict[str, str]] = {ObjectKind.USER: {}, ObjectKind.GROUP: {}}
        self._owned: dict[ObjectKind, set[str]] = {ObjectKind.USER: set(), ObjectKind.GROUP: set()}
        self._members: dict[str, set[str]] = defaultdict(set)  # group SCIM id -> user SCIM ids
        self._seen: dict[ObjectKind, list[TargetObject]] = {}  # as of the last read
        self._listed: dict[ObjectKind, set[str]] = {}  # their target ids
        self._remove_style: str | None = None  # "filter" | "value_array" once one has worked
        self._put_only = False  # PATCH claimed or found unsupported
        self._bulk = bulk

    # -- discovery ---------------------------------------------------------------------------

    @property
    def service_provider(self) -> ServiceProvider:
        with self._lock:
            if self._sp is None:
                self._sp = discover(self._http)
                self._put_only = not self._sp.patch
            return self._sp

    def capabilities(self) -> Capabilities:
        sp = self.service_provider
        return Capabilities(max_batch=100, parallel_safe=True, versions=sp.etag)

    def check(self) -> None:
        """``validate --online``: the endpoint speaks SCIM and accepts the token.

        Discovery documents may be open to anyone (RFC 7643 §5), so the token is proven with
        a list request that matches nothing (as Entra's "Test Connection" does)."""
        sp = self.service_provider
        params = {"count": "1", "attributes": "id"}
        if sp.filter:
            params["filter"] = scim_filter.eq("userName", "syncctl-check-0000")
        where = f"GET {self._http.url(sp.users_endpoint)}"
        response = self._http.request("GET", sp.users_endpoint, params=params)
        if response.status_code != 200:
            raise TargetError(f"{where}: {error_detail(response)}")

    def _endpoint(self, kind: ObjectKind) -> str:
        sp = self.service_provider
        return sp.users_endpoint if kind is ObjectKind.USER else sp.groups_endpoint

    # -- reading -----------------------------------------------------------------------------

    def _list(self, endpoint: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Every resource of a list, page by page; a short or inconsistent listing is an error,
        never a smaller directory."""
        sp = self.service_provider
        page = PAGE_SIZE if not sp.filter_max_results else min(PAGE_SIZE, sp.filter_max_results)
        where = f"GET {self._http.url(endpoint)}"
        start, seen, total = 1, set[str](), None
        while True:
            query = {**params, "startIndex": str(start), "count": str(page)}
            response = self._http.request("GET", endpoint, params=query)
            if response.status_code != 200:
                raise TargetError(f"{where} (startIndex {start}): {error_detail(response)}")
            try:
                body = response.json()
            except ValueError:
                raise TargetError(f"{where} (startIndex {start}): answer is not JSON") from None
            if not isinstance(body, dict):
                raise TargetError(f"{where} (startIndex {start}): not a ListResponse")
            resources = body.get("Resources") or []
            if isinstance(body.get("totalResults"), int):
                total = body["totalResults"]
            if not isinstance(resources, list):
                raise TargetError(f"{where} (startIndex {start}): Resources is not a list")
            for resource in resources:
                rid = resource.get("id") if isinstance(resource, dict) else None
                if not isinstance(rid, str) or not rid:
                    raise TargetError(f"{where} (startIndex {start}): a resource has no id")
                if rid in seen:
                    # A server that ignores startIndex would otherwise loop for ever.
                    raise TargetError(
                        f"{where} (startIndex {start}): resource {rid} listed twice; "
                        "the server does not page consistently"
                    )
                seen.add(rid)
                yield resource
            start += len(resources)
            if not resources or (total is not None and start > total):
                break
            if total is None and len(resources) < page:
                break
        if total is not None and len(seen) < total:
            raise TargetError(
                f"{where}: listed {len(seen)} of totalResults {total}; the read is incomplete"
            )

    def _user_attributes_param(self) -> str:
        names = {"id", "externalId", "userName", "active", "meta"}
        for path in self._user_paths:
            short = patch_path(path).split("[", 1)[0]
            if short.startswith(ENTERPRISE_USER + ":"):
                names.add(ENTERPRISE_USER + ":" + short[len(ENTERPRISE_USER) + 1 :].split(".")[0])
            else:
                names.add(short.split(".", 1)[0])
        return ",".join(sorted(names))

    def read(self, owner: str, known_ids: Collection[str]) -> TargetSnapshot:
        known = set(known_ids)
        user_objects: list[TargetObject] = []
        group_objects: list[TargetObject] = []
        user_ids: dict[str, str] = {}
        group_ids: dict[str, str] = {}
        members: dict[str, set[str]] = {}
        users = self._list(
            self._endpoint(ObjectKind.USER), {"attributes": self._user_attributes_param()}
        )
        for resource in users:
            obj = self._object(_USER, resource, owner, known, self._user_paths)
            user_objects.append(obj)
            if obj.managed_by is not None and obj.external_id is not None:
                user_ids[obj.external_id] = obj.target_id
        existing_users = {u.target_id for u in user_objects}
        groups = self._list(self._endpoint(ObjectKind.GROUP), {})
        for resource in groups:
            obj = self._object(_GROUP, resource, owner, known, self._group_paths)
            group_objects.append(obj)
            if obj.managed_by is not None and obj.external_id is not None:
                group_ids[obj.external_id] = obj.target_id
            listed = resource.get("members") or []
            # scim2-server keeps members of deleted users; only real users count.
            members[obj.target_id] = {
                m["value"]
                for m in listed
                if isinstance(m, dict)
                and isinstance(m.get("value"), str)
                and m["value"] in existing_users
            }
        with self._lock:
            self._managed = set(known)
            self._ids = {ObjectKind.USER: user_ids, ObjectKind.GROUP: group_ids}
            self._owned = {
                ObjectKind.USER: set(user_ids.values()),
                ObjectKind.GROUP: set(group_ids.values()),
            }
            self._members = defaultdict(set, members)
            self._seen = {ObjectKind.USER: user_objects, ObjectKind.GROUP: group_objects}
            self._listed = {k: {o.target_id for o in objs} for k, objs in self._seen.items()}
            self._read_done = True
        return TargetSnapshot(
            users=tuple(sorted(user_objects, key=lambda o: (o.key, o.target_id))),
            groups=tuple(sorted(group_objects, key=lambda o: (o.key, o.target_id))),
            members={gid: frozenset(ids) for gid, ids in sorted(members.items())},
        )

    def _object(
        self,
        kind: _Kind,
        resource: dict[str, Any],
        owner: str,
        known: set[str],
        paths: Sequence[str],
    ) -> TargetObject:
        external = resource.get("externalId")
        external_id = external if isinstance(external, str) and external else None
        active = resource.get("active")
        return TargetObject(
            kind=kind.kind,
            target_id=str(resource["id"]),
            external_id=external_id,
            key=str(resource.get(kind.key) or ""),
            active=True if kind.kind is ObjectKind.GROUP else active is not False,
            attributes=from_resource(resource, paths),
            managed_by=owner if external_id is not None and external_id in known else None,
            version=resource_version(resource),
        )

    # -- writing -----------------------------------------------------------------------------

    def apply(self, changes: Sequence[Change], owner: str) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        memberships: dict[tuple[str, Action], list[tuple[int, Change]]] = defaultdict(list)
        creates: list[tuple[int, Change]] = []
        for index, change in enumerate(changes):
            if change.kind is ChangeKind.MEMBERSHIP:
                memberships[(change.group or "", change.action)].append((index, change))
            elif self._bulk_eligible(change):
                creates.append((index, change))
            else:
                outcomes[index] = self._apply_object(change)
        if len(creates) >= 2:
            outcomes.update(self._bulk_create(creates))
        else:
            outcomes.update((index, self._apply_object(change)) for index, change in creates)
        for (group, action), items in sorted(memberships.items()):
            for index, outcome in self._apply_members(group, action, items):
                outcomes[index] = outcome
        return [outcomes[i] for i in range(len(changes))]

    # -- Bulk (RFC 7644 §3.7) ------------------------------------------------------------------

    def _bulk_eligible(self, change: Change) -> bool:
        """Creates go through /Bulk when the server offers it and read() has shown they do
        not exist yet (a crash re-run finds its objects in the maps and updates them)."""
        if change.action is not Action.CREATE or change.source_id is None:
            return False
        if self._bulk is False or not self._read_done or not self.service_provider.bulk:
            return False
        kind = ObjectKind.USER if change.kind is ChangeKind.USER else ObjectKind.GROUP
        with self._lock:
            return change.source_id not in self._ids[kind]

    def _bulk_create(self, items: list[tuple[int, Change]]) -> dict[int, Outcome]:
        sp = self.service_provider
        prepared: list[_BulkItem] = []
        for index, change in items:
            kind = _USER if change.kind is ChangeKind.USER else _GROUP
            assert change.source_id is not None
            with self._lock:
                self._managed.add(change.source_id)
            op = {
                "method": "POST",
                "path": self._endpoint(kind.kind),
                "bulkId": f"c{index}",
                "data": self._create_body(kind, change, change.source_id),
            }
            prepared.append(_BulkItem(index, change, kind, op))
        sizes = [len(json.dumps(item.op, separators=(",", ":")).encode()) for item in prepared]
        chunks = chunk_operations(
            prepared,
            sizes,
            max_operations=min(BULK_CHUNK, sp.bulk_max_operations or BULK_CHUNK),
            max_payload=sp.bulk_max_payload or 1_048_576,
        )
        outcomes: dict[int, Outcome] = {}
        for chunk in chunks:
            outcomes.update(self._send_bulk(chunk))
        return outcomes

    def _send_bulk(self, chunk: list[_BulkItem]) -> dict[int, Outcome]:
        where = f"POST {self._http.url('/Bulk')}"
        body = {"schemas": [BULK_REQUEST], "Operations": [item.op for item in chunk]}
        try:
            response = self._http.request("POST", "/Bulk", json=body, idempotent=False)
        except ConnectionLost:
            return self._one_by_one(chunk, check_existing=True)
        if response.status_code != 200:
            if response.status_code in (404, 405, 501):
                self._bulk = False  # claimed but not there: stop trying for this run
            return self._one_by_one(chunk, check_existing=response.status_code >= 500)
        try:
            results = response.json().get("Operations") or []
        except (ValueError, AttributeError):
            results = []
        by_id = {r.get("bulkId"): r for r in results if isinstance(r, dict)}
        outcomes: dict[int, Outcome] = {}
        unanswered: list[_BulkItem] = []
        for item in chunk:
            result = by_id.get(item.op["bulkId"])
            status = str(result.get("status", "")) if result else ""
            answer = (result or {}).get("response") or {}
            target_id = last_segment(str((result or {}).get("location") or "")) or answer.get("id")
            assert item.change.source_id is not None
            if status in ("200", "201") and isinstance(target_id, str) and target_id:
                self._remember(item.kind, item.change.source_id, target_id)
                outcomes[item.index] = Outcome(
                    item.change.address, OutcomeStatus.APPLIED, target_id=target_id
                )
            elif status == "409":
                # Conflict handling (adopt or explain) lives in the single-create path.
                outcomes[item.index] = self._create(item.kind, item.change)
            elif status and status not in ("429", "503"):
                detail = str(answer.get("detail") or "").splitlines()[:1]
                message = f"{where} operation {item.op['bulkId']}: status {status}"
                outcomes[item.index] = Outcome(
                    item.change.address,
                    OutcomeStatus.FAILED,
                    message=": ".join([message, *detail]),
                )
            else:
                unanswered.append(item)  # no result, or throttled: retried one by one
        outcomes.update(self._one_by_one(unanswered, check_existing=True))
        return outcomes

    def _one_by_one(self, chunk: list[_BulkItem], *, check_existing: bool) -> dict[int, Outcome]:
        """Bulk did not (fully) answer: create singly, first looking for what it may have
        created already."""
        outcomes: dict[int, Outcome] = {}
        for item in chunk:
            assert item.change.source_id is not None
            found = (
                self._find_by_external_id(item.kind, item.change.source_id)
                if check_existing
                else None
            )
            if found is not None:
                self._remember(item.kind, item.change.source_id, found)
                outcomes[item.index] = Outcome(
                    item.change.address, OutcomeStatus.APPLIED, target_id=found
                )
            else:
                outcomes[item.index] = self._create(item.kind, item.change)
        return outcomes

    def _apply_object(self, change: Change) -> Outcome:
        kind = _USER if change.kind is ChangeKind.USER else _GROUP
        if change.action is Action.CREATE:
            return self._create(kind, change)
        if change.action is Action.ADOPT:
            return self._adopt(kind, change)
        if change.target_id is None:
            return Outcome(change.address, OutcomeStatus.FAILED, message="no target id to act on")
        refusal = self._not_owned(kind, change.target_id, change.source_id)
        if refusal is not None:
            return Outcome(change.address, OutcomeStatus.FAILED, message=refusal)
        if change.action is Action.DELETE:
            return self._delete(kind, change)
        extra: list[dict[str, Any]] = []
        if change.action in (Action.DISABLE, Action.ENABLE):
            active = change.action is Action.ENABLE
            extra.append({"op": "replace", "path": "active", "value": active})
        elif change.action is not Action.UPDATE:
            return Outcome(change.address, OutcomeStatus.FAILED, message=f"{change.action}?")
        return self._modify(kind, change, change.target_id, change.version, extra)

    def _not_owned(self, kind: _Kind, target_id: str, source_id: str | None) -> str | None:
        """Why this object must not be written, or None when this policy manages it.

        After read() the managed set is known (externalId in the state's ids, plus this
        run's creates and adoptions). Without a read, the object's externalId is fetched and
        must be the Entra id the change is about."""
        with self._lock:
            if self._read_done:
                listed = target_id in self._listed.get(kind.kind, ())
                if target_id in self._owned[kind.kind] or not listed:
                    return None  # ours, or already gone (the write then reports 404)
                return f"{kind.kind.value} {target_id} is not managed by this policy; not touched"
        response = self._http.request("GET", f"{self._endpoint(kind.kind)}/{target_id}")
        if response.status_code == 404:
            return None  # gone: the write reports it (delete: already gone)
        if response.status_code != 200:
            return f"GET {kind.kind.value} {target_id}: {error_detail(response)}"
        external = response.json().get("externalId")
        if source_id is not None and external == source_id:
            return None
        return f"{kind.kind.value} {target_id} has externalId {external!r}, not {source_id!r}"

    def _flat(self, change: Change) -> dict[str, Any]:
        return {a.path: a.after for a in change.attributes}

    def _create(self, kind: _Kind, change: Change) -> Outcome:
        source_id = change.source_id
        if source_id is None:
            return Outcome(change.address, OutcomeStatus.FAILED, message="create without source id")
        with self._lock:
            self._managed.add(source_id)
            existing = self._ids[kind.kind].get(source_id)
        if existing is None and not self._read_done:
            existing = self._find_by_external_id(kind, source_id)
        if existing is not None:
            # A re-run after a crash: the object is already there; bring it up to date.
            return self._converge(kind, change, existing, [])
        body = self._create_body(kind, change, source_id)
        endpoint = self._endpoint(kind.kind)
        where = f"POST {self._http.url(endpoint)}"
        for _attempt in range(CREATE_ATTEMPTS):
            try:
                response = self._http.request("POST", endpoint, json=body, idempotent=False)
            except ConnectionLost:
                # The server may have created it before the connection dropped.
                found = self._find_by_external_id(kind, source_id)
                if found is not None:
                    self._remember(kind, source_id, found)
                    return Outcome(change.address, OutcomeStatus.APPLIED, target_id=found)
                continue
            if response.status_code in (200, 201):
                target_id = self._created_id(response)
                if target_id is None:
                    return Outcome(
                        change.address,
                        OutcomeStatus.FAILED,
                        message=f"{where}: created, but the answer names no id",
                    )
                self._remember(kind, source_id, target_id)
                return Outcome(change.address, OutcomeStatus.APPLIED, target_id=target_id)
            if response.status_code == 409:
                return self._on_conflict(kind, change, source_id, where, response)
            return Outcome(
                change.address, OutcomeStatus.FAILED, message=f"{where}: {error_detail(response)}"
            )
        raise TransientTargetError(f"{where}: connection failed {CREATE_ATTEMPTS} times")

    def _create_body(self, kind: _Kind, change: Change, source_id: str) -> dict[str, Any]:
        body = to_resource(self._flat(change), kind.kind)
        body["externalId"] = source_id
        if kind.kind is ObjectKind.USER:
            body["active"] = True
        return body

    def _created_id(self, response: httpx.Response) -> str | None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
            return str(body["id"])
        return last_segment(response.headers.get("Location", ""))

    def _remember(self, kind: _Kind, source_id: str, target_id: str) -> None:
        with self._lock:
            self._ids[kind.kind][source_id] = target_id
            self._owned[kind.kind].add(target_id)
            if kind.kind is ObjectKind.GROUP:
                self._members.setdefault(target_id, set())

    def _search(self, kind: _Kind, filter_text: str) -> list[dict[str, Any]]:
        endpoint = self._endpoint(kind.kind)
        params = {"filter": filter_text, "attributes": f"id,externalId,{kind.key}"}
        response = self._http.request("GET", endpoint, params=params)
        if response.status_code != 200:
            raise TargetError(
                f"GET {self._http.url(endpoint)} filter {filter_text}: {error_detail(response)}"
            )
        resources = response.json().get("Resources") or []
        return [r for r in resources if isinstance(r, dict) and isinstance(r.get("id"), str)]

    def _find_by_external_id(self, kind: _Kind, source_id: str) -> str | None:
        if not self.service_provider.filter:
            return None
        for resource in self._search(kind, scim_filter.eq("externalId", source_id)):
            if resource.get("externalId") == source_id:
                return str(resource["id"])
        return None

    def _on_conflict(
        self, kind: _Kind, change: Change, source_id: str, where: str, response: httpx.Response
    ) -> Outcome:
        ours = self._find_by_external_id(kind, source_id)
        if ours is not None:
            self._remember(kind, source_id, ours)
            return self._converge(kind, change, ours, [])
        match = (
            self._policy.mappings.user.match
            if kind.kind is ObjectKind.USER
            else self._policy.mappings.group.match
        )
        flat = self._flat(change)
        if not match or not all(isinstance(flat.get(a), str) for a in match):
            return Outcome(
                change.address,
                OutcomeStatus.FAILED,
                message=(
                    f"{where}: {error_detail(response)}: an object with this "
                    f"{kind.key} already exists and is not managed by syncctl "
                    f"(set mappings.{kind.kind.value}.match to adopt it)"
                ),
            )
        with self._lock:
            managed = set(self._managed)
        wanted = {a: flat[a] for a in match}
        if self.service_provider.filter:
            candidates = self._search(kind, scim_filter.all_eq(wanted))
            free = [str(c["id"]) for c in candidates if c.get("externalId") not in managed]
        else:
            # The server says it cannot filter: match against what read() listed.
            free = [
                o.target_id
                for o in self._seen.get(kind.kind, [])
                if o.external_id not in managed and matches(o, kind.key, wanted)
            ]
        if len(free) != 1:
            return Outcome(
                change.address,
                OutcomeStatus.FAILED,
                message=(
                    f"{where}: {error_detail(response)}: match on {', '.join(match)} found "
                    f"{len(free)} unmanaged objects (need exactly one to adopt)"
                ),
            )
        target_id = free[0]
        extra = [{"op": "replace", "path": "externalId", "value": source_id}]
        outcome = self._converge(kind, change, target_id, extra)
        if outcome.status is OutcomeStatus.APPLIED:
            self._remember(kind, source_id, target_id)
        return outcome

    def _adopt(self, kind: _Kind, change: Change) -> Outcome:
        if change.target_id is None or change.source_id is None:
            return Outcome(change.address, OutcomeStatus.FAILED, message="adopt needs both ids")
        with self._lock:
            self._managed.add(change.source_id)
        extra: list[dict[str, Any]] = [
            {"op": "replace", "path": "externalId", "value": change.source_id}
        ]
        if kind.kind is ObjectKind.USER:
            extra.append({"op": "replace", "path": "active", "value": True})
        outcome = self._modify(kind, change, change.target_id, change.version, extra, created=True)
        if outcome.status is OutcomeStatus.APPLIED:
            self._remember(kind, change.source_id, change.target_id)
        return outcome

    def _converge(
        self, kind: _Kind, change: Change, target_id: str, extra: list[dict[str, Any]]
    ) -> Outcome:
        """Bring an object that already exists (crash re-run, 409) to what a create wanted:
        read it and PATCH only what differs (a blind ``add`` could duplicate elements)."""
        path = f"{self._endpoint(kind.kind)}/{target_id}"
        response = self._http.request("GET", path)
        if response.status_code != 200:
            return self._failure(change, f"GET {self._http.url(path)}", response)
        resource = response.json()
        current = from_resource(resource, [a.path for a in change.attributes])
        differing = tuple(
            AttributeChange(a.path, current.get(a.path), a.after)
            for a in change.attributes
            if current.get(a.path) != a.after
        )
        ops = list(extra)
        if kind.kind is ObjectKind.USER and resource.get("active") is False:
            ops.append({"op": "replace", "path": "active", "value": True})
        version = resource_version(resource, response)
        fixed = replace(change, attributes=differing)
        return self._modify(kind, fixed, target_id, version, ops, created=True)

    def _attribute_ops(self, kind: _Kind, change: Change) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = []
        for attribute in change.attributes:
            if attribute.after is None:
                ops.append({"op": "remove", "path": patch_path(attribute.path)})
            elif attribute.before is None and "[" in attribute.path:
                # A filtered path needs an element to exist; add it as a whole (RFC 7644
                # §3.5.2.1 "add" without a path merges into the resource).
                value = to_resource({attribute.path: attribute.after}, kind.kind)
                value.pop("schemas", None)
                ops.append({"op": "add", "value": value})
            else:
                ops.append(
                    {"op": "replace", "path": patch_path(attribute.path), "value": attribute.after}
                )
        return ops

    def _modify(
        self,
        kind: _Kind,
        change: Change,
        target_id: str,
        version: str | None,
        extra: list[dict[str, Any]],
        *,
        created: bool = False,
    ) -> Outcome:
        """PATCH the changed attributes (PUT of the whole resource where PATCH is missing)."""
        ops = [*extra, *self._attribute_ops(kind, change)]
        target = target_id if created else None
        if not ops:
            return Outcome(change.address, OutcomeStatus.UNCHANGED, target_id=target)
        path = f"{self._endpoint(kind.kind)}/{target_id}"
        where_patch = f"PATCH {self._http.url(path)}"
        headers = self._if_match(version)
        if not self._put_only:
            body = {"schemas": [PATCH_OP], "Operations": ops}
            response = self._http.request("PATCH", path, json=body, headers=headers)
            if response.status_code in (200, 204):
                return Outcome(change.address, OutcomeStatus.APPLIED, target_id=target)
            if response.status_code != 501:
                return self._failure(change, where_patch, response)
            # PATCH is claimed but this form is not implemented: PUT this one change (other
            # PATCH forms may still work, so PATCH is not given up for the run).
        return self._put(kind, change, target_id, version, extra=extra, target=target)

    def _put(
        self,
        kind: _Kind,
        change: Change,
        target_id: str,
        version: str | None,
        *,
        extra: list[dict[str, Any]],
        target: str | None,
    ) -> Outcome:
        path = f"{self._endpoint(kind.kind)}/{target_id}"
        response = self._http.request("GET", path)
        if response.status_code != 200:
            return self._failure(change, f"GET {self._http.url(path)}", response)
        current = response.json()
        if version is not None and self.service_provider.etag is False:
            pass  # no ETags: the planner was told (capabilities.versions) and did not rely on it
        elif version is not None and resource_version(current, response) != version:
            return Outcome(
                change.address,
                OutcomeStatus.STALE,
                message=f"GET {self._http.url(path)}: changed on the target since planning",
            )
        resource = dict(current)
        resource.pop("meta", None)
        wanted = to_resource(self._flat(change), kind.kind)
        for key, value in wanted.items():
            if key == "schemas":
                resource["schemas"] = sorted(set(resource.get("schemas") or []) | set(value))
            elif isinstance(value, dict) and isinstance(resource.get(key), dict):
                resource[key] = {**resource[key], **value}
            elif isinstance(value, list) and isinstance(resource.get(key), list):
                resource[key] = merge_elements(resource[key], value)
            else:
                resource[key] = value
        for attribute in change.attributes:
            if attribute.after is None:
                remove_path(resource, patch_path(attribute.path))
        for op in extra:
            resource[op["path"]] = op["value"]
        response = self._http.request("PUT", path, json=resource, headers=self._if_match(version))
        if response.status_code in (200, 201, 204):
            return Outcome(change.address, OutcomeStatus.APPLIED, target_id=target)
        return self._failure(change, f"PUT {self._http.url(path)}", response)

    def _delete(self, kind: _Kind, change: Change) -> Outcome:
        assert change.target_id is not None
        path = f"{self._endpoint(kind.kind)}/{change.target_id}"
        response = self._http.request("DELETE", path, headers=self._if_match(change.version))
        if response.status_code in (200, 204):
            return Outcome(change.address, OutcomeStatus.APPLIED)
        if response.status_code == 404:
            return Outcome(change.address, OutcomeStatus.UNCHANGED, message="already gone")
        return self._failure(change, f"DELETE {self._http.url(path)}", response)

    def _if_match(self, version: str | None) -> dict[str, str]:
        if version and self.service_provider.etag and not version.startswith("sha256:"):
            return {"If-Match": version}
        return {}

    def _failure(self, change: Change, where: str, response: httpx.Response) -> Outcome:
        if response.status_code == 412:
            return Outcome(
                change.address,
                OutcomeStatus.STALE,
                message=f"{where}: changed on the target since planning (412)",
            )
        if response.status_code == 404:
            return Outcome(
                change.address,
                OutcomeStatus.FAILED,
                message=f"{where}: no longer exists on the target (404)",
            )
        return Outcome(
            change.address, OutcomeStatus.FAILED, message=f"{where}: {error_detail(response)}"
        )

    # -- membership --------------------------------------------------------------------------

    def _apply_members(
        self, group: str, action: Action, items: list[tuple[int, Change]]
    ) -> list[tuple[int, Outcome]]:
        with self._lock:
            group_id = self._ids[ObjectKind.GROUP].get(group)
            user_map = dict(self._ids[ObjectKind.USER])
            present = set(self._members.get(group_id, set())) if group_id else set()
        if group_id is None:
            return [
                (i, Outcome(c.address, OutcomeStatus.FAILED, message="group is not on the target"))
                for i, c in items
            ]
        results: list[tuple[int, Outcome]] = []
        pending: list[tuple[int, Change, str]] = []
        for index, change in items:
            user_id = user_map.get(change.user or "")
            if user_id is None:
                if action is Action.REMOVE:
                    results.append((index, Outcome(change.address, OutcomeStatus.UNCHANGED)))
                else:
                    missing = Outcome(
                        change.address, OutcomeStatus.FAILED, message="user is not on the target"
                    )
                    results.append((index, missing))
            elif (user_id in present) == (action is Action.ADD):
                results.append((index, Outcome(change.address, OutcomeStatus.UNCHANGED)))
            else:
                pending.append((index, change, user_id))
        for start in range(0, len(pending), MEMBER_CHUNK):
            chunk = pending[start : start + MEMBER_CHUNK]
            ids = [user_id for _, _, user_id in chunk]
            status, message = self._patch_members(group_id, action, ids)
            if status is OutcomeStatus.APPLIED:
                with self._lock:
                    members = self._members.setdefault(group_id, set())
                    if action is Action.ADD:
                        members.update(ids)
                    else:
                        members.difference_update(ids)
            results.extend(
                (index, Outcome(change.address, status, message=message))
                for index, change, _ in chunk
            )
        return results

    def _patch_members(
        self, group_id: str, action: Action, user_ids: list[str]
    ) -> tuple[OutcomeStatus, str | None]:
        path = f"{self._endpoint(ObjectKind.GROUP)}/{group_id}"
        where = f"PATCH {self._http.url(path)}"
        values = [{"value": user_id} for user_id in user_ids]
        by_value: list[dict[str, Any]] = [{"op": "remove", "path": "members", "value": values}]
        forms: list[list[dict[str, Any]]]
        if action is Action.ADD:
            forms = [[{"op": "add", "path": "members", "value": values}]]
        else:
            # RFC form first; the Entra-style value array for servers that only take that.
            by_filter: list[dict[str, Any]] = [
                {"op": "remove", "path": scim_filter.member_path(user_id)} for user_id in user_ids
            ]
            preferred = self._remove_style == "value_array"
            forms = [by_value, by_filter] if preferred else [by_filter, by_value]
        response: httpx.Response | None = None
        for ops in forms:
            body = {"schemas": [PATCH_OP], "Operations": ops}
            response = self._http.request("PATCH", path, json=body)
            if response.status_code in (200, 204):
                if action is Action.REMOVE:
                    self._remove_style = "value_array" if ops is by_value else "filter"
                return OutcomeStatus.APPLIED, None
            if response.status_code not in (400, 501):
                break
        assert response is not None
        return OutcomeStatus.FAILED, f"{where}: {error_detail(response)}"

    def close(self) -> None:
        self._http.close()
