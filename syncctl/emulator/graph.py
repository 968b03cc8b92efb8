"""Microsoft Graph v1.0 routes: authentication, throttling, dispatch, reads, getByIds.

Everything here works on ``GraphRequest`` -> ``Response`` so that ``$batch`` items travel the
same path as HTTP requests (each item authenticated by the batch, throttled on its own).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from syncctl.emulator import permissions
from syncctl.emulator.batch import run_batch
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
from syncctl.emulator.projection import project, with_odata_id
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.responses import (
    GraphRequestError,
    Response,
    graph_error,
    json_response,
    stamp_request_ids,
    throttled_error,
)
from syncctl.emulator.schema import (
    DIRECTORY_OBJECT_PROPERTIES,
    GROUP_FILTERABLE,
    GROUP_FILTERABLE_ADVANCED,
    GROUP_PROPERTIES,
    USER_FILTERABLE,
    USER_FILTERABLE_ADVANCED,
    USER_PROFILE_ONLY,
    USER_PROPERTIES,
)
from syncctl.emulator.tenant import EmulatorTenant
from syncctl.emulator.throttle import ResourceUnitBudget, format_retry_after, resource_units
from syncctl.emulator.writes import delete_group, patch_user

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
    outside_store=USER_PROFILE_ONLY,
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
    DIRECTORY_OBJECT_PROPERTIES,
    USER_FILTERABLE | GROUP_FILTERABLE,
    USER_FILTERABLE_ADVANCED | GROUP_FILTERABLE_ADVANCED,
    with_type=True,
)

Handler = Callable[[GraphRequest, "re.Match[str]"], Response]
# The app roles a request's token grants; None: not known here (every kind readable).
RolesOf = Callable[[GraphRequest], "frozenset[str] | None"]


def can_read(roles: frozenset[str], kind: str) -> bool:
    """Whether member lists show ``kind`` in full (the permission model decides)."""
    return permissions.can_read(roles, kind)


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
        self.reader = CollectionReader(
            base_url, self._store, tenant.versions, self._directory_url()
        )
        # Set by the permission model: member lists show unreadable kinds with limited
        # information (see _member_readable).
        self.roles_of: RolesOf = lambda _request: permissions.current_roles()
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
                "DELETE",
                re.compile(rf"^/v1\.0/groups/(?P<id>{_GUIDish})$", re.IGNORECASE),
                self._delete_group,
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
            (
                "POST",
                re.compile(r"^/v1\.0/\$batch$", re.IGNORECASE),
                lambda request, _: run_batch(request, self._throttled, self.faults),
            ),
        ]

    # ---- entry ------------------------------------------------------------------------------
    def handle(self, request: GraphRequest) -> Response:
        """An HTTP request to Graph: authenticate, throttle, dispatch."""
        bearer = self.identity.authenticate(request.header("Authorization"))
        if bearer.problem is not None:
            return graph_error(
                401,
                bearer.problem,
                "InvalidAuthenticationToken",
                client_request_id=request.header("client-request-id"),
                headers={
                    "WWW-Authenticate": 'Bearer realm="", '
                    'authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                    'authorize", '
                    'client_id="00000003-0000-0000-c000-000000000000"'
                },
            )
        with permissions.granting(bearer.roles):  # what require() and member lists check
            if request.path.lower() == "/v1.0/$batch":
                return self._with_ids(request, self._dispatch(request))
            return self._with_ids(request, self._throttled(request))

    def _throttled(self, request: GraphRequest) -> Response:
        units = resource_units(request.method, request.path, request.query)
        verdict = self.budget.charge(units)
        if not verdict.allowed:
            headers = {
                "Retry-After": format_retry_after(verdict.retry_after),
                "x-ms-throttle-scope": (
                    f"Tenant_Application/ReadWrite/{self.identity.client_id}/{self.tenant.tenant_id}"
                ),
                "x-ms-throttle-information": "ResourceUnitLimitExceeded",
                "x-ms-resource-unit": str(units),
            }
            return throttled_error(headers)
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
        stamp_request_ids(
            response, response.headers["request-id"], response.headers["client-request-id"]
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
                    permissions.require(request, self.tenant)  # 403 unless a role allows it
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
        if kind == "deleted:user":
            return self.tenant.deleted_users
        if kind == "deleted:group":
            return self.tenant.deleted_groups
        return self.tenant.store_of(kind)

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
        select = parse_select(
            request.query.get("$select"),
            USER_PROPERTIES,
            "microsoft.graph.user",
            USER_PROFILE_ONLY,
        )
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
                # group-list-transitivemembers.md examples 3-5: cast lists carry no
                # @odata.type on their items (the context names the type)
                with_type=False,
                advanced_required=transitive,
                outside_store=USER_PROFILE_ONLY,
                odata_id=True,
            )
        elif cast == "group":
            spec = CollectionSpec(
                "Group",
                "microsoft.graph.group",
                "$metadata#groups",
                GROUP_PROPERTIES,
                GROUP_FILTERABLE,
                GROUP_FILTERABLE_ADVANCED,
                with_type=False,
                advanced_required=transitive,
                odata_id=True,
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

        return self.reader.read(request, spec, candidates, self._member_readable(request))

    def _member_readable(self, request: GraphRequest) -> Callable[[str], bool] | None:
        """Which member kinds the request's app may read in full (the only place member
        lists consult permissions; None when the roles are unknown)."""
        roles = self.roles_of(request)
        if roles is None:
            return None
        return lambda kind: can_read(roles, kind)

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
            DIRECTORY_OBJECT_PROPERTIES,
            "microsoft.graph.directoryObject",
        )
        body = {"@odata.context": f"{self.base_url}/v1.0/$metadata#directoryObjects/$entity"}
        shown = project(obj, kind, select, with_type=True)
        # directoryobject-get.md: the object read through directoryObjects carries @odata.id
        body.update(with_odata_id(shown, self._directory_url(), kind))
        return json_response(body)

    def _directory_url(self) -> str:
        """Where @odata.id links point: Microsoft's are https://graph.microsoft.com/v2/
        {tenant id}/directoryObjects (directoryobject-get.md); the emulator's own host."""
        return f"{self.base_url}/v2/{self.tenant.tenant_id}/directoryObjects"

    # ---- writes (writes.py) ---------------------------------------------------------------
    def _patch_user(self, request: GraphRequest, match: re.Match[str]) -> Response:
        user = self._user(match["id"])
        return patch_user(self.tenant, str(user["id"]), request.json_body())

    def _delete_group(self, request: GraphRequest, match: re.Match[str]) -> Response:
        return delete_group(self.tenant, str(self._group(match["id"])["id"]))

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
            DIRECTORY_OBJECT_PROPERTIES,
            "microsoft.graph.directoryObject",
        )
        value = []
        for object_id in ids:
            kind = self.tenant.kind_of(object_id)
            obj = self._lookup(kind, object_id) if kind else None
            if kind is not None and kind.lower() in wanted and obj is not None:
                value.append(project(obj, kind, select, with_type=True))
        return json_response(
            {"@odata.context": f"{self.base_url}/v1.0/$metadata#directoryObjects", "value": value}
        )


def _not_found(key: str) -> GraphRequestError:
    return GraphRequestError(
        404,
        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
        "not present.",
        "Request_ResourceNotFound",
    )
