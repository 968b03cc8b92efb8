"""What a signed-in user's tokens say, and which scopes a delegated request may ask for.

The claims of the access token Graph reads (``scp``: the granted Graph scopes), of the OpenID
Connect id_token (id-token-claims-reference.md) and MSAL's client_info (``{"uid", "utid"}``,
base64url), built here and signed by the caller; ``check_scopes`` reads a request's ``scope``
parameter the way Entra does. Pure functions: the grants that redeem codes and refresh tokens
live in ``devicecode``, ``authcode`` and ``delegated``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from syncctl.emulator.responses import Response, identity_error

if TYPE_CHECKING:
    from syncctl.emulator.identity import Application

GRAPH_RESOURCE = "https://graph.microsoft.com"
# OpenID Connect scopes: they shape the answer (id_token, refresh_token), they are no Graph
# permission (permissions-consent-overview.md, "OpenID Connect scopes").
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
ID_TOKEN_LIFETIME = 3600
_PERMISSION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class Scopes:
    """A request's scope parameter, checked: the Graph permissions it asks for (as the client
    spelled them, for the answer's ``scope``; bare names for ``scp``) and its OIDC scopes."""

    requested: tuple[str, ...]
    permissions: tuple[str, ...]
    oidc: tuple[str, ...]


def check_scopes(scope: str, *, base_url: str, tenant_id: str) -> Scopes | Response:
    """A delegated request's scopes: OIDC ones, and Graph permissions written bare
    (``User.Read.All``, which Entra reads as Graph's) or with Graph's (or the emulator's,
    ``base_url``) resource URI. Any permission-like name is accepted (the emulator has no
    per-app list of requested permissions); another resource is refused."""
    requested = tuple(dict.fromkeys(scope.split()))
    permissions: list[str] = []
    oidc: list[str] = []
    resources: set[str] = set()
    for item in requested:
        if item in OIDC_SCOPES:
            oidc.append(item)
            continue
        resource, _, name = item.rpartition("/")
        if resource and resource not in (GRAPH_RESOURCE, base_url):
            return identity_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant "
                f"named {tenant_id}.",
            )
        resources.add(GRAPH_RESOURCE)
        if name == ".default" and resource:
            continue
        if not _PERMISSION_NAME.match(name):
            return identity_error(
                400,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid. The scope "
                f"{item} is not valid.",
            )
        permissions.append(name)
    if not permissions and not any(s.endswith("/.default") for s in requested) and not oidc:
        return identity_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    return Scopes(requested, tuple(dict.fromkeys(permissions)), tuple(oidc))


def access_token_claims(
    app: Application,
    user_id: str,
    *,
    upn: str,
    name: str,
    granted: tuple[str, ...],
    tenant_id: str,
    now: float,
    lifetime: int,
) -> dict[str, Any]:
    """A user's Graph access token for ``app``, granting ``granted`` in ``scp``."""
    return {
        "aud": GRAPH_RESOURCE,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": math.floor(now),
        "nbf": math.floor(now),
        "exp": math.ceil(now + lifetime),
        "appid": app.client_id,
        "idtyp": "user",
        "name": name,
        "oid": user_id,
        "scp": " ".join(granted),
        "sub": pairwise(app.client_id, user_id),
        "tid": tenant_id,
        "unique_name": upn,
        "upn": upn,
        "uti": secrets.token_urlsafe(8),
        "ver": "1.0",
    }


def id_token_claims(
    app: Application,
    user_id: str,
    *,
    upn: str,
    name: str,
    now: float,
    nonce: str | None,
    base_url: str,
    tenant_id: str,
) -> dict[str, Any]:
    """The id_token of a sign-in that asked for ``openid`` (audience: the app)."""
    claims: dict[str, Any] = {
        "aud": app.client_id,
        "iss": f"{base_url}/{tenant_id}/v2.0",  # openid-configuration's
        "iat": math.floor(now),
        "nbf": math.floor(now),
        "exp": math.ceil(now + ID_TOKEN_LIFETIME),
        "name": name,
        "oid": user_id,
        "preferred_username": upn,
        "sub": pairwise(app.client_id, user_id),
        "tid": tenant_id,
        "uti": secrets.token_urlsafe(8),
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return claims


def client_info(user_id: str, tenant_id: str) -> str:
    """MSAL's client_info (it keys its token cache by it)."""
    info = {"uid": user_id, "utid": tenant_id}
    return b64url(json.dumps(info).encode())


def pairwise(client_id: str, user_id: str) -> str:
    """``sub``: unique per user and app (id-token-claims-reference.md, "pairwise")."""
    return b64url(hashlib.sha256(f"{client_id}:{user_id}".encode()).digest())


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
