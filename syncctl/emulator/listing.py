"""Collection reads: query validation ($select/$filter/$search/$count/$orderby/$top), ordering
and opaque server-side paging (``@odata.nextLink`` carries a ``$skiptoken``)."""

from __future__ import annotations

import base64
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from syncctl.emulator.odata import parse_filter, parse_search, parse_select, parse_top
from syncctl.emulator.projection import (
    PageCache,
    page_body,
    project,
    project_limited,
    project_many,
    with_odata_id,
)
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.responses import (
    GraphRequestError,
    Response,
    encode_json,
    raw_json_response,
)
from syncctl.emulator.schema import MEMBER_KINDS, SEARCHABLE

# kind -> the tenant's objects of that kind: a schema.MEMBER_KINDS kind, "deleted:user" or
# "deleted:group"
Stores = Callable[[str], Mapping[str, Mapping[str, Any]]]
# Whether the caller's app may read objects of a kind; the others are listed with limited
# information (see projection.project_limited).
Readable = Callable[[str], bool]

_SESSION_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """What a collection endpoint holds and how Graph describes it."""

    type_name: str  # for error messages: "User", "Group", "DirectoryObject"
    odata_type: str  # "microsoft.graph.user", used in "could not find a property" errors
    context: str  # "$metadata#users"
    properties: frozenset[str]  # selectable
    filterable: frozenset[str]
    filterable_advanced: frozenset[str]
    with_type: bool  # add @odata.type to each item (mixed directoryObject lists)
    advanced_required: bool = False  # OData casts on transitive lists
    outside_store: frozenset[str] = frozenset()  # selectable only outside Entra ID: 501
    # group-list-transitivemembers.md Example 3: an OData-cast member list read without
    # $select gives each item its @odata.id (the $select examples 4 and 5 show none)
    odata_id: bool = False


@dataclass(frozen=True, slots=True)
class Candidates:
    """The ids a collection holds, in id order, and their kind (one for all, or per id)."""

    ids: Sequence[str]
    kind: str | None = None
    kinds: Mapping[str, str] | None = None

    def kind_of(self, object_id: str) -> str:
        if self.kind is not None:
            return self.kind
        assert self.kinds is not None
        return self.kinds[object_id]


@dataclass(frozen=True, slots=True)
class Session:
    items: Candidates  # in response order
    select: tuple[str, ...] | None
    page_size: int
    context: str
    with_type: bool
    next_prefix: str  # nextLink without the $skiptoken value
    eventual: bool  # an advanced query: every page needs ConsistencyLevel again
    limited: frozenset[str] = frozenset()  # kinds the app may not read: type and id only
    odata_id: bool = False  # items carry @odata.id (CollectionSpec.odata_id, no $select)


class Pager:
    """Remembers the result list of a first page so later pages are consistent and cheap."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def store(self, session: Session) -> str:
        key = secrets.token_urlsafe(9)
        with self._lock:
            self._sessions[key] = session
            while len(self._sessions) > _SESSION_LIMIT:
                self._sessions.popitem(last=False)
        return key

    def find(self, key: str) -> Session | None:
        with self._lock:
            return self._sessions.get(key)


def encode_skiptoken(key: str, offset: int) -> str:
    raw = f"RFNwdAIA:{key}:{offset}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_skiptoken(token: str) -> tuple[str, int]:
    try:
        padded = token + "=" * (-len(token) % 4)
        _, key, offset = base64.urlsafe_b64decode(padded).decode().split(":")
        return key, int(offset)
    except (ValueError, UnicodeDecodeError):
        raise GraphRequestError(
            400, "The provided $skiptoken is invalid or has expired.", "Request_BadRequest"
        ) from None


def unknown_skiptoken() -> GraphRequestError:
    return GraphRequestError(
        400, "The provided $skiptoken is invalid or has expired.", "Request_BadRequest"
    )


def count_not_supported() -> GraphRequestError:
    return GraphRequestError(400, "$count is not currently supported.", "Request_BadRequest")


class CollectionReader:
    def __init__(
        self, base_url: str, stores: Stores, versions: Mapping[str, int], directory_url: str
    ) -> None:
        self.base_url = base_url
        self.directory_url = directory_url  # what @odata.id links start with
        self.stores = stores
        self.versions = versions
        self.pager = Pager()
        self.pages = PageCache()

    def read(
        self,
        request: GraphRequest,
        spec: CollectionSpec,
        candidates: Callable[[], Candidates],
        readable: Readable | None = None,
    ) -> Response:
        token = request.query.get("$skiptoken")
        if token is not None:
            key, offset = decode_skiptoken(token)
            session = self.pager.find(key)
            if session is None:
                raise unknown_skiptoken()
            if session.eventual and not request.eventual:
                # paging.md: ConsistencyLevel is not carried over to nextLink requests
                raise GraphRequestError(
                    400,
                    "This page of an advanced query needs the ConsistencyLevel: eventual header "
                    "again.",
                    "Request_UnsupportedQuery",
                )
            return self._page(session, key, offset, count=None)

        for option in ("$skip", "$expand"):
            if option in request.query:
                # user-list.md: $skip is not supported; $expand is not emulated (say so rather
                # than silently answering without the expansion)
                raise GraphRequestError(
                    400, f"The query option '{option}' is not supported.", "Request_BadRequest"
                )
        eventual = request.eventual
        advanced = eventual and request.wants_count
        if spec.advanced_required and not advanced:
            raise GraphRequestError(
                400,
                "The specified OData cast on this relationship requires the ConsistencyLevel "
                "header set to 'eventual' and $count=true.",
                "Request_UnsupportedQuery",
            )
        # aad-advanced-queries.md, Error handling: without ConsistencyLevel, $count=true on a
        # collection fails silently (200 without @odata.count; only the /$count segment is a
        # 400); a query that needs the advanced parameters still fails below.
        counted = request.wants_count and eventual
        select = parse_select(
            request.query.get("$select"), spec.properties, spec.odata_type, spec.outside_store
        )
        top = parse_top(request.query.get("$top"))
        found = candidates()
        objects = found.ids
        filter_text = request.query.get("$filter")
        if filter_text:
            parsed = parse_filter(
                filter_text, spec.filterable | spec.filterable_advanced, spec.type_name
            )
            needs_advanced = parsed.advanced or bool(parsed.properties & spec.filterable_advanced)
            if needs_advanced and not advanced:
                name = sorted(parsed.properties)[0] if parsed.properties else "?"
                raise GraphRequestError(
                    400,
                    f"Unsupported or invalid query filter clause specified for property "
                    f"'{name}' of resource '{spec.type_name}'.",
                    "Request_UnsupportedQuery",
                )
            objects = [i for i in objects if parsed.predicate(self._object(found, i))]
        search_text = request.query.get("$search")
        if search_text is not None:
            if not eventual:
                raise GraphRequestError(
                    400,
                    "Request with $search query parameter only works through MSGraph with a "
                    "special request header: 'ConsistencyLevel: eventual'",
                    "Request_UnsupportedQuery",
                )
            search = parse_search(search_text, SEARCHABLE)
            objects = [i for i in objects if search.predicate(self._object(found, i))]
        objects = self._order(request, found, objects, advanced=advanced)

        context = f"{self.base_url}/v1.0/{spec.context}"
        if select is not None:
            context += "(" + ",".join(select) + ")"
        kept = [
            q for q in ("$select", "$top", "$filter", "$search", "$orderby") if q in request.query
        ]
        prefix_query = "&".join(f"{q}={quote(request.query[q], safe=',()')}" for q in kept)
        next_prefix = f"{self.base_url}{request.path}?" + (
            f"{prefix_query}&" if prefix_query else ""
        )
        session = Session(
            Candidates(objects, found.kind, found.kinds),
            select,
            top,
            context,
            spec.with_type,
            next_prefix + "$skiptoken=",
            eventual,
            frozenset(k for k in MEMBER_KINDS if readable is not None and not readable(k)),
            spec.odata_id and select is None,
        )
        key = self.pager.store(session) if len(objects) > top else ""
        return self._page(session, key, 0, count=len(objects) if counted else None)

    def _object(self, found: Candidates, object_id: str) -> Mapping[str, Any]:
        return self.stores(found.kind_of(object_id))[object_id]

    def _order(
        self,
        request: GraphRequest,
        found: Candidates,
        objects: Sequence[str],
        *,
        advanced: bool,
    ) -> Sequence[str]:
        orderby = request.query.get("$orderby")
        if not orderby:
            return objects  # candidates come in id order
        name, _, direction = orderby.strip().partition(" ")
        # aad-advanced-queries.md / deleteditems-list.md: $orderby with $filter, and on
        # deletedDateTime, are advanced queries
        if ("$filter" in request.query or name == "deletedDateTime") and not advanced:
            raise GraphRequestError(
                400, "Sorting not supported for current query.", "Request_UnsupportedQuery"
            )
        if name not in ("displayName", "userPrincipalName", "deletedDateTime", "createdDateTime"):
            raise GraphRequestError(
                400, f"Order by '{name}' is not supported.", "Request_UnsupportedQuery"
            )
        descending = direction.strip().lower() == "desc"
        return sorted(
            objects,
            key=lambda i: (str(self._object(found, i).get(name) or "").casefold(), i),
            reverse=descending,
        )

    def _page(self, session: Session, key: str, offset: int, count: int | None) -> Response:
        end = offset + session.page_size
        items = session.items
        ids = tuple(items.ids[offset:end])
        versions = tuple(map(self.versions.get, ids))
        page_key = (session.select, session.with_type, session.odata_id, session.limited, ids)
        value = self.pages.get(page_key, versions)
        if value is None:
            shown = self._project(items, ids, session)
            if session.odata_id:
                shown = [
                    with_odata_id(item, self.directory_url, _shown_kind(items, str(item["id"])))
                    for item in shown
                ]
            value = encode_json(shown)
            self.pages.put(page_key, versions, value)
        meta: list[tuple[str, Any]] = [("@odata.context", session.context)]
        if count is not None:
            meta.append(("@odata.count", count))
        if end < len(session.items.ids):
            meta.append(("@odata.nextLink", session.next_prefix + encode_skiptoken(key, end)))
        return raw_json_response(page_body(meta, value))

    def _project(
        self, items: Candidates, ids: Sequence[str], session: Session
    ) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = []
        if items.kind is not None:
            store = self.stores(items.kind)
            kind = items.kind.rpartition(":")[2]  # "deleted:user" lists show users
            try:
                found = list(map(store.__getitem__, ids))
            except KeyError:  # objects removed since the first page are skipped
                found = [obj for obj in map(store.get, ids) if obj is not None]
            if kind in session.limited:
                return [project_limited(obj, kind, session.select) for obj in found]
            return project_many(found, kind, session.select, with_type=session.with_type)
        for object_id in ids:
            kind = items.kind_of(object_id)
            obj = self.stores(kind).get(object_id)
            if obj is None:
                continue
            if kind in session.limited:
                shown.append(project_limited(obj, kind, session.select))
            else:
                shown.append(project(obj, kind, session.select, with_type=session.with_type))
        return shown


def _shown_kind(items: Candidates, object_id: str) -> str:
    return items.kind_of(object_id).rpartition(":")[2]  # "deleted:user" lists show users
