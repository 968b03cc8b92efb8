"""How the token endpoint authenticates a client (its app registration): the client secret,
a client assertion, or for a public client's delegated grants nothing at all.

Two kinds of client assertion (a JWT in ``client_assertion``, type jwt-bearer): one signed
with a certificate registered for the app (``iss`` and ``sub`` the client id, ``aud`` the token
endpoint; certificate-credentials.md), or a token from another identity provider that one of
the app's federated credentials accepts (``iss``, ``sub``, ``aud`` api://AzureADTokenExchange;
workload-identity-federation.md). The error codes are reference-error-codes.md's.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jwt

from syncctl.emulator.responses import Response, identity_error

if TYPE_CHECKING:
    from syncctl.emulator.identity import Application

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]


def authenticate_client(
    app: Application,
    form: Mapping[str, str],
    basic_auth: tuple[str, str] | None,
    *,
    public: bool,
    lock: threading.Lock,
    audiences: list[str],
) -> Response | None:
    """None when the request authenticates ``app``: its secret or an assertion, or for a
    public client (public client flows allowed, delegated grants) nothing at all, which is
    then all it may send (reference-error-codes.md, AADSTS700025). ``lock`` guards the app's
    credentials; ``audiences``: what a certificate assertion's ``aud`` may be, the token
    endpoint first."""
    client_id = app.client_id
    secret = form.get("client_secret") or (basic_auth[1] if basic_auth else None)
    if public and (secret is not None or "client_assertion" in form):
        return identity_error(
            401,
            "invalid_client",
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be "
            "presented.",
        )
    if secret is not None:
        if not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
            return identity_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
    elif "client_assertion" in form:
        problem = check_assertion(
            app,
            form.get("client_assertion_type", ""),
            form["client_assertion"],
            lock=lock,
            audiences=audiences,
        )
        if problem is not None:
            return problem
    elif not public:
        return identity_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )
    return None


def check_assertion(
    app: Application,
    assertion_type: str,
    assertion: str,
    *,
    lock: threading.Lock,
    audiences: list[str],
) -> Response | None:
    """None when ``assertion`` (a client_assertion JWT) authenticates ``app``: signed by one of
    its certificates (issuer and subject the app itself), or a federated token its federated
    credentials accept."""
    if assertion_type != ASSERTION_TYPE:
        return identity_error(
            400,
            "invalid_request",
            90014,
            "The client_assertion_type is missing or not jwt-bearer.",
        )
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return identity_error(
            401,
            "invalid_client",
            50027,
            "JWT token is invalid or malformed (client_assertion).",
        )
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
    if (
        not isinstance(exp, int | float)
        or exp <= now
        or (isinstance(nbf, int | float) and nbf > now + 300)
    ):
        return identity_error(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )
    issuer, subject = claims.get("iss"), claims.get("sub")
    if issuer == app.client_id and subject == app.client_id:
        return _check_certificate_assertion(app, header, assertion, lock=lock, audiences=audiences)
    return _check_federated_assertion(app, str(issuer), str(subject), claims, assertion, lock=lock)


def _check_certificate_assertion(
    app: Application,
    header: Mapping[str, Any],
    assertion: str,
    *,
    lock: threading.Lock,
    audiences: list[str],
) -> Response | None:
    thumbprint = header.get("x5t#S256") or header.get("x5t") or header.get("kid")
    with lock:
        key = app.certificates.get(str(thumbprint)) if thumbprint else None
        candidates = [key] if key is not None else list(app.certificate_keys)
    for candidate in candidates:
        try:
            jwt.decode(
                assertion,
                key=candidate,  # type: ignore[arg-type]
                algorithms=ASSERTION_ALGORITHMS,
                audience=audiences,
                options={"require": ["exp", "aud", "iss", "sub", "jti"]},
            )
            return None
        except jwt.InvalidAudienceError:
            return identity_error(
                401,
                "invalid_client",
                700021,
                "Client assertion audience claim does not match Realm issuer; "
                f"expected {audiences[0]}.",
            )
        except jwt.MissingRequiredClaimError as exc:
            return identity_error(
                401,
                "invalid_client",
                50027,
                f"Client assertion is missing claim '{exc.claim}'.",
            )
        except jwt.PyJWTError:
            continue
    return identity_error(
        401,
        "invalid_client",
        700027,
        "Client assertion contains an invalid signature (no registered certificate verifies it).",
    )


def _check_federated_assertion(
    app: Application,
    issuer: str,
    subject: str,
    claims: Mapping[str, Any],
    assertion: str,
    *,
    lock: threading.Lock,
) -> Response | None:
    with lock:
        matches = [f for f in app.federated if f.issuer == issuer and f.subject == subject]
    if not matches:
        return identity_error(
            400,
            "invalid_request",
            70021,
            "No matching federated identity record found for presented assertion. "
            f"Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'.",
        )
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if FEDERATION_AUDIENCE not in audiences:
        return identity_error(
            400,
            "invalid_request",
            700212,
            "No matching federated identity record found for presented assertion audience "
            f"'{audience}'.",
        )
    credential = matches[0]
    if credential.public_key_pem is not None:
        try:
            jwt.decode(
                assertion,
                key=credential.public_key_pem,
                algorithms=ASSERTION_ALGORITHMS,
                audience=FEDERATION_AUDIENCE,
            )
        except jwt.PyJWTError:
            return identity_error(
                401, "invalid_client", 700027, "Client assertion contains an invalid signature."
            )
    return None
