"""The Microsoft identity platform parts MSAL needs: OpenID discovery and the v2.0 token
endpoint for the client-credentials grant (client secret, certificate assertion, federated
assertion), plus validation of the bearer tokens it issues.

The tenant holds several app registrations (``Application``), each with its own credentials
and the Graph application permissions an admin consented to. As in Entra, a token carries the
app's permissions in its ``roles`` claim as they were when it was issued; Graph decides from
that claim (``syncctl.emulator.permissions``), so changing an app's roles affects only tokens
issued afterwards.

Interactive sign-in (device code, authorization code, refresh tokens) lives in
``syncctl.emulator.delegated``; ``token`` authenticates the client for those grants (a public
client sends no secret) and hands them over. Graph reads a user token's ``scp`` as it reads an
app token's ``roles``.

Two parts live in their own modules: ``client_auth`` (how the token endpoint authenticates a
client: secret, certificate or federated assertion) and ``bearer`` (checking the tokens issued
here and what they grant). This module holds the app registrations and the endpoints.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from syncctl.emulator.bearer import GRAPH_RESOURCE, Bearer, verify_bearer
from syncctl.emulator.client_auth import authenticate_client
from syncctl.emulator.delegated import DELEGATED_GRANTS
from syncctl.emulator.responses import Response, encode_json, identity_error

if TYPE_CHECKING:
    from syncctl.emulator.delegated import DelegatedFlows

# Tokens for Blob Storage (the state backend against Azurite): issued, never accepted here.
STORAGE_RESOURCE = "https://storage.azure.com"
# What syncctl needs and the default app is granted: every route syncctl calls accepts one of
# these (see permissions.RULES); Directory.Read.All is the one getByIds and
# /directoryObjects/{id} document, and it also reads deleted groups.
DEFAULT_ROLES = ("Directory.Read.All", "GroupMember.Read.All", "User.Read.All")


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
    # "Allow public client flows": device code and authorization code redemption without a
    # client secret or assertion (AADSTS7000218 otherwise).
    public_client: bool = False


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
        # Set by the server once the tenant is known: redeems the delegated grants.
        self.delegated: DelegatedFlows | None = None
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
        public_client: bool = False,
    ) -> Application:
        """Register an app granted exactly ``roles`` (application permissions); with
        ``public_client`` its public client flows are allowed (interactive sign-in)."""
        app = Application(
            client_id or str(uuid.uuid4()),
            client_secret or secrets.token_urlsafe(30),
            _roles(roles),
            public_client=public_client,
        )
        with self._lock:
            if app.client_id in self._applications:
                raise ValueError(f"an application {app.client_id} is already registered")
            self._applications[app.client_id] = app
        return app

    def find_application(self, client_id: str) -> Application | None:
        with self._lock:
            return self._applications.get(client_id)

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

    def knows_tenant(self, tenant: str) -> bool:
        """Whether ``tenant`` (id or domain) is this tenant: the authority's path segment."""
        return self._knows_tenant(tenant)

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
        grant_type = form.get("grant_type")
        delegated = self.delegated is not None and grant_type in DELEGATED_GRANTS
        if grant_type != "client_credentials" and not delegated:
            return identity_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type; the emulator serves "
                "client_credentials, authorization_code, refresh_token and device_code.",
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
        if delegated:
            assert self.delegated is not None
            problem = self._authenticate_client(app, form, basic_auth, public=app.public_client)
            return problem if problem is not None else self.delegated.redeem(app, form)
        scope_error = self._check_scope(form.get("scope", ""))
        if scope_error is not None:
            return scope_error
        problem = self._authenticate_client(app, form, basic_auth, public=False)
        if problem is not None:
            return problem
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

    def _authenticate_client(
        self,
        app: Application,
        form: Mapping[str, str],
        basic_auth: tuple[str, str] | None,
        *,
        public: bool,
    ) -> Response | None:
        """None when the request authenticates ``app`` (``client_auth.authenticate_client``)."""
        audiences = [self.token_endpoint(), f"{self.base_url}/{self.tenant_id}/v2.0"]
        return authenticate_client(
            app, form, basic_auth, public=public, lock=self._lock, audiences=audiences
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
        return self.sign(claims)

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A token Graph accepts if its claims do (the delegated flows' user tokens too)."""
        return jwt.encode(dict(claims), self._signing_key, algorithm="HS256")

    def check_bearer(self, authorization: str | None) -> str | None:
        """None when the header carries a valid token, else Graph's 401 message."""
        return self.authenticate(authorization).problem

    def authenticate(self, authorization: str | None) -> Bearer:
        """What an Authorization header proves: Graph's 401 message, or what the valid token
        grants (``bearer.verify_bearer``)."""
        return verify_bearer(
            authorization,
            key=self._signing_key,
            clock=self.clock,
            verified=self._verified,
            lock=self._lock,
        )


def _audience(scope: str) -> str:
    """The ``aud`` of a token for ``scope`` (already checked): storage's, else Graph's."""
    resource = scope.strip().removesuffix("/.default")
    return STORAGE_RESOURCE if resource == STORAGE_RESOURCE else GRAPH_RESOURCE
