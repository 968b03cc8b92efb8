"""``/users/delta`` and ``/groups/delta`` (delta-query-overview.md, delta-query-groups.md).

A round starts with a request without ``$skiptoken``: the emulator computes every page of the
round at once (so a round is a consistent cut of the change log), hands out ``$skiptoken``
nextLinks for the pages and a ``$deltatoken`` deltaLink on the last one. The delta token
remembers the change-log position; the next round reports what changed after it:
updated objects (all selected properties, or only changed ones with ``Prefer:
return=minimal``), ``@removed`` with reason ``changed`` (soft delete, restorable) or
``deleted`` (gone for good), and ``members@delta`` additions and removals. A group with more
members than ``member_chunk`` repeats on following pages with the next slice of members.

Objects leave out properties that were never set (user-delta.md: "If the property has never
been set before it will not be included in the response at all"); one that had a value and
was cleared is sent as null, so a replica can tell "cleared" from "nothing to say".
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from syncctl.emulator.delta_token import DeltaToken
from syncctl.emulator.odata import parse_filter, parse_select
from syncctl.emulator.projection import project, project_many
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.responses import GraphRequestError, Response, graph_error, json_response
from syncctl.emulator.schema import (
    GROUP_PROPERTIES,
    ODATA_TYPE,
    USER_PROFILE_ONLY,
    USER_PROPERTIES,
)
from syncctl.emulator.tenant import ChangeOp, EmulatorTenant

TOKEN_LIFETIME = timedelta(days=7)  # directory objects (delta-query-overview.md)
_ROUND_LIMIT = 500
_MAX_FILTER_IDS = 50


@dataclass(frozen=True, slots=True)
class DeltaRound:
    resource: str
    pages: tuple[tuple[dict[str, Any], ...], ...]
    context: str
    delta_token: str


@dataclass(slots=True)
class _Entry:
    base: dict[str, Any]
    members: list[dict[str, Any]] | None  # None: no members@delta on this object


class DeltaEngine:
    def __init__(self, tenant: EmulatorTenant, base_url: str) -> None:
        self.tenant = tenant
        self.base_url = base_url
        self.epoch = 0
        self.page_size = 100  # objects per page unless Prefer: odata.maxpagesize
        self.member_chunk = 100  # members@delta entries per group entry
        self.replay_next = False
        self._rounds: OrderedDict[str, DeltaRound] = OrderedDict()
        self._lock = threading.Lock()

    def expire_tokens(self) -> None:
        with self._lock:
            self.epoch += 1

    def replay(self) -> None:
        """The next incremental round also re-sends the previous round's changes, as Graph
        may (delta-query-overview.md: "replays")."""
        with self._lock:
            self.replay_next = True

    # ---- entry point --------------------------------------------------------------------
    def handle(self, request: GraphRequest, resource: str) -> Response:
        response = self._handle(request, resource)
        if (request.prefer("return") or "").lower() == "minimal" and response.status == 200:
            response.headers["Preference-Applied"] = "return=minimal"
        return response

    def _handle(self, request: GraphRequest, resource: str) -> Response:
        query = request.query
        if "$skiptoken" in query:
            return self._next_page(resource, query["$skiptoken"])
        for option in ("$top", "$orderby"):
            if option in query:
                raise GraphRequestError(
                    400,
                    f"The query option '{option}' is not supported with delta queries.",
                    "Request_UnsupportedQuery",
                )
        if "$expand" in query and not _expands_members(resource, query["$expand"]):
            # delta-query-groups.md documents $expand=members on groups/delta only; anything
            # else is refused rather than answered without the expansion
            raise GraphRequestError(
                400,
                f"The query option '$expand={query['$expand']}' is not supported with delta "
                "queries.",
                "Request_UnsupportedQuery",
            )
        token_text = query.get("$deltatoken")
        if token_text:
            if token_text == "latest":
                token = self._new_token(request, resource, prev=self.tenant.seq)
                round_ = DeltaRound(
                    resource, ((),), self._context(resource, token.select), token.encode()
                )
                return self._serve(round_, self._store(round_), 0)
            token = DeltaToken.decode(token_text)
            if token.resource != resource:
                raise GraphRequestError(
                    400, "The delta token belongs to another resource.", "Request_BadRequest"
                )
            gone = self._expired(token)
            if gone is not None:
                return gone
            start = token.seq
            with self._lock:
                if self.replay_next:
                    start, self.replay_next = token.prev, False
            round_ = self._incremental(request, token, start)
        else:
            round_ = self._initial(request, resource)
        return self._serve(round_, self._store(round_), 0)

    # ---- rounds ---------------------------------------------------------------------------
    def _new_token(self, request: GraphRequest, resource: str, prev: int) -> DeltaToken:
        known = set(USER_PROPERTIES if resource == "users" else GROUP_PROPERTIES)
        known.add("manager" if resource == "users" else "members")
        type_name = "microsoft.graph.user" if resource == "users" else "microsoft.graph.group"
        outside = USER_PROFILE_ONLY if resource == "users" else frozenset()
        select = parse_select(request.query.get("$select"), frozenset(known), type_name, outside)
        id_filter = request.query.get("$filter")
        if id_filter:
            parsed = parse_filter(id_filter, frozenset({"id"}), type_name)
            if id_filter.lower().count(" eq ") > _MAX_FILTER_IDS or parsed.advanced:
                raise GraphRequestError(
                    400,
                    f"Delta $filter supports up to {_MAX_FILTER_IDS} 'id eq' clauses "
                    "joined by 'or'.",
                    "Request_UnsupportedQuery",
                )
        return DeltaToken(
            resource,
            self.tenant.seq,
            prev,
            self.epoch,
            self.tenant.now().timestamp(),
            select,
            id_filter or None,
            _expands_members(resource, request.query.get("$expand")),
        )

    def _initial(self, request: GraphRequest, resource: str) -> DeltaRound:
        with self.tenant.lock:
            self.tenant.purge_expired()
            token = self._new_token(request, resource, prev=0)
            keep = self._id_predicate(token)
            kind = "user" if resource == "users" else "group"
            store = "users" if kind == "user" else "groups"
            live = self.tenant.users if kind == "user" else self.tenant.groups
            live_ids = self.tenant.sorted_ids(store)
            deleted_ids = self.tenant.sorted_ids(f"deleted_{store}")
            if token.id_filter:
                live_ids = tuple(i for i in live_ids if keep(i))
                deleted_ids = tuple(i for i in deleted_ids if keep(i))
            # one bulk projection: an initial round of 100,000 users must stay cheap
            projected = project_many([live[i] for i in live_ids], kind, _with_id(token.select))
            cleared = self.tenant.cleared
            projected = [
                _set_only(p, cleared.get(i)) for i, p in zip(live_ids, projected, strict=True)
            ]
            if kind == "user":
                removed = [_removed(i, "changed") for i in deleted_ids]
                plain = sorted([*projected, *removed], key=_id) if removed else projected
                return self._paginate_plain(resource, token, plain, request)
            shown = dict(zip(live_ids, projected, strict=True))
            entries: list[_Entry] = []
            for object_id in sorted([*live_ids, *deleted_ids]):
                if object_id not in shown:
                    entries.append(_Entry(_removed(object_id, "changed"), None))
                    continue
                members = None
                if token.tracks_members:
                    members = [
                        {"@odata.type": ODATA_TYPE[self.tenant.kind_of(m) or "user"], "id": m}
                        for m in self.tenant.live_members(object_id)
                    ] or None
                entries.append(_Entry(shown[object_id], members))
        return self._paginate(resource, token, entries, request)

    def _incremental(self, request: GraphRequest, token: DeltaToken, start: int) -> DeltaRound:
        kind = "user" if token.resource == "users" else "group"
        minimal = (request.prefer("return") or "").lower() == "minimal"
        with self.tenant.lock:
            self.tenant.purge_expired()
            keep = self._id_predicate(token)
            ops: dict[str, set[ChangeOp]] = {}
            changed: dict[str, set[str]] = {}
            members: dict[str, dict[str, tuple[ChangeOp, str]]] = {}
            for change in self.tenant.changes[start:]:
                if change.kind != kind or not keep(change.object_id):
                    continue
                ops.setdefault(change.object_id, set()).add(change.op)
                changed.setdefault(change.object_id, set()).update(change.properties)
                if change.member_id is not None:
                    members.setdefault(change.object_id, {})[change.member_id] = (
                        change.op,
                        change.member_kind or "user",
                    )
            new_token = DeltaToken(
                token.resource,
                self.tenant.seq,
                start,
                self.epoch,
                self.tenant.now().timestamp(),
                token.select,
                token.id_filter,
                token.expand_members,
            )
            entries = [
                entry
                for object_id in sorted(ops)
                if (
                    entry := self._changed_entry(
                        kind,
                        object_id,
                        ops[object_id],
                        changed[object_id],
                        members.get(object_id, {}),
                        select=token.select,
                        tracks_members=token.tracks_members,
                        minimal=minimal,
                    )
                )
                is not None
            ]
        return self._paginate(token.resource, new_token, entries, request)

    def _changed_entry(
        self,
        kind: str,
        object_id: str,
        ops: set[ChangeOp],
        changed: set[str],
        member_changes: Mapping[str, tuple[ChangeOp, str]],
        *,
        select: tuple[str, ...] | None,
        tracks_members: bool,
        minimal: bool,
    ) -> _Entry | None:
        live = self.tenant.users if kind == "user" else self.tenant.groups
        deleted = self.tenant.deleted_users if kind == "user" else self.tenant.deleted_groups
        if object_id not in live:
            reason = "changed" if object_id in deleted else "deleted"
            return _Entry(_removed(object_id, reason), None)
        whole = bool(ops & {ChangeOp.RESTORE}) or "id" in changed  # restored or created
        net = dict(member_changes)
        if whole and kind == "group":
            # A client that saw the delete dropped the group: send its whole membership again.
            for member_id in self.tenant.live_members(object_id):
                net[member_id] = (ChangeOp.MEMBER_ADD, self.tenant.kind_of(member_id) or "user")
        member_list = [
            {"@odata.type": ODATA_TYPE[member_kind], "id": member_id}
            | ({"@removed": {"reason": "deleted"}} if op == ChangeOp.MEMBER_REMOVE else {})
            for member_id, (op, member_kind) in sorted(net.items())
        ]
        selected = _props(select)
        visible_change = whole or (
            bool(changed) and (selected is None or bool(changed & set(selected)))
        )
        if not visible_change and not (tracks_members and member_list):
            return None  # only unselected properties changed: delta does not surface it
        if minimal and not whole:
            names = sorted(changed & set(selected)) if selected is not None else sorted(changed)
            base = project(live[object_id], kind, names, always_id=True)
        else:
            base = project(live[object_id], kind, selected, always_id=True)
        base = _set_only(base, self.tenant.cleared.get(object_id))
        return _Entry(base, member_list if tracks_members and member_list else None)

    # ---- paging ---------------------------------------------------------------------------
    def _paginate(
        self, resource: str, token: DeltaToken, entries: list[_Entry], request: GraphRequest
    ) -> DeltaRound:
        page_size = self._page_size(request)
        chunk = max(1, self.member_chunk)
        pages: list[tuple[dict[str, Any], ...]] = []
        queue = deque(entries)
        carry: list[_Entry] = []
        while queue or carry or not pages:
            page: list[dict[str, Any]] = []
            next_carry: list[_Entry] = []
            for entry in carry:
                if len(page) >= page_size:
                    next_carry.append(entry)
                    continue
                page.append(self._slice(entry, chunk, next_carry))
            while queue and len(page) < page_size:
                page.append(self._slice(queue.popleft(), chunk, next_carry))
            carry = next_carry
            pages.append(tuple(page))
        return DeltaRound(
            resource, tuple(pages), self._context(resource, token.select), token.encode()
        )

    def _paginate_plain(
        self,
        resource: str,
        token: DeltaToken,
        items: list[dict[str, Any]],
        request: GraphRequest,
    ) -> DeltaRound:
        """Pages of objects that carry no members@delta (users): plain slices."""
        size = self._page_size(request)
        pages = tuple(tuple(items[i : i + size]) for i in range(0, len(items), size)) or ((),)
        return DeltaRound(resource, pages, self._context(resource, token.select), token.encode())

    def _page_size(self, request: GraphRequest) -> int:
        preferred = request.prefer("odata.maxpagesize")
        if preferred and preferred.isdigit():
            return max(1, min(999, int(preferred)))
        return self.page_size

    @staticmethod
    def _slice(entry: _Entry, chunk: int, carry: list[_Entry]) -> dict[str, Any]:
        if entry.members is None:
            return entry.base
        head, rest = entry.members[:chunk], entry.members[chunk:]
        if rest:
            carry.append(_Entry(entry.base, rest))
        return {**entry.base, "members@delta": head}

    def _store(self, round_: DeltaRound) -> str:
        key = secrets.token_urlsafe(9)
        with self._lock:
            self._rounds[key] = round_
            while len(self._rounds) > _ROUND_LIMIT:
                self._rounds.popitem(last=False)
        return key

    def _next_page(self, resource: str, skiptoken: str) -> Response:
        key, _, index = skiptoken.rpartition(".")
        with self._lock:
            round_ = self._rounds.get(key)
        if round_ is None or round_.resource != resource or not index.isdigit():
            raise GraphRequestError(
                400, "The provided $skiptoken is invalid or has expired.", "Request_BadRequest"
            )
        return self._serve(round_, key, int(index))

    def _serve(self, round_: DeltaRound, key: str, index: int) -> Response:
        if index >= len(round_.pages):
            raise GraphRequestError(
                400, "The provided $skiptoken is invalid or has expired.", "Request_BadRequest"
            )
        body: dict[str, Any] = {"@odata.context": round_.context}
        link = f"{self.base_url}/v1.0/{round_.resource}/delta?"
        if index + 1 < len(round_.pages):
            body["@odata.nextLink"] = f"{link}$skiptoken={key}.{index + 1}"
        else:
            body["@odata.deltaLink"] = f"{link}$deltatoken={round_.delta_token}"
        body["value"] = list(round_.pages[index])
        return json_response(body)

    # ---- helpers ------------------------------------------------------------------------
    def _context(self, resource: str, select: tuple[str, ...] | None) -> str:
        context = f"{self.base_url}/v1.0/$metadata#{resource}"
        return context + (f"({','.join(select)})" if select else "")

    def _expired(self, token: DeltaToken) -> Response | None:
        too_old = self.tenant.now().timestamp() - token.issued > TOKEN_LIFETIME.total_seconds()
        if token.epoch == self.epoch and not too_old:
            return None
        location = f"{self.base_url}/v1.0/{token.resource}/delta?"
        if token.select:
            location += f"$select={quote(','.join(token.select), safe=',')}&"
        if token.expand_members:
            location += "$expand=members&"
        location += "$deltatoken="
        return graph_error(
            410,
            "The sync state generation is not found. The delta token is expired and data must "
            "be synchronized again.",
            "syncStateNotFound",
            headers={"Location": location},
        )

    @staticmethod
    def _id_predicate(token: DeltaToken) -> Any:
        if not token.id_filter:
            return lambda _object_id: True
        type_name = "microsoft.graph.user" if token.resource == "users" else "microsoft.graph.group"
        parsed = parse_filter(token.id_filter, frozenset({"id"}), type_name)
        return lambda object_id: parsed.predicate({"id": object_id})


def _set_only(item: dict[str, Any], cleared: set[str] | None) -> dict[str, Any]:
    """The item without properties that were never set: null values, unless the property
    once had a value (then null is news a replica must apply)."""
    if None not in item.values():  # the common case costs one C-level scan
        return item
    keep = cleared or set()
    return {k: v for k, v in item.items() if v is not None or k in keep}


def _id(item: dict[str, Any]) -> str:
    return str(item["id"])


def _removed(object_id: str, reason: str) -> dict[str, Any]:
    return {"id": object_id, "@removed": {"reason": reason}}


def _expands_members(resource: str, expand: str | None) -> bool:
    return resource == "groups" and (expand or "").strip().lower() == "members"


def _with_id(select: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The selected object properties with ``id`` first (delta always returns ``id``)."""
    props = _props(select)
    if props is None:
        return None
    return ("id", *(n for n in props if n != "id"))


def _props(select: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The object properties of a delta $select (``members`` and ``manager`` are relations)."""
    if select is None:
        return None
    return tuple(n for n in select if n not in ("members", "manager"))
