"""Reading an access token's claims (never verifying them: Graph does): its tenant, the
permissions it carries, and Entra's AADSTS code of a refused sign-in."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from syncctl.policy.model import is_object_id

_AADSTS = re.compile(r"\bAADSTS\d+\b")


def token_claims(token: str) -> dict[str, Any] | None:
    """The access token's payload, decoded but not verified: only for naming things."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def token_tenant(token: str) -> str | None:
    claims = token_claims(token)
    tenant = claims.get("tid") if claims is not None else None
    return tenant if isinstance(tenant, str) and is_object_id(tenant) else None


def token_roles(token: str) -> frozenset[str] | None:
    """The application permissions an app-only token's ``roles`` claim lists, or None when
    the token has no readable ``roles`` claim. Read, never trusted: Graph enforces the real
    permissions; this only lets ``validate --online`` name a missing one before a run fails.
    An app granted no application permission at all gets a token without the claim, so
    None cannot be told apart from "none granted" and is reported as unchecked."""
    claims = token_claims(token)
    roles = claims.get("roles") if claims is not None else None
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        return None
    return frozenset(roles)


def token_scopes(token: str) -> frozenset[str] | None:
    """The delegated permissions a user token's ``scp`` claim lists (space-separated, e.g.
    ``User.Read.All GroupMember.Read.All``), or None without a readable claim. Read, never
    trusted, like ``token_roles``."""
    claims = token_claims(token)
    scopes = claims.get("scp") if claims is not None else None
    if not isinstance(scopes, str):
        return None
    return frozenset(scopes.split())


def aadsts_code(answer: dict[str, Any]) -> str | None:
    """Entra's code for a refused sign-in (``AADSTS7000215``): from ``error_codes`` (numbers),
    else from the start of ``error_description``; None when the answer has neither (a
    managed identity endpoint, another identity provider)."""
    codes = answer.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return f"AADSTS{codes[0]}"
    description = answer.get("error_description")
    found = _AADSTS.match(description.strip()) if isinstance(description, str) else None
    return found.group(0) if found else None
