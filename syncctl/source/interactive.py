"""``syncctl login`` / ``logout``: an administrator signs in with MSAL's device code flow (or,
with ``browser``, the authorization code flow with PKCE and a localhost redirect), and the
sign-in is kept in the tenant's token cache (``syncctl.source.token_cache``) for later runs,
which use it silently (``TokenProvider``). Only this module ever asks a person anything.

No token is ever printed: what the administrator sees is Microsoft's device code message
(the verification address and a one-time user code), the account name and the cache path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncctl.errors import AuthError, SignInRefused
from syncctl.policy.model import InteractiveCredential, Tenant
from syncctl.source.auth import BrowserTimeout, TokenProvider
from syncctl.source.http import build_http_client
from syncctl.source.token_cache import SignInRecord, TokenCacheStore

# How long a sign-in may take unless the caller says otherwise: Entra's device codes live
# 15 minutes, and a browser sign-in with MFA takes a minute or two.
DEFAULT_TIMEOUT = 15 * 60.0


@dataclass(frozen=True, slots=True)
class SignedIn:
    username: str
    directory_id: str
    cache: Path
    protection: str  # "encrypted: ..." or "a file only you can read: ..."


def sign_in(
    tenant: Tenant,
    *,
    browser: bool,
    say: Callable[[str], None],
    scopes: Sequence[str] = (),
    timeout: float | None = DEFAULT_TIMEOUT,
) -> SignedIn:
    """Sign the administrator in to ``tenant`` and cache the sign-in: who signed in, where
    it is cached and how it is protected. ``say`` shows a line to the person signing in at
    once (the device code message, or the address to open when no browser could be
    started). ``scopes``: the delegated permissions the policies need
    (``permissions.delegated_scopes``) on top of the defaults and ``credential.scopes``.
    Raises AuthError subclasses with one-line reasons."""
    if not isinstance(tenant.credential, InteractiveCredential):
        raise AuthError(f"tenant {tenant.id}: the credential is not interactive")
    http = build_http_client(tenant.ca_bundle)
    try:
        provider = TokenProvider(tenant, http)
        wanted = provider.delegated_scopes(tuple(scopes))
        app = provider.public_app()
        if browser:
            result = _browser_flow(provider, app, wanted, say, timeout)
        else:
            result = _device_flow(provider, app, wanted, say, timeout)
        if not isinstance(result, dict) or "access_token" not in result:
            raise _login_refusal(provider, result)
        provider.token_of(result, int(time.time()))  # registers the tokens for masking
        claims = result.get("id_token_claims") or {}
        record = _record(provider, app, claims, wanted)
        store = provider.store
        store.write_record(record)
        return SignedIn(record.username, record.directory_id, store.path, store.protection)
    finally:
        http.close()


def _device_flow(
    provider: TokenProvider,
    app: Any,
    scopes: list[str],
    say: Callable[[str], None],
    timeout: float | None,
) -> Any:
    with provider.sign_in_errors():
        flow = app.initiate_device_flow(scopes=scopes)
    if "user_code" not in flow:
        raise _login_refusal(provider, flow)
    # Microsoft's own words: the verification address and the code, shown before waiting.
    say(
        str(
            flow.get("message")
            or f"Open {flow.get('verification_uri')} and enter the code "
            f"{flow['user_code']} to sign in."
        )
    )
    if timeout is not None:
        # MSAL polls until the flow's expires_at: end sooner when the caller bounds the wait.
        flow["expires_at"] = min(float(flow.get("expires_at", 0)), time.time() + timeout)
    with provider.sign_in_errors():
        result = app.acquire_token_by_device_flow(flow)
    if isinstance(result, dict) and result.get("error") in ("authorization_pending", "slow_down"):
        # MSAL stopped polling at expires_at while the code was still waiting for approval.
        return {"error": "expired_token", "error_description": "no approval in time"}
    return result


def _browser_flow(
    provider: TokenProvider,
    app: Any,
    scopes: list[str],
    say: Callable[[str], None],
    timeout: float | None,
) -> Any:
    def no_browser(address: str) -> None:
        # SSH or a container: the address works from a browser that can reach this machine.
        say(f"No browser could be started here; open this address in a browser: {address}")

    try:
        with provider.sign_in_errors():
            return app.acquire_token_interactive(
                scopes,
                prompt="select_account",
                port=0,  # any free port: the registration's http://localhost matches any
                timeout=None if timeout is None else max(1, int(timeout)),
                auth_uri_callback=no_browser,
            )
    except BrowserTimeout:
        raise AuthError(
            f"sign-in to tenant {provider.tenant_id}: the browser did not complete the sign-in "
            "in time (closed?); run syncctl login again, or without --browser to use a code"
        ) from None


def _login_refusal(provider: TokenProvider, result: Any) -> AuthError:
    """Login's failures, worded with what to do next."""
    error = result.get("error") if isinstance(result, dict) else None
    where = f"sign-in to tenant {provider.tenant_id}"
    if error == "authorization_declined":
        return SignInRefused(
            f"{where}: the sign-in was declined in the browser; run syncctl login again and "
            "approve it",
            error=error,
        )
    if error in ("expired_token", "code_expired"):
        return SignInRefused(
            f"{where}: the code expired before it was approved; run syncctl login again and "
            "enter the new code promptly",
            error=error,
        )
    if error == "access_denied":
        return SignInRefused(
            f"{where}: the sign-in was cancelled or denied in the browser (access_denied); "
            "run syncctl login again",
            error=error,
        )
    return provider.refusal(result)


def _record(
    provider: TokenProvider, app: Any, claims: dict[str, Any], scopes: list[str]
) -> SignInRecord:
    """The account MSAL just cached for this sign-in (found by the id token's ``oid`` and
    ``tid``: the username alone may match another cached account)."""
    directory = str(claims.get("tid") or provider.tenant_id)
    object_id = str(claims.get("oid") or claims.get("sub") or "")
    username = str(claims.get("preferred_username") or claims.get("upn") or "")
    with provider.sign_in_errors():
        accounts: list[dict[str, Any]] = list(app.get_accounts())
    chosen = [
        a
        for a in accounts
        if str(a.get("realm", "")).lower() == directory.lower()
        and (
            a.get("local_account_id") == object_id
            or (username and str(a.get("username", "")).lower() == username.lower())
        )
    ]
    if not chosen:
        raise AuthError(
            f"sign-in to tenant {provider.tenant_id}: signed in, but the token cache holds "
            "no account for it"
        )
    account = chosen[0]
    return SignInRecord(
        home_account_id=str(account["home_account_id"]),
        username=username or str(account.get("username") or object_id),
        directory_id=directory,
        scopes=tuple(scopes),
    )


@dataclass(frozen=True, slots=True)
class SignedOut:
    usernames: tuple[str, ...]
    removed: tuple[Path, ...]


def logout(tenant: Tenant) -> SignedOut:
    """Forget the tenant's cached sign-in (keyring entry and files); nothing cached is not an
    error. The accounts are named when the cache can still be read."""
    store = TokenCacheStore(tenant)
    usernames: list[str] = []
    try:
        record = store.read_record()
        if record is not None:
            usernames.append(record.username)
    except AuthError:
        pass  # a damaged record is removed all the same
    return SignedOut(tuple(usernames), tuple(store.remove()))
