"""Microsoft Graph's application-permission model, for every request the emulator serves.

``RULES`` is the one table: for each endpoint, the application permissions (app roles) that
Microsoft's API page accepts, least privileged first, and that page
(microsoftgraph/microsoft-graph-docs-contrib ``api-reference/v1.0/api/<page>``, the
"Permissions" section, Application row). Where the published table changed between versions
(newer, generated tables list permissions the older hand-written ones did not), the accepted
set is their union. A ReadWrite permission is accepted only where the page lists it.

``require`` is the one check. Graph's dispatch calls it for every request and for every
``$batch`` item on its own, with the roles of the token the request (or its batch) carries,
which ``granting`` makes current while the request is served. A request whose roles include
none of the accepted permissions answers 403 ``Authorization_RequestDenied``.

``can_read(roles, kind)`` says whether an app may read objects of a kind in full; directory
object collections (``/groups/{id}/members``, ``/transitiveMembers``) list the other kinds
with limited information (permissions-overview.md, "Limited information returned for
inaccessible member objects").
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncctl.emulator.responses import GraphRequestError

if TYPE_CHECKING:
    from syncctl.emulator.request import GraphRequest
    from syncctl.emulator.tenant import EmulatorTenant

DOCS_REPO = "microsoftgraph/microsoft-graph-docs-contrib"
DENIED_CODE = "Authorization_RequestDenied"
DENIED_MESSAGE = "Insufficient privileges to complete the operation."

READ_ALL = ("Directory.Read.All", "Directory.ReadWrite.All")
# user-list.md, user-get.md, user-delta.md (one table on all three pages)
USER_READ = ("User.Read.All", "User.ReadWrite.All", *READ_ALL)
# group-get.md; group-delta.md lists the same
GROUP_READ = ("GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", *READ_ALL)
# group-list.md: its generated table names Group-NestingSupport.ReadWrite.All least privileged
# and adds Group.ManageProtection.All; the older table starts at GroupMember.Read.All
GROUP_LIST = (
    "GroupMember.Read.All",
    "Group-NestingSupport.ReadWrite.All",
    "Group.Read.All",
    "Group.ManageProtection.All",
    "Group.ReadWrite.All",
    *READ_ALL,
)
# directory-deleteditems-list.md / -get.md "For groups" (Directory.ReadWrite.All: -get.md)
DELETED_GROUP_READ = ("Group.Read.All", "Group.ReadWrite.All", *READ_ALL)
# directory-deleteditems-list.md / -get.md "For applications and service principals": the
# generated table lists every permission that reads some kind of deleted item
DELETED_ANY_READ = (
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Application.ReadWrite.OwnedBy",
    "AdministrativeUnit.Read.All",
    "AdministrativeUnit.ReadWrite.All",
    *READ_ALL,
    "Group.Read.All",
    "Group.ReadWrite.All",
    "User.Read.All",
    "User.ReadWrite.All",
)
# user-update.md: accountEnabled (User.EnableDisableAccount.All) and passwordProfile
# (User-PasswordProfile.ReadWrite.All, which the current page names least privileged for it)
# have narrower permissions of their own; every other property needs User.ReadWrite.All or
# Directory.ReadWrite.All. Directory.ReadWrite.All "does not allow the app to ... reset user
# passwords" (permissions-reference.md).
USER_WRITE = ("User.ReadWrite.All", "Directory.ReadWrite.All")
USER_WRITE_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "accountEnabled": ("User.EnableDisableAccount.All", *USER_WRITE),
    "passwordProfile": ("User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All"),
    "identities": ("User.ManageIdentities.All",),  # "requires the User.ManageIdentities.All"
}

# Which application permissions read a member of each kind in full: each kind's own list page
# (user-list.md, group-get.md, device-list.md, serviceprincipal-list.md, orgcontact-list.md).
# Application.ReadWrite.OwnedBy reads only the service principals the app owns: not here.
READERS: Mapping[str, frozenset[str]] = {
    "user": frozenset(USER_READ),
    "group": frozenset(GROUP_READ),
    "device": frozenset({"Device.Read.All", "Device.ReadWrite.All", *READ_ALL}),
    "servicePrincipal": frozenset({"Application.Read.All", "Application.ReadWrite.All", *READ_ALL}),
    "orgContact": frozenset({"OrgContact.Read.All", *READ_ALL}),
}

_PLACEHOLDERS = {
    "{id}": r"(?P<id>[^/]+)",
    "{cast}": r"(?:/microsoft\.graph\.(?P<cast>[A-Za-z]+))?",
    "{count}": r"(?:/\$count)?",
    "{()}": r"(?:\(\))?",
}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]*\})", template)
    body = "".join(_PLACEHOLDERS.get(part) or re.escape(part) for part in parts)
    return re.compile(rf"^/v1\.0{body}/?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rule:
    """One endpoint's documented application permissions."""

    method: str
    template: str  # the path under /v1.0 as the emulator serves it, with placeholders
    roles: tuple[str, ...] | None  # accepted, least privileged first; None: none of its own
    page: str  # the page (path in DOCS_REPO) whose Permissions table this is
    # Deleted items: the permissions that read an object of each kind (the page's tables "For
    # users" / "For groups"), checked once the object is known.
    kinds: Mapping[str, tuple[str, ...]] | None = None
    # PATCH: properties with permissions of their own; any other property needs ``roles``
    # minus those narrower permissions (``writes``).
    properties: Mapping[str, tuple[str, ...]] | None = None
    writes: tuple[str, ...] = ()
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _pattern(self.template))

    @property
    def endpoint(self) -> str:
        """The endpoint as the docs write it, e.g. ``GET /groups/{id}/members``."""
        shown = self.template.replace("{()}", "").replace("{count}", "").replace("{cast}", "")
        return f"{self.method} {shown}"


def _api(page: str) -> str:
    return f"api-reference/v1.0/api/{page}"


_DELETED_BY_KIND = {"user": USER_READ, "group": DELETED_GROUP_READ}

RULES: tuple[Rule, ...] = (
    Rule("GET", "/users", USER_READ, _api("user-list.md")),
    Rule("GET", "/users/$count", USER_READ, _api("user-list.md")),  # example "Get only a count"
    Rule("GET", "/users/delta{()}", USER_READ, _api("user-delta.md")),
    Rule("GET", "/users/{id}", USER_READ, _api("user-get.md")),
    Rule(
        "PATCH",
        "/users/{id}",
        (
            "User.ReadWrite.All",
            "Directory.ReadWrite.All",
            "User.EnableDisableAccount.All",
            "User.ManageIdentities.All",
            "User-PasswordProfile.ReadWrite.All",
        ),
        _api("user-update.md"),
        properties=USER_WRITE_PROPERTIES,
        writes=USER_WRITE,
    ),
    Rule("GET", "/groups", GROUP_LIST, _api("group-list.md")),
    Rule("GET", "/groups/$count", GROUP_LIST, _api("group-list.md")),
    Rule("GET", "/groups/delta{()}", GROUP_READ, _api("group-delta.md")),
    Rule("GET", "/groups/{id}", GROUP_READ, _api("group-get.md")),
    Rule("DELETE", "/groups/{id}", ("Group.ReadWrite.All",), _api("group-delete.md")),
    Rule(
        "GET",
        "/groups/{id}/members{cast}{count}",
        (
            "GroupMember.Read.All",
            "Group.Read.All",
            "GroupMember.ReadWrite.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
        ),
        _api("group-list-members.md"),
    ),
    # group-list-transitivemembers.md: the generated table adds GroupMember.ReadBasic.All
    # (least privileged) and Group.ReadBasic.All
    Rule(
        "GET",
        "/groups/{id}/transitiveMembers{cast}{count}",
        (
            "GroupMember.ReadBasic.All",
            "GroupMember.Read.All",
            "Group.ReadBasic.All",
            "Group.Read.All",
            "GroupMember.ReadWrite.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
        ),
        _api("group-list-transitivemembers.md"),
    ),
    Rule(
        "GET",
        "/directory/deletedItems/microsoft.graph.user{count}",
        USER_READ,
        _api("directory-deleteditems-list.md"),
    ),
    Rule(
        "GET",
        "/directory/deletedItems/microsoft.graph.group{count}",
        DELETED_GROUP_READ,
        _api("directory-deleteditems-list.md"),
    ),
    # without a cast (Graph does not support it; the emulator answers 400 after this check)
    Rule(
        "GET",
        "/directory/deletedItems{count}",
        DELETED_ANY_READ,
        _api("directory-deleteditems-list.md"),
    ),
    Rule(
        "GET",
        "/directory/deletedItems/{id}",
        DELETED_ANY_READ,
        _api("directory-deleteditems-get.md"),
        kinds=_DELETED_BY_KIND,
    ),
    Rule(
        "POST",
        "/directoryObjects/getByIds",
        ("Directory.Read.All",),
        _api("directoryobject-getbyids.md"),
    ),
    Rule("GET", "/directoryObjects/{id}", ("Directory.Read.All",), _api("directoryobject-get.md")),
    # json-batching.md: the batch needs a valid token; each request in it is checked on its own
    # (the page's example answers 403 for two items of a 200 batch)
    Rule("POST", "/$batch", None, "concepts/json-batching.md"),
)

_granted: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "syncctl_emulator_granted_roles", default=None
)


@contextlib.contextmanager
def granting(roles: Collection[str]) -> Iterator[None]:
    """Serve the enclosed request (and its batch items) for a token granting ``roles``."""
    token = _granted.set(frozenset(roles))
    try:
        yield
    finally:
        _granted.reset(token)


def current_roles() -> frozenset[str] | None:
    """The roles of the request being served; None outside ``granting`` (not known)."""
    return _granted.get()


def can_read(roles: Collection[str], kind: str) -> bool:
    """Whether an app granted ``roles`` may read objects of ``kind`` ("user", "group",
    "device", "servicePrincipal", "orgContact") in full, rather than as limited information
    (``@odata.type`` and ``id``, every other property null)."""
    try:
        readers = READERS[kind]
    except KeyError:
        raise ValueError(f"no permission table for directory object kind {kind!r}") from None
    return not readers.isdisjoint(roles)


def rule_for(method: str, path: str) -> tuple[Rule, re.Match[str]] | None:
    """The rule for a request (path with the /v1.0 prefix, no query), first match wins."""
    for rule in RULES:
        if rule.method == method.upper():
            match = rule.pattern.match(path)
            if match is not None:
                return rule, match
    return None


def denied() -> GraphRequestError:
    return GraphRequestError(403, DENIED_MESSAGE, DENIED_CODE)


def require(request: GraphRequest, tenant: EmulatorTenant) -> None:
    """Raise Graph's 403 unless the current roles allow ``request`` (a no-op outside
    ``granting``). A served route without a rule is an emulator bug: 500, never a pass."""
    roles = current_roles()
    if roles is None:
        return
    found = rule_for(request.method, request.path)
    if found is None:
        raise GraphRequestError(
            500,
            f"emulator bug: no permission rule for {request.method} {request.path} "
            "(add one to syncctl/emulator/permissions.py)",
            "generalException",
        )
    rule, match = found
    if rule.roles is None:
        return
    if roles.isdisjoint(rule.roles):
        raise denied()
    if rule.kinds is not None:
        kind = _deleted_kind(tenant, match["id"])
        if kind is not None and roles.isdisjoint(rule.kinds[kind]):
            raise denied()
    if rule.properties is not None:
        for name in _body_properties(request):
            if roles.isdisjoint(rule.properties.get(name, rule.writes)):
                raise denied()


def _deleted_kind(tenant: EmulatorTenant, object_id: str) -> str | None:
    if object_id in tenant.deleted_users:
        return "user"
    if object_id in tenant.deleted_groups:
        return "group"
    return None  # not in deleted items: the route answers 404


def _body_properties(request: GraphRequest) -> list[str]:
    try:
        body: Any = request.json_body()
    except GraphRequestError:
        return []  # the route itself answers 400
    return [str(name) for name in body] if isinstance(body, dict) else []
