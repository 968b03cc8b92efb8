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

ODATA_TYPE = {"user": "#microsoft.graph.user", "group": "#microsoft.graph.group"}


def properties_of(kind: str) -> frozenset[str]:
    return USER_PROPERTIES if kind == "user" else GROUP_PROPERTIES


def defaults_of(kind: str) -> tuple[str, ...]:
    return USER_DEFAULT if kind == "user" else GROUP_DEFAULT
