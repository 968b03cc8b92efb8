"""Microsoft Graph v1.0 routes: authentication, throttling, dispatch, $batch, getByIds, PATCH.

Everything here works on ``GraphRequest`` -> ``Response`` so that ``$batch`` items travel the
same path as HTTP requests (each item authenticated by the batch, throttled on its own).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from syncctl.emulator.delta import DeltaEngine
from syncctl.emulator.faults import Faults
from syncctl.emulator.identity import Identity
from syncctl.emulator.listing import (
    Candidates,
    CollectionReader,
    CollectionSpec,
    count_not_supported,
)
from syncctl.emulator.odata import parse_select
from syncctl.emulator.projection import project
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.responses import (
    GraphRequestError,
    Response,
    graph_error,
    json_response,
    rewritten,
)
from syncctl.emulator.schema import (
    GROUP_FILTERABLE,
    GROUP_FILTERABLE_ADVANCED,
    GROUP_PROPERTIES,
    READ_ONLY,
    USER_FILTERABLE,
    USER_FILTERABLE_ADVANCED,
    USER_PROPERTIES,
)
from syncctl.emulator.tenant import EmulatorTenant, TenantError
from syncctl.emulator.throttle import ResourceUnitBudget, resource_units

BOOLEAN_PROPERTIES = frozenset({"accountEnabled", "onPremisesSyncEnabled"})
COLLECTION_PROPERTIES = frozenset({"businessPhones", "otherMails", "proxyAddresses"})
MAX_BATCH = 20
MAX_GET_BY_IDS = 1000
_GUIDish = r"[^/]+"

USERS = CollectionSpec(
    "User",
    "microsoft.graph.user",
    "$metadata#users",
    USER_PROPERTIES,
    USER_FILTERABLE,
    USER_FILTERABLE_ADVANCED,
    with_type=False,
)
GROUPS = CollectionSpec(
    "Group",
    "microsoft.graph.group",
    "$metadata#groups",
    GROUP_PROPERTIES,
    GROUP_FILTERABLE,
    GROUP_FILTERABLE_ADVANCED,
    with_type=False,
)
DIRECTORY_OBJECTS = CollectionSpec(
    "DirectoryObject",
    "microsoft.graph.directoryObject",
    "$metadata#directoryObjects",
    USER_PROPERTIES | GROUP_PROPERTIES,
    USER_FILTERABLE | GROUP_FILTERABLE,
    USER_FILTERABLE_ADVANCED | GROUP_FILTERABLE_ADVANCED,
    with_type=True,
)

Handler = Callable[[GraphRequest, "re.Match[str]"], Response]


class GraphService:
    def __init__(
        self,
        tenant: EmulatorTenant,
        base_url: str,
        identity: Identity,
        faults: Faults,
        budget: ResourceUnitBudget,
    ) -> None:
        self.tenant = tenant
        self.base_url = base_url
        self.identity = identity
        self.faults = faults
        self.budget = budget
        self.delta = DeltaEngine(tenant, base_url)
        self.reader = CollectionReader(base_url, self._store, tenant.versions)
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"^/v1\.0/users/?$", re.IGNORECASE), self._list_users),
            ("GET", re.compile(r"^/v1\.0/users/\$count$", re.IGNORECASE), self._count_users),
            ("GET", re.compile(r"^/v1\.0/users/delta(\(\))?$", re.IGNORECASE), self._users_delta),
            (
                "GET",
                re.compile(rf"^/v1\.0/users/(?P<id>{_GUIDish})$", re.IGNORECASE),
                self._get_user,
            ),
            (
                "PATCH",
                re.compile(rf"^/v1\.0/users/(?P<id>{_GUIDish})$", re.IGNORECASE),
                self._patch_user,
            ),
            ("GET", re.compile(r"^/v1\.0/groups/?$", re.IGNORECASE), self._list_groups),
            ("GET", re.compile(r"^/v1\.0/groups/\$count$", re.IGNORECASE), self._count_groups),
            ("GET", re.compile(r"^/v1\.0/groups/delta(\(\))?$", re.IGNORECASE), self._groups_delta),
            (
                "GET",
                re.compile(rf"^/v1\.0/groups/(?P<id>{_GUIDish})$", re.IGNORECASE),
                self._get_group,
            ),
            (
                "GET",
                re.compile(
                    rf"^/v1\.0/groups/(?P<id>{_GUIDish})/(?P<rel>members|transitiveMembers)"
                    r"(?:/microsoft\.graph\.(?P<cast>user|group))?(?P<count>/\$count)?$",
                    re.IGNORECASE,
                ),
                self._members,
            ),
            (
                "GET",
                re.compile(
                    r"^/v1\.0/directory/deletedItems(?:/microsoft\.graph\.(?P<cast>user|group))?"
                    r"(?P<count>/\$count)?$",
                    re.IGNORECASE,
                ),
                self._deleted_items,
            ),
            (
                "GET",
                re.compile(rf"^/v1\.0/directory/deletedItems/(?P<id>{_GUIDish})$", re.IGNORECASE),
                self._deleted_item,
            ),
            (
                "POST",
                re.compile(r"^/v1\.0/directoryObjects/getByIds$", re.IGNORECASE),
                self._get_by_ids,
            ),
            (
                "GET",
                re.compile(
                    rf"^/v1\.0/directoryObjects/(?!getByIds$)(?P<id>{_GUIDish})$", re.IGNORECASE
                ),
                self._get_directory_object,
            ),
            ("POST", re.compile(r"^/v1\.0/\$batch$", re.IGNORECASE), self._batch),
        ]

    # ---- entry ------------------------------------------------------------------------------
    def handle(self, request: GraphRequest) -> Response:
        """An HTTP request to Graph: authenticate, throttle, dispatch."""
        problem = self.identity.check_bearer(request.header("Authorization"))
        if problem is not None:
            return graph_error(
                401,
                problem,
                "InvalidAuthenticationToken",
                client_request_id=request.header("client-request-id"),
                headers={
                    "WWW-Authenticate": 'Bearer realm="", '
                    'authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                    'authorize", '
                    'client_id="00000003-0000-0000-c000-000000000000"'
                },
            )
        if request.path.lower() == "/v1.0/$batch":
            return self._with_ids(request, self._dispatch(request))
        return self._with_ids(request, self._throttled(request))

    def _throttled(self, request: GraphRequest) -> Response:
        units = resource_units(request.method, request.path, request.query)
        verdict = self.budget.charge(units)
        if not verdict.allowed:
            headers = {
                "Retry-After": str(verdict.retry_after),
                "x-ms-throttle-scope": (
                    f"Tenant_Application/ReadWrite/{self.identity.client_id}/{self.tenant.tenant_id}"
                ),
                "x-ms-throttle-information": "ResourceUnitLimitExceeded",
                "x-ms-resource-unit": str(units),
            }
            return graph_error(429, "Please retry again later.", "TooManyRequests", headers=headers)
        response = self._dispatch(request)
        response.headers["x-ms-resource-unit"] = str(units)
        response.headers.setdefault("Cache-Control", "no-cache")
        if "odata" in response.headers.get("Content-Type", ""):
            response.headers["OData-Version"] = "4.0"
        if verdict.usage >= 0.8:
            response.headers["x-ms-throttle-limit-percentage"] = f"{min(verdict.usage, 1.8):.1f}"
        return response

    def _with_ids(self, request: GraphRequest, response: Response) -> Response:
        request_id = str(uuid.uuid4())
        response.headers.setdefault("request-id", request_id)
        response.headers.setdefault(
            "client-request-id", request.header("client-request-id") or request_id
        )
        return response

    def _dispatch(self, request: GraphRequest) -> Response:
        try:
            with self.tenant.lock:
                for method, pattern, handler in self._routes:
                    match = pattern.match(request.path)
                    if match is None:
                        continue
                    if method != request.method:
                        continue
                    return handler(request, match)
                if any(p.match(request.path) for _, p, _ in self._routes):
                    return graph_error(
                        405,
                        "Specified HTTP method is not allowed for the request target.",
                        "Request_BadRequest",
                    )
                return graph_error(
                    400,
                    f"Resource not found for the segment '{request.path.rsplit('/', 1)[-1]}'.",
                    "BadRequest",
                )
        except GraphRequestError as exc:
            return graph_error(exc.status, exc.message, exc.code, headers=exc.headers)

    # ---- lookups -----------------------------------------------------------------------------
    def _store(self, kind: str) -> Mapping[str, Mapping[str, Any]]:
        if kind == "user":
            return self.tenant.users
        if kind == "group":
            return self.tenant.groups
        if kind == "deleted:user":
            return self.tenant.deleted_users
        return self.tenant.deleted_groups

    def _lookup(self, kind: str, object_id: str) -> Mapping[str, Any] | None:
        return self._store(kind).get(object_id)

    def _user(self, key: str) -> dict[str, Any]:
        user = self.tenant.users.get(key)
        if user is None and "@" in key:
            wanted = key.casefold()
            user = next(
                (
                    u
                    for u in self.tenant.users.values()
                    if str(u.get("userPrincipalName", "")).casefold() == wanted
                ),
                None,
            )
        if user is None:
            raise _not_found(key)
        return user

    def _group(self, key: str) -> dict[str, Any]:
        group = self.tenant.groups.get(key)
        if group is None:
            raise _not_found(key)
        return group

    # ---- users and groups ----------------------------------------------------------------
    def _list_users(self, request: GraphRequest, _: re.Match[str]) -> Response:
        return self.reader.read(
            request, USERS, lambda: Candidates(self.tenant.sorted_ids("users"), kind="user")
        )

    def _list_groups(self, request: GraphRequest, _: re.Match[str]) -> Response:
        return self.reader.read(
            request, GROUPS, lambda: Candidates(self.tenant.sorted_ids("groups"), kind="group")
        )

    def _count_users(self, request: GraphRequest, _: re.Match[str]) -> Response:
        return self._count(request, len(self.tenant.users))

    def _count_groups(self, request: GraphRequest, _: re.Match[str]) -> Response:
        return self._count(request, len(self.tenant.groups))

    @staticmethod
    def _count(request: GraphRequest, number: int) -> Response:
        if not request.eventual:
            raise count_not_supported()
        return Response(200, str(number).encode(), {"Content-Type": "text/plain"})

    def _get_user(self, request: GraphRequest, match: re.Match[str]) -> Response:
        user = self._user(match["id"])
        select = parse_select(request.query.get("$select"), USER_PROPERTIES, "microsoft.graph.user")
        body = {"@odata.context": self._single_context("users", select)}
        body.update(project(user, "user", select))
        return json_response(body)

    def _get_group(self, request: GraphRequest, match: re.Match[str]) -> Response:
        group = self._group(match["id"])
        select = parse_select(
            request.query.get("$select"), GROUP_PROPERTIES, "microsoft.graph.group"
        )
        body = {"@odata.context": self._single_context("groups", select)}
        body.update(project(group, "group", select))
        return json_response(body)

    def _single_context(self, entity_set: str, select: tuple[str, ...] | None) -> str:
        shown = f"({','.join(select)})" if select else ""
        return f"{self.base_url}/v1.0/$metadata#{entity_set}{shown}/$entity"

    def _users_delta(self, request: GraphRequest, _: re.Match[str]) -> Response:
        return self.delta.handle(request, "users")

    def _groups_delta(self, request: GraphRequest, _: re.Match[str]) -> Response:
        return self.delta.handle(request, "groups")

    def _members(self, request: GraphRequest, match: re.Match[str]) -> Response:
        group_id = match["id"]
        self._group(group_id)
        transitive = match["rel"].lower() == "transitivemembers"
        cast = match["cast"].lower() if match["cast"] else None
        if match["count"]:
            if not request.eventual:
                raise count_not_supported()
            ids = self._member_ids(group_id, transitive, cast)
            return Response(200, str(len(ids)).encode(), {"Content-Type": "text/plain"})
        if cast == "user":
            spec = CollectionSpec(
                "User",
                "microsoft.graph.user",
                "$metadata#users",
                USER_PROPERTIES,
                USER_FILTERABLE,
                USER_FILTERABLE_ADVANCED,
                with_type=True,
                advanced_required=transitive,
            )
        elif cast == "group":
            spec = CollectionSpec(
                "Group",
                "microsoft.graph.group",
                "$metadata#groups",
                GROUP_PROPERTIES,
                GROUP_FILTERABLE,
                GROUP_FILTERABLE_ADVANCED,
                with_type=True,
                advanced_required=transitive,
            )
        else:
            spec = DIRECTORY_OBJECTS

        def candidates() -> Candidates:
            kinds: dict[str, str] = {}
            for member_id in self._member_ids(group_id, transitive, cast):
                kind = self.tenant.kind_of(member_id)
                if kind is not None:
                    kinds[member_id] = kind
            return Candidates(list(kinds), kinds=kinds)

        return self.reader.read(request, spec, candidates)

    def _member_ids(self, group_id: str, transitive: bool, cast: str | None) -> list[str]:
        ids = (
            self.tenant.transitive_members(group_id)
            if transitive
            else self.tenant.live_members(group_id)
        )
        if cast is not None:
            ids = [m for m in ids if self.tenant.kind_of(m) == cast]
        return ids

    # ---- deleted items ---------------------------------------------------------------------
    def _deleted_items(self, request: GraphRequest, match: re.Match[str]) -> Response:
        cast = match["cast"].lower() if match["cast"] else None
        if cast is None:
            raise GraphRequestError(
                400,
                "Listing deleted items requires a type cast: "
                "/directory/deletedItems/microsoft.graph.user or .../microsoft.graph.group.",
                "Request_BadRequest",
            )
        self.tenant.purge_expired()
        store = self.tenant.deleted_users if cast == "user" else self.tenant.deleted_groups
        if match["count"]:
            if not request.eventual:
                raise count_not_supported()
            return Response(200, str(len(store)).encode(), {"Content-Type": "text/plain"})
        # deleteditems-list.md: the answer reads like /users or /groups (same context, no
        # @odata.type on items)
        spec = USERS if cast == "user" else GROUPS
        return self.reader.read(
            request,
            spec,
            lambda: Candidates(self.tenant.sorted_ids(f"deleted_{cast}s"), kind=f"deleted:{cast}"),
        )

    def _deleted_item(self, request: GraphRequest, match: re.Match[str]) -> Response:
        self.tenant.purge_expired()
        key = match["id"]
        for kind, store in (
            ("user", self.tenant.deleted_users),
            ("group", self.tenant.deleted_groups),
        ):
            if key in store:
                props = USER_PROPERTIES if kind == "user" else GROUP_PROPERTIES
                select = parse_select(
                    request.query.get("$select"), props, f"microsoft.graph.{kind}"
                )
                body = {
                    "@odata.context": f"{self.base_url}/v1.0/$metadata#directoryObjects/$entity"
                }
                body.update(project(store[key], kind, select, with_type=True))
                return json_response(body)
        raise _not_found(key)

    def _get_directory_object(self, request: GraphRequest, match: re.Match[str]) -> Response:
        """directoryobject-get.md: a live object of any type, with its @odata.type; 404
        Request_ResourceNotFound otherwise (deleted objects are only in deleted items)."""
        key = match["id"]
        kind = self.tenant.kind_of(key)
        obj = self._lookup(kind, key) if kind else None
        if kind is None or obj is None:
            raise _not_found(key)
        select = parse_select(
            request.query.get("$select"),
            USER_PROPERTIES | GROUP_PROPERTIES,
            "microsoft.graph.directoryObject",
        )
        body = {"@odata.context": f"{self.base_url}/v1.0/$metadata#directoryObjects/$entity"}
        body.update(project(obj, kind, select, with_type=True))
        return json_response(body)

    # ---- writes ---------------------------------------------------------------------------
    def _patch_user(self, request: GraphRequest, match: re.Match[str]) -> Response:
        user = self._user(match["id"])
        body = request.json_body()
        if not isinstance(body, dict) or not body:
            raise GraphRequestError(400, "Empty or invalid PATCH payload.", "BadRequest")
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name not in USER_PROPERTIES:
                raise GraphRequestError(
                    400,
                    f"Property '{name}' does not exist as a declared property or extension "
                    "property.",
                    "Request_BadRequest",
                )
            if name in READ_ONLY:
                raise GraphRequestError(
                    400, f"Property '{name}' is read-only and cannot be set.", "Request_BadRequest"
                )
            if name == "passwordProfile":
                if not isinstance(value, dict) or not value.get("password"):
                    raise GraphRequestError(
                        400,
                        "Invalid value specified for property 'passwordProfile'.",
                        "Request_BadRequest",
                    )
                # The password itself is never stored: only the fact that it changed.
                changes["lastPasswordChangeDateTime"] = True
                continue
            if not _value_fits(name, value):
                raise GraphRequestError(
                    400,
                    f"Invalid value specified for property '{name}' of resource 'User'.",
                    "Request_BadRequest",
                )
            changes[name] = value
        try:
            self._apply_user_changes(str(user["id"]), changes)
        except TenantError as exc:
            raise GraphRequestError(
                400,
                "Another object with the same value for property userPrincipalName already exists."
                if "already exists" in str(exc)
                else str(exc),
                "Request_BadRequest",
            ) from None
        return Response(204)

    def _apply_user_changes(self, user_id: str, changes: Mapping[str, Any]) -> None:
        password_changed = "lastPasswordChangeDateTime" in changes
        writable = {k: v for k, v in changes.items() if k != "lastPasswordChangeDateTime"}
        if writable:
            self.tenant.update_user(user_id, **writable)
        if password_changed:
            self.tenant.record_password_change(user_id)

    def _get_by_ids(self, request: GraphRequest, _: re.Match[str]) -> Response:
        body = request.json_body()
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise GraphRequestError(
                400, "The 'ids' parameter must be a list of strings.", "Request_BadRequest"
            )
        if len(ids) > MAX_GET_BY_IDS:
            raise GraphRequestError(
                400, f"Too many ids: the maximum is {MAX_GET_BY_IDS}.", "Request_BadRequest"
            )
        types = body.get("types") or ["user", "group"]
        wanted: set[str] = set()
        for name in types:
            short = str(name).lower().removeprefix("microsoft.graph.")
            if short not in ("user", "group", "device", "directoryrole", "serviceprincipal"):
                raise GraphRequestError(400, f"Invalid type '{name}'.", "Request_BadRequest")
            wanted.add(short)
        select = parse_select(
            request.query.get("$select"),
            USER_PROPERTIES | GROUP_PROPERTIES,
            "microsoft.graph.directoryObject",
        )
        value = []
        for object_id in ids:
            kind = self.tenant.kind_of(object_id)
            obj = self._lookup(kind, object_id) if kind else None
            if kind in wanted and obj is not None:
                value.append(project(obj, kind, select, with_type=True))
        return json_response(
            {"@odata.context": f"{self.base_url}/v1.0/$metadata#directoryObjects", "value": value}
        )

    # ---- $batch ---------------------------------------------------------------------------
    def _batch(self, request: GraphRequest, _: re.Match[str]) -> Response:
        body = request.json_body()
        items = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise GraphRequestError(400, "Invalid batch payload format.", "BadRequest")
        if len(items) > MAX_BATCH:
            raise GraphRequestError(
                400,
                f"Number of requests in batch exceeds the maximum limit of {MAX_BATCH}.",
                "BadRequest",
            )
        seen: dict[str, Mapping[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or not {"id", "method", "url"} <= set(item):
                raise GraphRequestError(400, "Invalid batch payload format.", "BadRequest")
            item_id = str(item["id"])
            if item_id.casefold() in {k.casefold() for k in seen}:  # ids are not case-sensitive
                raise GraphRequestError(
                    400, f"Batch request ids must be unique; '{item_id}' repeats.", "BadRequest"
                )
            if "body" in item and "content-type" not in {
                k.lower() for k in (item.get("headers") or {})
            }:
                raise GraphRequestError(
                    400,
                    f"Batch request '{item_id}' has a body but no Content-Type header.",
                    "BadRequest",
                )
            seen[item_id] = item
        for item in items:
            for dependency in item.get("dependsOn") or []:
                if str(dependency) not in seen:
                    raise GraphRequestError(
                        400,
                        f"Batch request '{item['id']}' depends on unknown '{dependency}'.",
                        "BadRequest",
                    )
        results: dict[str, Response] = {}
        for item in items:
            item_id = str(item["id"])
            failed = [
                d
                for d in item.get("dependsOn") or []
                if str(d) in results and results[str(d)].status >= 400
            ]
            if failed:
                results[item_id] = graph_error(424, "Failed dependency.", "FailedDependency")
                continue
            results[item_id] = self._batch_item(item)
        # Graph answers in any order: a stable shuffle keeps tests deterministic
        order = sorted(results, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        responses = []
        for item_id in order:
            response = results[item_id]
            entry: dict[str, Any] = {"id": item_id, "status": response.status}
            headers = {
                k: v
                for k, v in response.headers.items()
                if k.lower() not in ("request-id", "client-request-id")
            }
            if headers:
                entry["headers"] = headers
            if response.body:
                entry["body"] = response.json_value()
            responses.append(entry)
        return json_response({"responses": responses})

    def _batch_item(self, item: Mapping[str, Any]) -> Response:
        url = str(item["url"])
        if "://" in url:
            return graph_error(400, "Batch request urls must be relative.", "BadRequest")
        target = "/v1.0" + (url if url.startswith("/") else "/" + url)
        body = item.get("body")
        payload = b"" if body is None else _encode_body(body)
        headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
        inner = GraphRequest.from_target(str(item["method"]), target, headers, payload)
        if inner.path.lower() == "/v1.0/$batch":
            return graph_error(400, "Nested batches are not supported.", "BadRequest")
        fault = self.faults.take(inner.method, target)
        if fault is not None and fault.status is not None:
            headers_out = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            return graph_error(fault.status, fault.message, headers=headers_out)
        response = self._throttled(inner)
        if fault is not None and fault.rewrite is not None:
            return rewritten(response, fault.rewrite)
        return response


def _encode_body(body: Any) -> bytes:
    return json.dumps(body).encode()


def _value_fits(name: str, value: Any) -> bool:
    """The JSON type Graph's user schema wants (strings may be null)."""
    if name in BOOLEAN_PROPERTIES:
        return isinstance(value, bool)
    if name in COLLECTION_PROPERTIES:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value is None or isinstance(value, str)


def _not_found(key: str) -> GraphRequestError:
    return GraphRequestError(
        404,
        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
        "not present.",
        "Request_ResourceNotFound",
    )
