"""Which Graph properties the emulator knows, returns by default, and lets clients filter on.

Taken from the v1.0 `user` and `group` resource pages and `user-list` (default properties).
"""

from __future__ import annotations

USER_PROPERTIES: frozenset[str] = frozenset(
    {
        "id",
        "accountEnabled",
        "businessPhones",
        "city",
        "companyName",
        "country",
        "createdDateTime",
        "creationType",
        "deletedDateTime",
        "department",
        "displayName",
        "employeeId",
        "employeeType",
        "externalUserState",
        "givenName",
        "jobTitle",
        "lastPasswordChangeDateTime",
        "mail",
        "mailNickname",
        "mobilePhone",
        "officeLocation",
        "onPremisesImmutableId",
        "onPremisesSyncEnabled",
        "otherMails",
        "passwordProfile",
        "preferredLanguage",
        "proxyAddresses",
        "surname",
        "usageLocation",
        "userPrincipalName",
        "userType",
    }
)

# `GET /users` without $select returns exactly these (user-list.md).
USER_DEFAULT: tuple[str, ...] = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)

GROUP_PROPERTIES: frozenset[str] = frozenset(
    {
        "id",
        "classification",
        "createdDateTime",
        "deletedDateTime",
        "description",
        "displayName",
        "expirationDateTime",
        "groupTypes",
        "isAssignableToRole",
        "mail",
        "mailEnabled",
        "mailNickname",
        "membershipRule",
        "membershipRuleProcessingState",
        "onPremisesSyncEnabled",
        "proxyAddresses",
        "renewedDateTime",
        "securityEnabled",
        "securityIdentifier",
        "visibility",
    }
)

GROUP_DEFAULT: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesSyncEnabled",
    "proxyAddresses",
    "renewedDateTime",
    "securityEnabled",
    "securityIdentifier",
    "visibility",
)

# Properties a client may never write (PATCH answers 400).
READ_ONLY: frozenset[str] = frozenset(
    {"id", "createdDateTime", "deletedDateTime", "lastPasswordChangeDateTime", "securityIdentifier"}
)

# $filter support without advanced query headers (aad-advanced-queries.md property tables).
USER_FILTERABLE: frozenset[str] = frozenset(
    {
        "id",
        "accountEnabled",
        "displayName",
        "givenName",
        "surname",
        "mail",
        "mailNickname",
        "userPrincipalName",
        "userType",
        "jobTitle",
        "employeeId",
        "onPremisesImmutableId",
        "createdDateTime",
        "externalUserState",
        "creationType",
        "usageLocation",
        "country",
        "city",
    }
)
USER_FILTERABLE_ADVANCED: frozenset[str] = frozenset(
    {"department", "companyName", "officeLocation", "employeeType", "preferredLanguage"}
)
GROUP_FILTERABLE: frozenset[str] = frozenset(
    {
        "id",
        "displayName",
        "mail",
        "mailEnabled",
        "mailNickname",
        "securityEnabled",
        "createdDateTime",
        "isAssignableToRole",
        "onPremisesSyncEnabled",
        "groupTypes",
    }
)
GROUP_FILTERABLE_ADVANCED: frozenset[str] = frozenset(
    {"description", "visibility", "classification"}
)

# $search works on these tokenized properties (aad-advanced-queries.md).
SEARCHABLE: frozenset[str] = frozenset(
    {
        "displayName",
        "description",
        "mail",
        "userPrincipalName",
        "givenName",
        "surname",
        "mailNickname",
    }
)

# Group members that are neither users nor groups (group-list-transitivemembers.md: "users,
# devices, organizational contacts, and other groups"; service principals too). Only the
# properties Microsoft shows for them in member lists (device.md, serviceprincipal.md,
# orgcontact.md); the default set is what an unselected member list carries.
DEVICE_DEFAULT: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "accountEnabled",
    "approximateLastSignInDateTime",
    "createdDateTime",
    "deviceId",
    "displayName",
    "isCompliant",
    "isManaged",
    "operatingSystem",
    "operatingSystemVersion",
    "trustType",
)
SERVICE_PRINCIPAL_DEFAULT: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "accountEnabled",
    "appDisplayName",
    "appId",
    "appOwnerOrganizationId",
    "displayName",
    "servicePrincipalNames",
    "servicePrincipalType",
    "tags",
)
ORG_CONTACT_DEFAULT: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "businessPhones",
    "city",
    "companyName",
    "country",
    "department",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mailNickname",
    "proxyAddresses",
    "surname",
)
DEVICE_PROPERTIES = frozenset(DEVICE_DEFAULT)
SERVICE_PRINCIPAL_PROPERTIES = frozenset(SERVICE_PRINCIPAL_DEFAULT)
ORG_CONTACT_PROPERTIES = frozenset(ORG_CONTACT_DEFAULT)

# Kinds a member list can hold; "device", "servicePrincipal" and "orgContact" have no
# collection routes of their own in the emulator, only membership.
MEMBER_KINDS: tuple[str, ...] = ("user", "group", "device", "servicePrincipal", "orgContact")
OTHER_KINDS: tuple[str, ...] = ("device", "servicePrincipal", "orgContact")

ODATA_TYPE = {kind: f"#microsoft.graph.{kind}" for kind in MEMBER_KINDS}

# user.md: properties on the user resource that live outside the directory store (SharePoint
# profile); selecting one answers 501 NotImplemented (delta-query-overview.md shows
# `$select=skills` -> 501 "This operation target is not yet supported.").
USER_PROFILE_ONLY: frozenset[str] = frozenset(
    {
        "aboutMe",
        "birthday",
        "hireDate",
        "interests",
        "mySite",
        "pastProjects",
        "preferredName",
        "responsibilities",
        "schools",
        "skills",
    }
)

_PROPERTIES: dict[str, frozenset[str]] = {
    "user": USER_PROPERTIES,
    "group": GROUP_PROPERTIES,
    "device": DEVICE_PROPERTIES,
    "servicePrincipal": SERVICE_PRINCIPAL_PROPERTIES,
    "orgContact": ORG_CONTACT_PROPERTIES,
}
_DEFAULTS: dict[str, tuple[str, ...]] = {
    "user": USER_DEFAULT,
    "group": GROUP_DEFAULT,
    "device": DEVICE_DEFAULT,
    "servicePrincipal": SERVICE_PRINCIPAL_DEFAULT,
    "orgContact": ORG_CONTACT_DEFAULT,
}

# What an uncast member list (a directoryObject collection) lets a client $select.
DIRECTORY_OBJECT_PROPERTIES: frozenset[str] = frozenset().union(*_PROPERTIES.values())


def properties_of(kind: str) -> frozenset[str]:
    return _PROPERTIES[kind]


def defaults_of(kind: str) -> tuple[str, ...]:
    return _DEFAULTS[kind]
