"""Signing in to Entra ID: the only module in syncctl that imports msal.

One TokenProvider per run. MSAL keeps tokens in its in-memory cache and renews them when they
near expiry; ``refresh()`` (after Graph answered 401) drops the cache and asks again once.
Secrets are revealed at the moment MSAL needs them and never appear in messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msal
import msal.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from syncctl.errors import AuthError, SecretError, SignInRefused, SignInUnreachable
from syncctl.policy.model import (
    CertificateCredential,
    ClientSecretCredential,
    FederatedTokenCredential,
    ManagedIdentityCredential,
    Tenant,
    is_object_id,
)
from syncctl.redaction import remember
from syncctl.secretfile import read_small_file
from syncctl.source.clouds import (
    authority_url,
    graph_resource,
    graph_scope,
    is_microsoft_authority,
)
from syncctl.source.http import MsalHttpClient

# The audience Entra expects on federated tokens from GitHub Actions / Azure Pipelines.
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
# A PEM key with its certificate chain is a few KiB; bounded because a policy names the path.
CERTIFICATE_FILE_LIMIT = 1024 * 1024

# Entra's error codes as its error descriptions start with them: "AADSTS7000215: ...".
_AADSTS = re.compile(r"\bAADSTS\d+\b")

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)

# MSAL logs some failures with a traceback (a token answer that is not JSON) and then raises;
# syncctl reports every sign-in failure itself, as one line, so MSAL's records stay off the
# terminal (a NullHandler also keeps Python's last-resort handler from printing them).
_MSAL_LOG = logging.getLogger("msal")
_MSAL_LOG.addHandler(logging.NullHandler())
_MSAL_LOG.propagate = False


# Azure Storage's resource is the same in every cloud (its data plane hosts differ).
STORAGE_RESOURCE = "https://storage.azure.com"


class TokenProvider:
    """Access tokens for Microsoft Graph (or ``resource``), per ``tenant.credential``."""

    def __init__(self, tenant: Tenant, http: httpx.Client, *, resource: str | None = None) -> None:
        if tenant.credential is None:
            raise AuthError(f"tenant {tenant.id}: no credential configured")
        if not isinstance(tenant.credential, ManagedIdentityCredential) and not tenant.client_id:
            raise AuthError(f"tenant {tenant.id}: client_id is required for this credential")
        self._tenant = tenant
        self._http = http
        self._msal_http = MsalHttpClient(http)
        self._app: Any = None
        self._resource = resource  # None: the tenant's Graph

    def token(self) -> str:
        return self.token_expiring()[0]

    def token_expiring(self) -> tuple[str, int]:
        """A token and when it expires (Unix time), for clients that cache tokens
        themselves (azure-core's ``TokenCredential``)."""
        if self._app is None:
            self._app = self._build_app()
        return self._acquire()

    def refresh(self) -> str:
        """A fresh token, bypassing the cache (Graph rejected the cached one)."""
        self._app = self._build_app()
        return self._acquire()[0]

    def directory_id(self) -> str | None:
        """The tenant's directory id (GUID) as the access token's ``tid`` claim states it, or
        None when the token does not say (tokens are read, never trusted, for this: it only
        labels snapshot files)."""
        return _token_tenant(self.token())

    def _acquire(self) -> tuple[str, int]:
        credential = self._tenant.credential
        resource = self._resource or graph_resource(self._tenant)
        scope = f"{self._resource}/.default" if self._resource else graph_scope(self._tenant)
        started = int(time.time())
        with self._sign_in_errors():
            if isinstance(credential, ManagedIdentityCredential):
                result = self._app.acquire_token_for_client(resource=resource)
            else:
                result = self._app.acquire_token_for_client(scopes=[scope])
        if not isinstance(result, dict) or "access_token" not in result:
            error = result.get("error", "unknown_error") if isinstance(result, dict) else "none"
            description = result.get("error_description", "") if isinstance(result, dict) else ""
            message = f"{self._where()}: {error}: {_first_line(str(description))}"
            exchange = self._msal_http.last_exchange
            if exchange is not None and exchange.status >= 500:
                # Still failing after the retries: the service is down, not refusing us.
                raise SignInUnreachable(message)
            raise SignInRefused(
                message,
                code=aadsts_code(result) if isinstance(result, dict) else None,
                error=error if isinstance(error, str) else None,
            )
        token: str = result["access_token"]
        try:
            expires_in = int(result.get("expires_in", 0))
        except (TypeError, ValueError):
            expires_in = 0  # unknown: the caller asks again at once rather than trusting it
        return remember(token), started + expires_in

    @contextmanager
    def _sign_in_errors(self) -> Iterator[None]:
        """MSAL's and httpx's failures as one-line AuthErrors naming the tenant."""
        try:
            yield
        except (AuthError, SecretError):
            raise
        except json.JSONDecodeError:
            # MSAL parsed an answer that is not JSON: name the endpoint, not the parser.
            exchange = self._msal_http.last_exchange
            what = exchange.not_json() if exchange else "an answer was not JSON"
            raise SignInUnreachable(f"{self._where()}: {what}") from None
        except (ValueError, msal.exceptions.MsalError) as exc:
            # MSAL raises ValueError for unusable authorities and malformed credentials, and
            # MsalServiceError when discovery answers with an HTTP error.
            message = f"{self._where()}: {_first_line(str(exc))}"
            exchange = self._msal_http.last_exchange
            status = exchange.status if exchange is not None else None
            if status is not None and status >= 500:
                # MSAL's "HTTP Error: 503" once the retries ran out: down, not refusing.
                raise SignInUnreachable(message) from None
            if isinstance(exc, msal.exceptions.MsalServiceError) or (
                status is not None and 400 <= status < 500
            ):
                # The identity platform answered with an error (an unknown tenant's
                # discovery is a 400 whose body MSAL quotes, AADSTS code included).
                found = _AADSTS.search(str(exc))
                raise SignInRefused(message, code=found.group(0) if found else None) from None
            raise AuthError(message) from None
        except httpx.HTTPError as exc:
            # httpx's status errors add a second line (a documentation link): keep the first.
            raise SignInUnreachable(
                f"{self._where()}: sign-in request failed: {_first_line(str(exc))}"
            ) from None

    def _where(self) -> str:
        kind = type(self._tenant.credential).__name__.removesuffix("Credential")
        target = f" for {self._resource}" if self._resource else ""
        return f"sign-in to tenant {self._tenant.id}{target} ({kind})"

    def _build_app(self) -> Any:
        credential = self._tenant.credential
        if isinstance(credential, ManagedIdentityCredential):
            identity: Any = (
                msal.UserAssignedManagedIdentity(client_id=credential.client_id)
                if credential.client_id
                else msal.SystemAssignedManagedIdentity()
            )
            return msal.ManagedIdentityClient(
                identity, http_client=self._msal_http, token_cache=msal.TokenCache()
            )
        options: dict[str, Any] = {}
        if not is_microsoft_authority(self._tenant):
            options["instance_discovery"] = False
        with self._sign_in_errors():
            return msal.ConfidentialClientApplication(
                self._tenant.client_id,
                client_credential=self._client_credential(),
                authority=authority_url(self._tenant),
                http_client=self._msal_http,
                token_cache=msal.SerializableTokenCache(),
                **options,
            )

    def _client_credential(self) -> Any:
        credential = self._tenant.credential
        if isinstance(credential, ClientSecretCredential):
            return credential.secret.reveal()
        if isinstance(credential, CertificateCredential):
            return certificate_credential(credential)
        assert isinstance(credential, FederatedTokenCredential)
        return {"client_assertion": federated_token_source(credential, self._http)}


def certificate_credential(credential: CertificateCredential) -> dict[str, Any]:
    """MSAL's certificate form, always with a SHA-256 thumbprint (PS256), never SHA-1."""
    password = credential.password.reveal() if credential.password is not None else None
    path = credential.path
    if path.suffix.lower() in (".pfx", ".p12"):
        if not path.is_file():
            raise AuthError(f"certificate {path}: file not found")
        return {
            "private_key_pfx_path": str(path),
            **({"passphrase": password} if password else {}),
        }
    data = read_small_file(path, CERTIFICATE_FILE_LIMIT, "certificate", AuthError)
    try:
        key = serialization.load_pem_private_key(
            data, password=password.encode() if password else None
        )
    except (ValueError, TypeError) as exc:
        raise AuthError(f"certificate {path}: cannot load the private key: {exc}") from None
    match = _PEM_CERTIFICATE.search(data)
    if match is None:
        raise AuthError(f"certificate {path}: no CERTIFICATE block next to the private key")
    try:
        x509.load_pem_x509_certificate(match.group(0))
    except ValueError as exc:
        raise AuthError(f"certificate {path}: invalid certificate: {exc}") from None
    # The key stays in memory, decrypted once here so MSAL never needs the password.
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {"private_key": private_pem, "public_certificate": match.group(0).decode()}


def federated_token_source(
    credential: FederatedTokenCredential, http: httpx.Client
) -> Callable[[], str]:
    """A callable MSAL invokes on every token request: CI and AKS tokens are short-lived and
    rotated, so they are read (or requested) afresh each time, never captured once."""
    if credential.file is not None:
        path = credential.file
        return lambda: _read_token_file(path)
    if credential.env is not None:
        name = credential.env
        return lambda: _read_token_env(name)
    if credential.github_actions:
        return lambda: _github_actions_token(http)
    if credential.azure_pipelines_service_connection_id is not None:
        connection = credential.azure_pipelines_service_connection_id
        return lambda: _azure_pipelines_token(http, connection)
    raise AuthError("federated_token: no token source configured")


def _read_token_file(path: Path) -> str:
    data = read_small_file(path, what="federated token file", error=AuthError)
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AuthError(f"federated token file {path} is not UTF-8 text") from None
    if not token:
        raise AuthError(f"federated token file {path} is empty")
    return remember(token)


def _read_token_env(name: str) -> str:
    token = os.environ.get(name, "").strip()
    if not token:
        raise AuthError(f"federated token: environment variable {name} is not set or empty")
    return remember(token)


def _github_actions_token(http: httpx.Client) -> str:
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        raise AuthError(
            "GitHub Actions OIDC: ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN are not set "
            "(the job needs `permissions: id-token: write`)"
        )
    response = _oidc_request(
        http,
        "GET",
        url,
        params={"audience": FEDERATION_AUDIENCE},
        bearer=bearer,
        what="GitHub Actions OIDC",
    )
    return remember(_json_field(response, "value", "GitHub Actions OIDC"))


def _azure_pipelines_token(http: httpx.Client, service_connection_id: str) -> str:
    url = os.environ.get("SYSTEM_OIDCREQUESTURI")
    bearer = os.environ.get("SYSTEM_ACCESSTOKEN")
    if not url or not bearer:
        raise AuthError(
            "Azure Pipelines OIDC: SYSTEM_OIDCREQUESTURI/SYSTEM_ACCESSTOKEN are not set "
            "(map System.AccessToken into the step's env)"
        )
    params = {"api-version": "7.1", "serviceConnectionId": service_connection_id}
    response = _oidc_request(
        http, "POST", url, params=params, bearer=bearer, what="Azure Pipelines OIDC"
    )
    return remember(_json_field(response, "oidcToken", "Azure Pipelines OIDC"))


def _oidc_request(
    http: httpx.Client, method: str, url: str, *, params: dict[str, str], bearer: str, what: str
) -> httpx.Response:
    try:
        # The URL may carry a query already (GitHub's does): merge, never replace it.
        response = http.request(
            method,
            httpx.URL(url).copy_merge_params(params),
            headers={"Authorization": f"Bearer {bearer}"},
            json={} if method == "POST" else None,
        )
    except httpx.HTTPError as exc:
        raise SignInUnreachable(f"{what}: request failed: {exc}") from None
    if response.status_code != 200:
        raise AuthError(f"{what}: token request answered HTTP {response.status_code}")
    return response


def _json_field(response: httpx.Response, field: str, what: str) -> str:
    try:
        value = response.json().get(field)
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise AuthError(f"{what}: response has no `{field}`")
    return value


def _token_claims(token: str) -> dict[str, Any] | None:
    """The access token's payload, decoded but not verified: only for naming things."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _token_tenant(token: str) -> str | None:
    claims = _token_claims(token)
    tenant = claims.get("tid") if claims is not None else None
    return tenant if isinstance(tenant, str) and is_object_id(tenant) else None


def token_roles(token: str) -> frozenset[str] | None:
    """The application permissions an app-only token's ``roles`` claim lists, or None when
    the token has no readable ``roles`` claim. Read, never trusted: Graph enforces the real
    permissions; this only lets ``validate --online`` name a missing one before a run fails.
    An app granted no application permission at all gets a token without the claim, so
    None cannot be told apart from "none granted" and is reported as unchecked."""
    claims = _token_claims(token)
    roles = claims.get("roles") if claims is not None else None
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        return None
    return frozenset(roles)


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


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no details"
    return line if len(line) <= 300 else line[:297] + "..."
