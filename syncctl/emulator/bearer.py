"""What a Graph request's Authorization header proves: checking the bearer tokens the
emulator's token endpoint issued (signature, audience, lifetime) and reading what they grant,
an app token's ``roles`` or a user token's ``scp``.

Tokens are signed with the identity's HS256 key and checked against its clock (tests move it
instead of waiting); Graph's 401 messages are the ones Graph sends for each problem.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import jwt

# The audience Graph accepts (tokens for other resources are issued, never accepted here).
GRAPH_RESOURCE = "https://graph.microsoft.com"


@dataclass(frozen=True, slots=True)
class Bearer:
    """What a request's Authorization header proves: Graph's 401 message, or (problem None)
    the roles its valid token grants."""

    problem: str | None
    roles: frozenset[str] = frozenset()


def verify_bearer(
    authorization: str | None,
    *,
    key: bytes,
    clock: Callable[[], float],
    verified: dict[str, tuple[float, Bearer]],
    lock: threading.Lock,
) -> Bearer:
    """What an Authorization header proves: Graph's 401 message, or the roles the valid
    token's ``roles`` claim grants; for a user's token (``scp``, no ``roles``) its
    delegated scopes, which Graph then checks like application permissions of the same
    name (a simplification: docs/emulator.md, "Differences"). ``key`` signed the tokens;
    lifetimes are checked against ``clock``; ``verified`` caches the tokens checked before
    (guarded by ``lock``)."""
    if not authorization:
        return Bearer("Access token is empty.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return Bearer("Access token is empty.")
    now = clock()
    cached = verified.get(token)
    if cached is not None:
        # verified before: skip the signature check
        expires, bearer = cached
        return bearer if expires > now else Bearer(_EXPIRED)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=GRAPH_RESOURCE,
            # Lifetime is checked against clock below, not PyJWT's own clock.
            options={
                "require": ["exp", "aud", "tid"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        return Bearer("Access token validation failure. Invalid signature.")
    except jwt.DecodeError:
        return Bearer("IDX14100: JWT is not well formed, there are no dots (.).")
    except jwt.PyJWTError:
        return Bearer("Access token validation failure. Invalid audience.")
    expires, not_before = claims["exp"], claims.get("nbf", 0)
    if not isinstance(expires, int | float) or expires <= now:
        return Bearer(_EXPIRED)
    if not isinstance(not_before, int | float) or not_before > now:
        return Bearer("Lifetime validation failed, the token is not yet valid.")
    roles, scopes = claims.get("roles"), claims.get("scp")
    if isinstance(roles, list):
        listed = roles
    elif isinstance(scopes, str):
        listed = scopes.split()
    else:
        listed = []
    bearer = Bearer(None, frozenset(r for r in listed if isinstance(r, str)))
    with lock:
        if len(verified) > 10_000:
            verified.clear()
        verified[token] = (float(expires), bearer)
    return bearer


_EXPIRED = "Lifetime validation failed, the token is expired."
