"""What every delegated grant shares: the records of the codes and refresh tokens waiting to
be redeemed, finding the user who signs in, and the token answer a redeemed grant gets.

``SignInCore`` is the common base of the grants (``devicecode.DeviceCodeGrant``,
``authcode.AuthorizationCodeGrant``); ``delegated.DelegatedFlows`` puts them together and sets
the attributes declared here. The answer's claims are built in ``user_tokens``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncctl.emulator.responses import Response, encode_json, identity_error
from syncctl.emulator.user_tokens import (
    OIDC_SCOPES,
    Scopes,
    access_token_claims,
    check_scopes,
    client_info,
    id_token_claims,
)

if TYPE_CHECKING:
    from syncctl.emulator.identity import Application
    from syncctl.emulator.tenant import EmulatorTenant

JSON_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store, no-cache",
}


class DelegatedError(ValueError):
    """A hook called with something Entra's sign-in page would refuse (unknown or expired
    code, unknown or disabled user)."""


@dataclass(eq=False)
class DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    scopes: tuple[str, ...]
    expires: float
    interval: int
    last_poll: float | None = None
    state: str = "pending"  # pending, approved, declined, redeemed
    user_id: str | None = None


@dataclass(eq=False)
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    challenge: str | None
    method: str
    scopes: tuple[str, ...]
    nonce: str | None
    user_id: str
    expires: float
    redeemed: bool = False


@dataclass(eq=False)
class RefreshGrant:
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    last_used: float
    revoked: bool = False


@dataclass
class SignInState:
    device_codes: dict[str, DeviceCode] = field(default_factory=dict)  # by device_code
    authorization_codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)


class SignInCore:
    """The state and helpers the grants share (set by ``DelegatedFlows.__init__``); the state
    is read and changed under ``_changed``, which device-code polling also waits on."""

    base_url: str
    tenant: EmulatorTenant
    _applications: Callable[[str], Application | None]
    _sign: Callable[[dict[str, Any]], str]
    _clock: Callable[[], float]
    _token_lifetime: Callable[[], int]
    _state: SignInState
    _changed: threading.Condition

    # ---- scopes -----------------------------------------------------------------------------
    def check_scopes(self, scope: str) -> Scopes | Response:
        """A delegated request's scopes (``user_tokens.check_scopes``)."""
        return check_scopes(scope, base_url=self.base_url, tenant_id=self.tenant.tenant_id)

    # ---- tokens -----------------------------------------------------------------------------
    def _tokens(
        self,
        app: Application,
        user_id: str,
        scopes: Scopes | Response,
        form: Mapping[str, str],
        *,
        nonce: str | None,
    ) -> Response:
        if isinstance(scopes, Response):
            return scopes
        with self.tenant.lock:
            user = dict(self.tenant.users.get(user_id) or {})
        if not user:
            return invalid_grant(50034, "The user account does not exist in the directory.")
        if user.get("accountEnabled") is False:
            return invalid_grant(50057, "The user account is disabled.")
        now = self._clock()
        lifetime = self._token_lifetime()
        # ".default": the permissions consented for the app; the emulator uses its roles
        default = any(s.endswith("/.default") for s in scopes.requested)
        granted = scopes.permissions or (app.roles if default else ())
        upn = str(user.get("userPrincipalName", ""))
        name = str(user.get("displayName", ""))
        access = access_token_claims(
            app,
            user_id,
            upn=upn,
            name=name,
            granted=granted,
            tenant_id=self.tenant.tenant_id,
            now=now,
            lifetime=lifetime,
        )
        resource = [s for s in scopes.requested if s not in OIDC_SCOPES]
        shown = [*resource, *(s for s in scopes.oidc if s != "offline_access")]
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(shown),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self._sign(access),
        }
        if "offline_access" in scopes.oidc:  # v2-oauth2-device-code.md: only then
            refresh = secrets.token_urlsafe(96)
            with self._changed:
                self._state.refresh_tokens[refresh] = RefreshGrant(
                    app.client_id, user_id, scopes.requested, now
                )
            body["refresh_token"] = refresh
        if "openid" in scopes.oidc:
            body["id_token"] = self._sign(
                id_token_claims(
                    app,
                    user_id,
                    upn=upn,
                    name=name,
                    now=now,
                    nonce=nonce,
                    base_url=self.base_url,
                    tenant_id=self.tenant.tenant_id,
                )
            )
        if form.get("client_info") == "1":  # MSAL asks for it to key its cache
            body["client_info"] = client_info(user_id, self.tenant.tenant_id)
        return Response(200, encode_json(body), dict(JSON_HEADERS))

    # ---- helpers ----------------------------------------------------------------------------
    def _user_id(self, user: str | None, *, enabled: bool = True) -> str:
        """The object id of ``user`` (object id or UPN, any case), or of the first enabled
        member user by id when None; DelegatedError if there is none."""
        with self.tenant.lock:
            if user is None:
                for user_id in self.tenant.sorted_ids("users"):
                    if signs_in(self.tenant.users[user_id]):
                        return user_id
                raise DelegatedError("the tenant has no enabled member user to sign in")
            found: dict[str, Any] | None = self.tenant.users.get(user)
            user_id = user
            if found is None:
                wanted = user.casefold()
                for candidate, props in self.tenant.users.items():
                    if str(props.get("userPrincipalName", "")).casefold() == wanted:
                        user_id, found = candidate, props
                        break
            if found is None:
                raise DelegatedError(f"no user {user!r} in the tenant (UPN or object id)")
            if enabled and found.get("accountEnabled") is False:
                raise DelegatedError(f"the user {user!r} is disabled")
            return user_id

    def _unknown_client(self, client_id: str) -> Response:
        return identity_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{self.tenant.tenant_id}'.",
        )


def signs_in(user: Mapping[str, Any]) -> bool:
    """An enabled member (the default choice; guests and disabled users can be named)."""
    return user.get("accountEnabled") is not False and user.get("userType", "Member") == "Member"


def invalid_grant(aadsts: int, description: str) -> Response:
    return identity_error(400, "invalid_grant", aadsts, description)
