"""Signing in to Entra ID: the only module in syncctl that imports msal.

One TokenProvider per run. MSAL keeps tokens in its in-memory cache and renews them when they
near expiry; ``refresh()`` (after Graph answered 401) drops the cache and asks again once.
Secrets are revealed at the moment MSAL needs them and never appear in messages.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msal
import msal.exceptions
import msal.oauth2cli.oauth2
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from syncctl.errors import (
    AuthError,
    SecretError,
    SignInRefused,
    SignInRequired,
    SignInUnreachable,
)
from syncctl.policy.model import (
    CertificateCredential,
    ClientSecretCredential,
    FederatedTokenCredential,
    InteractiveCredential,
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
from syncctl.source.federated import federated_token_source
from syncctl.source.http import MsalHttpClient
from syncctl.source.permissions import DELEGATED_DEFAULTS
from syncctl.source.token_cache import TokenCacheStore
from syncctl.source.token_claims import aadsts_code, token_tenant

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
# The one delegated permission Azure Storage has (acting as the signed-in user).
STORAGE_DELEGATED = "user_impersonation"

# Entra's answer when an app registration without "Allow public client flows" is used for
# the device code or a browser sign-in without a client secret.
PUBLIC_CLIENT_DISABLED = "AADSTS7000218"
PUBLIC_CLIENT_FIX = (
    "the app registration {client_id} does not allow public client flows: enable 'Allow "
    "public client flows' under Authentication in the app registration, then sign in again"
)
# MSAL's error when the browser never came back to the localhost listener (a closed tab);
# named here so that ``syncctl.source.interactive`` need not import msal itself.
BrowserTimeout = msal.oauth2cli.oauth2.BrowserInteractionTimeoutError
# A refresh token that no longer works: revoked, expired, the password changed, consent
# withdrawn, or a policy (MFA, Conditional Access) that now wants the user in a browser.
_SIGN_IN_AGAIN = frozenset({"invalid_grant", "interaction_required", "consent_required"})


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
        # An interactive credential reads the sign-in ``syncctl login`` cached, never prompts.
        self._store = (
            TokenCacheStore(tenant)
            if isinstance(tenant.credential, InteractiveCredential)
            else None
        )

    @property
    def tenant_id(self) -> str:
        return self._tenant.id

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
        if self._store is not None:
            # The cached refresh token is the sign-in: keep the app, skip the access token.
            if self._app is None:
                self._app = self._build_app()
            return self._acquire_delegated(force_refresh=True)[0]
        self._app = self._build_app()
        return self._acquire()[0]

    def directory_id(self) -> str | None:
        """The tenant's directory id (GUID) as the access token's ``tid`` claim states it, or
        None when the token does not say (tokens are read, never trusted, for this: it only
        labels snapshot files)."""
        return token_tenant(self.token())

    def _acquire(self) -> tuple[str, int]:
        if self._store is not None:
            return self._acquire_delegated(force_refresh=False)
        credential = self._tenant.credential
        resource = self._resource or graph_resource(self._tenant)
        scope = f"{self._resource}/.default" if self._resource else graph_scope(self._tenant)
        started = int(time.time())
        with self.sign_in_errors():
            if isinstance(credential, ManagedIdentityCredential):
                result = self._app.acquire_token_for_client(resource=resource)
            else:
                result = self._app.acquire_token_for_client(scopes=[scope])
        if not isinstance(result, dict) or "access_token" not in result:
            raise self.refusal(result)
        return self.token_of(result, started)

    def refusal(self, result: Any) -> AuthError:
        """The error for MSAL's answer without a token, one line, naming the tenant."""
        error = result.get("error", "unknown_error") if isinstance(result, dict) else "none"
        description = result.get("error_description", "") if isinstance(result, dict) else ""
        code = aadsts_code(result) if isinstance(result, dict) else None
        if code == PUBLIC_CLIENT_DISABLED:
            fix = PUBLIC_CLIENT_FIX.format(client_id=self._tenant.client_id)
            message = f"{self._where()}: {code}: {fix}"
        else:
            message = f"{self._where()}: {error}: {_first_line(str(description))}"
        exchange = self._msal_http.last_exchange
        if exchange is not None and exchange.status >= 500:
            # Still failing after the retries: the service is down, not refusing us.
            return SignInUnreachable(message)
        return SignInRefused(message, code=code, error=error if isinstance(error, str) else None)

    @staticmethod
    def token_of(result: dict[str, Any], started: int) -> tuple[str, int]:
        """The access token of MSAL's answer and when it expires; every token in the answer
        is registered for masking first."""
        for secret in ("refresh_token", "id_token"):
            # Never printed; registered so that a server echoing one cannot get it shown.
            if isinstance(result.get(secret), str) and result[secret]:
                remember(result[secret])
        token: str = result["access_token"]
        try:
            expires_in = int(result.get("expires_in", 0))
        except (TypeError, ValueError):
            expires_in = 0  # unknown: the caller asks again at once rather than trusting it
        return remember(token), started + expires_in

    @contextmanager
    def sign_in_errors(self) -> Iterator[None]:
        """MSAL's and httpx's failures as one-line AuthErrors naming the tenant (``syncctl
        login`` runs its flows inside this too)."""
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

    # --- interactive: the administrator's cached sign-in ---------------------------------------

    @property
    def store(self) -> TokenCacheStore:
        assert self._store is not None, "not an interactive credential"
        return self._store

    def delegated_scopes(self, extra: tuple[str, ...] = ()) -> list[str]:
        """What to ask for on the signed-in user's behalf: the defaults, the scopes
        ``syncctl login`` asked for (the policies' needs), ``credential.scopes`` and
        ``extra``; Graph's are named by the tenant's Graph resource."""
        if self._resource is not None:
            return [f"{self._resource}/{STORAGE_DELEGATED}"]
        credential = self._tenant.credential
        assert isinstance(credential, InteractiveCredential)
        record = self.store.read_record()
        names = dict.fromkeys(
            (*DELEGATED_DEFAULTS, *credential.scopes, *(record.scopes if record else ()), *extra)
        )
        return list(dict.fromkeys(self.qualified(name) for name in names))

    def qualified(self, scope: str) -> str:
        """``User.Read.All`` as ``https://graph.microsoft.com/User.Read.All`` (per cloud)."""
        return scope if "://" in scope else f"{graph_resource(self._tenant)}/{scope}"

    def public_app(self) -> Any:
        """The MSAL public client over the persistent cache (built on first use)."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _acquire_delegated(self, *, force_refresh: bool) -> tuple[str, int]:
        app = self.public_app()
        account = self._cached_account(app)
        scopes = self.delegated_scopes()
        started = int(time.time())
        with self.sign_in_errors():
            result = app.acquire_token_silent_with_error(
                scopes, account, force_refresh=force_refresh
            )
        who = account.get("username") or "the cached account"
        if result is None:
            # No refresh token for these scopes (the cache lost it, or scopes grew).
            raise SignInRequired(f"{self._where()}: no usable sign-in of {who} in the cache")
        if "access_token" not in result:
            error = result.get("error")
            exchange = self._msal_http.last_exchange
            if error in _SIGN_IN_AGAIN and not (exchange and exchange.status >= 500):
                code = aadsts_code(result)
                why = f"{error}, {code}" if code else str(error)
                raise SignInRequired(
                    f"{self._where()}: the sign-in of {who} is no longer valid ({why})"
                )
            raise self.refusal(result)
        return self.token_of(result, started)

    def _cached_account(self, app: Any) -> dict[str, Any]:
        """The account ``syncctl login`` chose for this tenant. A cache holding only
        accounts of another directory (a copied file) is refused, never used."""
        record = self.store.read_record()
        with self.sign_in_errors():
            accounts: list[dict[str, Any]] = list(app.get_accounts())
        not_signed_in = SignInRequired(
            f"tenant {self._tenant.id}: not signed in (no cached sign-in for app "
            f"{self._tenant.client_id})"
        )
        if not accounts:
            raise not_signed_in
        expected = self._tenant.id if is_object_id(self._tenant.id) else None
        if record is not None:
            if expected is not None and record.directory_id.lower() != expected.lower():
                raise self._other_tenant(record.directory_id)
            expected = record.directory_id
        if expected is not None:
            mine = [a for a in accounts if str(a.get("realm", "")).lower() == expected.lower()]
            if not mine:
                realms = sorted({str(a.get("realm")) for a in accounts})
                raise self._other_tenant(", ".join(realms))
            accounts = mine
        if record is None:
            # Not recorded (an older or hand-made cache): the one account, if unambiguous.
            if len(accounts) == 1:
                return accounts[0]
            raise not_signed_in
        for account in accounts:
            if account.get("home_account_id") == record.home_account_id:
                return account
        raise SignInRequired(
            f"tenant {self._tenant.id}: the sign-in of {record.username} is no longer in the "
            "token cache"
        )

    def _other_tenant(self, found: str) -> SignInRequired:
        return SignInRequired(
            f"tenant {self._tenant.id}: token cache {self.store.path} holds a sign-in to "
            f"another tenant ({found}) and was not used",
            logout_first=True,
        )

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
        if isinstance(credential, InteractiveCredential):
            cache = self.store.open()
            with self.sign_in_errors():
                return msal.PublicClientApplication(
                    self._tenant.client_id,
                    authority=authority_url(self._tenant),
                    http_client=self._msal_http,
                    token_cache=cache,
                    **options,
                )
        with self.sign_in_errors():
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


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no details"
    return line if len(line) <= 300 else line[:297] + "..."
