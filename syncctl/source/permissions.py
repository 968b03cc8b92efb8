"""Which Microsoft Graph application permission each request needs: the one table syncctl
names permissions from, both when Graph answers 403 and in ``validate --online``.

Each row is one Graph API page's Permissions table (Application row), e.g.
https://learn.microsoft.com/graph/api/directoryobject-getbyids. ``least`` is the
least-privileged application permission (any one of several suffices); ``also`` are the
higher-privileged ones that grant the same access, so a token holding one of them is not
reported as lacking ``least``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from syncctl.policy.model import Policy, WritebackMode

DOCS = "https://learn.microsoft.com/graph/api/"
READ_ALL = ("Directory.Read.All", "Directory.ReadWrite.All")


@dataclass(frozen=True, slots=True)
class Endpoint:
    page: str  # the doc page's name, e.g. "group-list-members"
    method: str
    pattern: re.Pattern[str]  # matches the path relative to the v1.0 root, query excluded
    least: tuple[str, ...]  # least-privileged application permission(s); any one suffices
    also: tuple[str, ...]  # higher-privileged permissions that grant it too
    needed_for: str  # why syncctl calls it, completing "needed to ..."

    @property
    def url(self) -> str:
        return DOCS + self.page

    def granted_by(self, roles: Collection[str]) -> bool:
        return any(role in roles for role in (*self.least, *self.also))

    def lacking(self) -> str:
        return " or ".join(self.least)


def _path(expression: str) -> re.Pattern[str]:
    return re.compile(f"^{expression}$", re.IGNORECASE)


_ID = r"[^/]+"
_CAST = r"(/microsoft\.graph\.[a-z]+)?"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "user-list",
        "GET",
        _path(r"/users"),
        ("User.Read.All",),
        ("User.ReadWrite.All", *READ_ALL),
        "to list users",
    ),
    Endpoint(
        "group-list",
        "GET",
        _path(r"/groups"),
        ("GroupMember.Read.All",),
        ("Group.Read.All", "Group.ReadWrite.All", *READ_ALL),
        "to find the policy's scope and provisioned groups",
    ),
    Endpoint(
        "group-list-members",
        "GET",
        _path(rf"/groups/{_ID}/members{_CAST}"),
        ("GroupMember.Read.All",),
        ("Group.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", *READ_ALL),
        "to read the members of the policy's groups",
    ),
    Endpoint(
        "group-list-transitivemembers",
        "GET",
        _path(rf"/groups/{_ID}/transitiveMembers{_CAST}"),
        ("GroupMember.Read.All",),
        ("Group.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", *READ_ALL),
        "to read the nested members of the policy's groups",
    ),
    Endpoint(
        "directoryobject-getbyids",
        "POST",
        _path(r"/directoryObjects/getByIds"),
        ("Directory.Read.All",),
        ("Directory.ReadWrite.All",),
        "to tell why a managed user or group left scope",
    ),
    Endpoint(
        # The page has one table per type: users need User.Read.All, groups Group.Read.All;
        # syncctl asks for ids of either type, so only a permission covering both suffices.
        "directory-deleteditems-get",
        "GET",
        _path(rf"/directory/deletedItems/{_ID}"),
        ("Directory.Read.All",),
        ("Directory.ReadWrite.All",),
        "to tell a soft-deleted managed user or group from a hard-deleted one",
    ),
    Endpoint(
        "directoryobject-get",
        "GET",
        _path(rf"/directoryObjects/{_ID}"),
        ("Directory.Read.All",),
        ("Directory.ReadWrite.All",),
        "to confirm a managed user or group was hard-deleted",
    ),
    Endpoint(
        "user-delta",
        "GET",
        _path(r"/users/delta"),
        ("User.Read.All",),
        ("User.ReadWrite.All", *READ_ALL),
        "to read changes to users",
    ),
    Endpoint(
        "group-delta",
        "GET",
        _path(r"/groups/delta"),
        ("GroupMember.Read.All",),
        ("Group.Read.All", "Group.ReadWrite.All", *READ_ALL),
        "to read changes to groups and their members",
    ),
    Endpoint(
        "user-update",
        "PATCH",
        _path(rf"/users/{_ID}"),
        ("User.ReadWrite.All",),
        ("User.ReadUpdate.All", "Directory.ReadWrite.All"),  # ReadUpdate: user-update's newer least
        "to write attributes back to Entra users",
    ),
)

# Reading a user's properties through a member list is not the member list's own permission:
# without one of these, Graph returns each user "with limited information" (id and
# @odata.type only, properties null) and a 200 (permissions-overview, "Limited information
# returned for inaccessible member objects").
USER_PROPERTIES = Endpoint(
    "user-get",
    "GET",
    _path(rf"/users/{_ID}"),
    ("User.Read.All",),
    ("User.ReadWrite.All", *READ_ALL),
    "to read the attributes of the users in scope (without it Graph returns them with "
    "limited information)",
)


# The same request with a password in it: user-update's "Permissions for specific scenarios"
# names User-PasswordProfile.ReadWrite.All the least privileged permission for
# ``passwordProfile``; User.ReadWrite.All also covers it, Directory.ReadWrite.All does not
# ("does not allow the app to ... reset user passwords", permissions-reference). In app-only
# access the app must also hold at least the User Administrator Microsoft Entra role, and
# Privileged Authentication Administrator to reset the password of a user in a privileged
# administrator role (``PASSWORD_ROLES``): directory roles, not application permissions, so
# neither a token's ``roles`` nor this table can tell.
PASSWORD_PROFILE = Endpoint(
    "user-update",
    "PATCH",
    _path(rf"/users/{_ID}"),
    ("User-PasswordProfile.ReadWrite.All",),
    ("User.ReadWrite.All",),
    "to set the passwords of Entra users (passwordProfile)",
)
PASSWORD_ROLES = (
    "the app also needs at least the User Administrator Microsoft Entra role, and Privileged "
    "Authentication Administrator for users in privileged administrator roles"
)


def endpoint_for(method: str, path: str) -> Endpoint | None:
    """The table row of a request (``path`` relative to the v1.0 root, query ignored)."""
    bare = path.split("?", 1)[0].rstrip("/")
    for endpoint in ENDPOINTS:
        if endpoint.method == method.upper() and endpoint.pattern.match(bare):
            return endpoint
    return None


def by_page(page: str) -> Endpoint:
    for endpoint in (*ENDPOINTS, USER_PROPERTIES):
        if endpoint.page == page:
            return endpoint
    raise KeyError(page)


def lacks_message(endpoint: Endpoint) -> str:
    return (
        f"the app registration lacks {endpoint.lacking()} (grant it and admin-consent; "
        f"needed {endpoint.needed_for})"
    )


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    endpoints: tuple[Endpoint, ...]


def features(policy: Policy) -> tuple[Feature, ...]:
    """What a policy makes syncctl call, grouped by the feature that needs it."""
    members = by_page(
        "group-list-transitivemembers" if policy.source.nested else "group-list-members"
    )
    needed = [
        Feature("reading scope", (by_page("group-list"), members, USER_PROPERTIES)),
        Feature(
            "removal reasons",
            (
                by_page("directoryobject-getbyids"),
                by_page("directory-deleteditems-get"),
                by_page("directoryobject-get"),
            ),
        ),
    ]
    writeback = policy.writeback
    if writeback is not None:
        # Report mode only reads: the write permissions are needed for what is enforced.
        enforced = WritebackMode.ENFORCE
        writes = []
        if writeback.attributes and writeback.mode is enforced:
            writes.append(by_page("user-update"))
        if any(entry.mode is enforced for entry in writeback.passwords):
            writes.append(PASSWORD_PROFILE)
        if writes:
            needed.append(Feature("writeback", tuple(writes)))
    return tuple(needed)


def missing(policy: Policy, roles: Collection[str]) -> list[str]:
    """One line per application permission the token's ``roles`` lack, naming the feature
    that needs it; each permission once, at the first feature that needs it."""
    lines: list[str] = []
    named: set[str] = set()
    for feature in features(policy):
        for endpoint in _unique(feature.endpoints):
            if endpoint.granted_by(roles) or endpoint.lacking() in named:
                continue
            named.add(endpoint.lacking())
            lines.append(
                f"the app registration lacks the application permission {endpoint.lacking()}, "
                f"which {feature.name} needs {endpoint.needed_for} ({endpoint.url}); grant "
                "it and admin-consent"
            )
    return lines


def _unique(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    seen: list[Endpoint] = []
    for endpoint in endpoints:
        if endpoint not in seen:
            seen.append(endpoint)
    return seen


# What an interactive sign-in always asks for: reading users and the policy's groups. The
# delegated permissions carry the same names as the application ones (permissions-reference).
DELEGATED_DEFAULTS = ("User.Read.All", "GroupMember.Read.All")


def delegated_scopes(policy: Policy) -> tuple[str, ...]:
    """The delegated permissions (bare names, e.g. ``User.Read.All``) an interactive sign-in
    asks for on behalf of ``policy``: the defaults, then the least-privileged permission of
    every request its features make (the same table as the application permissions, so the
    two lists cannot drift apart), then ``tenant.credential.scopes``; each once, in order."""
    from syncctl.policy.model import InteractiveCredential

    names = dict.fromkeys(DELEGATED_DEFAULTS)
    for feature in features(policy):
        for endpoint in feature.endpoints:
            names.setdefault(endpoint.least[0])
    credential = policy.tenant.credential
    if isinstance(credential, InteractiveCredential):
        names.update(dict.fromkeys(credential.scopes))
    return tuple(names)
