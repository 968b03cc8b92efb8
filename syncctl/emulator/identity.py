"""The Microsoft identity platform parts MSAL needs: OpenID discovery and the v2.0 token
endpoint for the client-credentials grant (client secret, certificate assertion, federated
assertion), plus validation of the bearer tokens it issues.

The tenant holds several app registrations (``Application``), each with its own credentials
and the Graph application permissions an admin consented to. As in Entra, a token carries the
app's permissions in its ``roles`` claim as they were when it was issued; Graph decides from
that claim (``syncctl.emulator.permissions``), so changing an app's roles affects only tokens
issued afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from syncctl.emulator.responses import Response, encode_json, identity_error

GRAPH_RESOURCE = "https://graph.microsoft.com"
# Tokens for Blob Storage (the state backend against Azurite): issued, never accepted here.
STORAGE_RESOURCE = "https://storage.azure.com"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
# What syncctl needs and the default app is granted: every route syncctl calls accepts one of
# these (see permissions.RULES); Directory.Read.All is the one getByIds and
# /directoryObjects/{id} document, and it also reads deleted groups.
DEFAULT_ROLES = ("Directory.Read.All", "GroupMember.Read.All", "User.Read.All")
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]


@dataclass(frozen=True, slots=True)
class FederatedCredential:
    issuer: str
    subject: str
    public_key_pem: bytes | None  # when given, the assertion's signature must verify


@dataclass(eq=False)
class Application:
    """One app registration: its credentials and its granted application permissions."""

    client_id: str
    client_secret: str
    roles: tuple[str, ...]
    certificates: dict[str, PublicKeyTypes] = field(default_factory=dict)  # x5t / x5t#S256
    certificate_keys: list[PublicKeyTypes] = field(default_factory=list)
    federated: list[FederatedCredential] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Bearer:
    """What a request's Authorization header proves: Graph's 401 message, or (problem None)
    the roles its valid token grants."""

    problem: str | None
    roles: frozenset[str] = frozenset()


def _roles(roles: Iterable[str]) -> tuple[str, ...]:
    if isinstance(roles, str):
        raise TypeError("roles is a collection of permission names, not one string")
    names = tuple(dict.fromkeys(roles))
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"roles must be permission names, e.g. 'User.Read.All': {roles!r}")
    return names


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Identity:
    """Issues and checks tokens for the app registrations of one tenant. The first app is the
    default one (``client_id``, ``client_secret``), granted ``DEFAULT_ROLES``."""

    def __init__(self, base_url: str, tenant_id: str, domain: str) -> None:
        self.base_url = base_url
        self.tenant_id = tenant_id
        self.domain = domain
        self.token_lifetime = 3599
        # Access tokens are minted and checked against this clock, so a test can let a token
        # expire by moving it forward instead of sleeping.
        self.clock: Callable[[], float] = time.time
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._applications: dict[str, Application] = {}
        self._verified: dict[str, tuple[float, Bearer]] = {}  # token -> (exp, what it grants)
        self.default = self.add_application(DEFAULT_ROLES)

    @property
    def client_id(self) -> str:
        return self.default.client_id

    @property
    def client_secret(self) -> str:
        return self.default.client_secret

    # ---- configuration ---------------------------------------------------------------
    def add_application(
        self,
        roles: Iterable[str] = (),
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> Application:
        """Register an app granted exactly ``roles`` (application permissions)."""
        app = Application(
            client_id or str(uuid.uuid4()),
            client_secret or secrets.token_urlsafe(30),
            _roles(roles),
        )
        with self._lock:
            if app.client_id in self._applications:
                raise ValueError(f"an application {app.client_id} is already registered")
            self._applications[app.client_id] = app
        return app

    def application(self, client_id: str | None = None) -> Application:
        """The app registered as ``client_id`` (default: the default app); KeyError if none."""
        if client_id is None:
            return self.default
        with self._lock:
            return self._applications[client_id]

    def set_roles(self, roles: Iterable[str], client_id: str | None = None) -> None:
        """Grant an app exactly ``roles`` from now on; tokens already issued keep theirs."""
        app = self.application(client_id)
        app.roles = _roles(roles)

    def add_client_certificate(self, cert_pem: bytes, client_id: str | None = None) -> None:
        app = self.application(client_id)
        cert = x509.load_pem_x509_certificate(cert_pem)
        der = cert.public_bytes(serialization.Encoding.DER)
        key = cert.public_key()
        with self._lock:
            app.certificates[_b64url(hashlib.sha1(der).digest())] = key
            app.certificates[_b64url(hashlib.sha256(der).digest())] = key
            app.certificate_keys.append(key)

    def add_federated_credential(
        self,
        issuer: str,
        subject: str,
        public_key_pem: bytes | None = None,
        client_id: str | None = None,
    ) -> None:
        app = self.application(client_id)
        with self._lock:
            app.federated.append(FederatedCredential(issuer, subject, public_key_pem))

    # ---- endpoints -----------------------------------------------------------------------
    def _knows_tenant(self, tenant: str) -> bool:
        return tenant.casefold() in (self.tenant_id.casefold(), self.domain.casefold())

    def token_endpoint(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"

    def openid_configuration(self, tenant: str) -> Response:
        if not self._knows_tenant(tenant):
            return identity_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{self.base_url}/{self.tenant_id}"
        document = {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "oid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }
        return Response(
            200, encode_json(document), {"Content-Type": "application/json; charset=utf-8"}
        )

    def token(
        self, tenant: str, form: Mapping[str, str], basic_auth: tuple[str, str] | None
    ) -> Response:
        if not self._knows_tenant(tenant):
            return identity_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return identity_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type; only client_credentials is emulated.",
            )
        client_id = form.get("client_id") or (basic_auth[0] if basic_auth else "")
        with self._lock:
            app = self._applications.get(client_id)
        if app is None:
            return identity_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'.",
            )
        scope_error = self._check_scope(form.get("scope", ""))
        if scope_error is not None:
            return scope_error
        secret = form.get("client_secret") or (basic_auth[1] if basic_auth else None)
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
            problem = self._check_assertion(
                app, form.get("client_assertion_type", ""), form["client_assertion"]
            )
            if problem is not None:
                return problem
        else:
            return identity_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        lifetime = self.token_lifetime
        body = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.mint_token(
                lifetime, audience=_audience(form["scope"]), client_id=app.client_id
            ),
        }
        return Response(
            200,
            encode_json(body),
            {
                "Content-Type": "application/json; charset=utf-8",
                "Cache-Control": "no-store, no-cache",
            },
        )

    def _check_scope(self, scope: str) -> Response | None:
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return identity_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = scopes[0].removesuffix("/.default")
        if resource not in (GRAPH_RESOURCE, STORAGE_RESOURCE, self.base_url):
            return identity_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}.",
            )
        return None

    def _check_assertion(
        self, app: Application, assertion_type: str, assertion: str
    ) -> Response | None:
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
            return self._check_certificate_assertion(app, header, assertion)
        return self._check_federated_assertion(app, str(issuer), str(subject), claims, assertion)

    def _check_certificate_assertion(
        self, app: Application, header: Mapping[str, Any], assertion: str
    ) -> Response | None:
        thumbprint = header.get("x5t#S256") or header.get("x5t") or header.get("kid")
        with self._lock:
            key = app.certificates.get(str(thumbprint)) if thumbprint else None
            candidates = [key] if key is not None else list(app.certificate_keys)
        audiences = [self.token_endpoint(), f"{self.base_url}/{self.tenant_id}/v2.0"]
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
            "Client assertion contains an invalid signature "
            "(no registered certificate verifies it).",
        )

    def _check_federated_assertion(
        self,
        app: Application,
        issuer: str,
        subject: str,
        claims: Mapping[str, Any],
        assertion: str,
    ) -> Response | None:
        with self._lock:
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

    # ---- access tokens -----------------------------------------------------------------
    def mint_token(
        self, lifetime: int = 3600, audience: str = GRAPH_RESOURCE, client_id: str | None = None
    ) -> str:
        """A Graph access token for an app (default: the default app), carrying the app's
        roles, valid for at least ``lifetime`` seconds from now. NumericDates are whole
        seconds: ``exp`` rounds up (rounding down would cut up to a second off, so a 1-second
        token could be expired before its first use)."""
        app = self.application(client_id)
        now = self.clock()
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": math.floor(now),
            "nbf": math.floor(now),
            "exp": math.ceil(now + lifetime),
            "appid": app.client_id,
            "azp": app.client_id,
            "idtyp": "app",
            "oid": app.client_id,
            "sub": app.client_id,
            "tid": self.tenant_id,
            "roles": list(app.roles),
            "uti": secrets.token_urlsafe(8),
            "ver": "1.0",
        }
        return jwt.encode(claims, self._signing_key, algorithm="HS256")

    def check_bearer(self, authorization: str | None) -> str | None:
        """None when the header carries a valid token, else Graph's 401 message."""
        return self.authenticate(authorization).problem

    def authenticate(self, authorization: str | None) -> Bearer:
        """What an Authorization header proves: Graph's 401 message, or the roles the valid
        token's ``roles`` claim grants."""
        if not authorization:
            return Bearer("Access token is empty.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Bearer("Access token is empty.")
        now = self.clock()
        cached = self._verified.get(token)
        if cached is not None:
            # verified before: skip the signature check
            expires, bearer = cached
            return bearer if expires > now else Bearer(_EXPIRED)
        try:
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=["HS256"],
                audience=GRAPH_RESOURCE,
                # Lifetime is checked against self.clock below, not PyJWT's own clock.
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
        roles = claims.get("roles")
        listed = roles if isinstance(roles, list) else []
        bearer = Bearer(None, frozenset(r for r in listed if isinstance(r, str)))
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = (float(expires), bearer)
        return bearer


_EXPIRED = "Lifetime validation failed, the token is expired."


def _audience(scope: str) -> str:
    """The ``aud`` of a token for ``scope`` (already checked): storage's, else Graph's."""
    resource = scope.strip().removesuffix("/.default")
    return STORAGE_RESOURCE if resource == STORAGE_RESOURCE else GRAPH_RESOURCE
