"""The Microsoft identity platform parts MSAL needs: OpenID discovery and the v2.0 token
endpoint for the client-credentials grant (client secret, certificate assertion, federated
assertion), plus validation of the bearer tokens it issues.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
APP_ROLES = ("Directory.Read.All", "GroupMember.Read.All", "User.Read.All")
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]


@dataclass(frozen=True, slots=True)
class FederatedCredential:
    issuer: str
    subject: str
    public_key_pem: bytes | None  # when given, the assertion's signature must verify


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Identity:
    """Issues and checks tokens for one app registration in one tenant."""

    def __init__(self, base_url: str, tenant_id: str, domain: str) -> None:
        self.base_url = base_url
        self.tenant_id = tenant_id
        self.domain = domain
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_urlsafe(30)
        self.token_lifetime = 3599
        # Access tokens are minted and checked against this clock, so a test can let a token
        # expire by moving it forward instead of sleeping.
        self.clock: Callable[[], float] = time.time
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._certificates: dict[str, PublicKeyTypes] = {}  # x5t or x5t#S256 -> key
        self._certificate_keys: list[PublicKeyTypes] = []
        self._federated: list[FederatedCredential] = []
        self._verified: dict[str, float] = {}  # token -> exp, for tokens already checked

    # ---- configuration ---------------------------------------------------------------
    def add_client_certificate(self, cert_pem: bytes) -> None:
        cert = x509.load_pem_x509_certificate(cert_pem)
        der = cert.public_bytes(serialization.Encoding.DER)
        key = cert.public_key()
        with self._lock:
            self._certificates[_b64url(hashlib.sha1(der).digest())] = key
            self._certificates[_b64url(hashlib.sha256(der).digest())] = key
            self._certificate_keys.append(key)

    def add_federated_credential(
        self, issuer: str, subject: str, public_key_pem: bytes | None = None
    ) -> None:
        with self._lock:
            self._federated.append(FederatedCredential(issuer, subject, public_key_pem))

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
        if client_id != self.client_id:
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
            if not hmac.compare_digest(secret.encode(), self.client_secret.encode()):
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
                form.get("client_assertion_type", ""), form["client_assertion"]
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
            "access_token": self.mint_token(lifetime, audience=_audience(form["scope"])),
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

    def _check_assertion(self, assertion_type: str, assertion: str) -> Response | None:
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
        if issuer == self.client_id and subject == self.client_id:
            return self._check_certificate_assertion(header, assertion)
        return self._check_federated_assertion(str(issuer), str(subject), claims, assertion)

    def _check_certificate_assertion(
        self, header: Mapping[str, Any], assertion: str
    ) -> Response | None:
        thumbprint = header.get("x5t#S256") or header.get("x5t") or header.get("kid")
        with self._lock:
            key = self._certificates.get(str(thumbprint)) if thumbprint else None
            candidates = [key] if key is not None else list(self._certificate_keys)
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
        self, issuer: str, subject: str, claims: Mapping[str, Any], assertion: str
    ) -> Response | None:
        with self._lock:
            matches = [f for f in self._federated if f.issuer == issuer and f.subject == subject]
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
    def mint_token(self, lifetime: int = 3600, audience: str = GRAPH_RESOURCE) -> str:
        """A Graph access token valid for at least ``lifetime`` seconds from now. NumericDates
        are whole seconds: ``exp`` rounds up (rounding down would cut up to a second off, so a
        1-second token could be expired before its first use)."""
        now = self.clock()
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": math.floor(now),
            "nbf": math.floor(now),
            "exp": math.ceil(now + lifetime),
            "appid": self.client_id,
            "azp": self.client_id,
            "idtyp": "app",
            "oid": self.client_id,
            "sub": self.client_id,
            "tid": self.tenant_id,
            "roles": list(APP_ROLES),
            "uti": secrets.token_urlsafe(8),
            "ver": "1.0",
        }
        return jwt.encode(claims, self._signing_key, algorithm="HS256")

    def check_bearer(self, authorization: str | None) -> str | None:
        """None when the header carries a valid token, else Graph's 401 message."""
        if not authorization:
            return "Access token is empty."
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "Access token is empty."
        now = self.clock()
        cached = self._verified.get(token)
        if cached is not None:
            # verified before: skip the signature check
            return None if cached > now else "Lifetime validation failed, the token is expired."
        try:
            claims = jwt.decode(
                token.strip(),
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
            return "Access token validation failure. Invalid signature."
        except jwt.DecodeError:
            return "IDX14100: JWT is not well formed, there are no dots (.)."
        except jwt.PyJWTError:
            return "Access token validation failure. Invalid audience."
        expires, not_before = claims["exp"], claims.get("nbf", 0)
        if not isinstance(expires, int | float) or expires <= now:
            return "Lifetime validation failed, the token is expired."
        if not isinstance(not_before, int | float) or not_before > now:
            return "Lifetime validation failed, the token is not yet valid."
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = float(expires)
        return None


def _audience(scope: str) -> str:
    """The ``aud`` of a token for ``scope`` (already checked): storage's, else Graph's."""
    resource = scope.strip().removesuffix("/.default")
    return STORAGE_RESOURCE if resource == STORAGE_RESOURCE else GRAPH_RESOURCE
