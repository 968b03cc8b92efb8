"""Interactive (delegated) sign-in: the device authorization grant, the authorization code
grant with PKCE, and refresh tokens, as the Microsoft identity platform answers them.

Sources (MicrosoftDocs/entra-docs, docs/identity-platform/): v2-oauth2-device-code.md (the
/devicecode answer, the polling errors ``authorization_pending``, ``authorization_declined``,
``bad_verification_code``, ``expired_token``, 15 minutes to sign in), v2-oauth2-auth-code-flow.md
(/authorize, redemption, ``response_mode``), reference-error-codes.md (the AADSTS numbers),
id-token-claims-reference.md and MSAL's client_info (``{"uid", "utid"}``, base64url). RFC 8628
section 3.5 for ``slow_down``, which Entra's page does not list.

A signed-in user's access token carries the granted Graph scopes in ``scp``. Graph treats each
granted scope like the application permission of the same name (permissions.RULES), which is
a simplification: real delegated access is also limited by what the user may do.

Nothing here renders a sign-in page: the authorize endpoint signs in ``interactive_user`` at
once (a test's fake browser follows the answer), and a device code is approved by a hook, the
control endpoint or the small ``/devicelogin`` form.

``DelegatedFlows`` puts the grants together and redeems and revokes the refresh tokens their
answers carry. The parts, one job each:

- ``devicecode``: the device authorization grant (/devicecode, approval hooks, polling);
- ``devicelogin``: the ``/devicelogin`` page where a person approves a device code;
- ``authcode``: the authorization code grant (/authorize, loopback redirects, PKCE);
- ``signin``: what the grants share (pending codes and refresh tokens, users, the token answer);
- ``user_tokens``: the claims of a user's tokens, and the scope check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from syncctl.emulator.authcode import AuthorizationCodeGrant
from syncctl.emulator.devicecode import (
    DEVICE_CODE_INTERVAL,
    DEVICE_CODE_LIFETIME,
    DeviceCodeGrant,
)
from syncctl.emulator.signin import DelegatedError, SignInState, invalid_grant

if TYPE_CHECKING:
    from syncctl.emulator.identity import Application
    from syncctl.emulator.responses import Response
    from syncctl.emulator.tenant import EmulatorTenant

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DELEGATED_GRANTS = frozenset({DEVICE_CODE_GRANT, "authorization_code", "refresh_token"})
# Refresh tokens expire after 90 days without use (refresh-tokens.md, "Token lifetime").
REFRESH_INACTIVITY = 90 * 24 * 3600


class DelegatedFlows(DeviceCodeGrant, AuthorizationCodeGrant):
    """Sign-in for the users of one tenant, on behalf of the identity's app registrations.

    ``applications`` finds an app by client id (None: unknown); ``sign`` turns claims into a
    token Graph accepts; ``clock`` is the identity's token clock (tests move it instead of
    waiting, which also moves device-code expiry and the polling interval)."""

    def __init__(
        self,
        *,
        base_url: str,
        tenant: EmulatorTenant,
        applications: Callable[[str], Application | None],
        sign: Callable[[dict[str, Any]], str],
        clock: Callable[[], float],
        token_lifetime: Callable[[], int],
    ) -> None:
        self.base_url = base_url
        self.tenant = tenant
        self._applications = applications
        self._sign = sign
        self._clock = clock
        self._token_lifetime = token_lifetime
        self.device_code_lifetime = DEVICE_CODE_LIFETIME
        self.device_code_interval = DEVICE_CODE_INTERVAL
        # Who /authorize signs in (UPN or object id); None: login_hint's user if it names
        # one, else the first enabled member user.
        self.interactive_user = None
        self._state = SignInState()
        self._changed = threading.Condition()

    # ---- hooks ------------------------------------------------------------------------------
    def revoke_refresh_tokens(self, user: str | None = None) -> int:
        """Revoke the refresh tokens of ``user`` (UPN or object id; default: everyone's), as
        revokeSignInSessions does; returns how many."""
        user_id = self._user_id(user, enabled=False) if user is not None else None
        count = 0
        with self._changed:
            for grant in self._state.refresh_tokens.values():
                if not grant.revoked and user_id in (None, grant.user_id):
                    grant.revoked = True
                    count += 1
        return count

    # ---- /token -----------------------------------------------------------------------------
    def redeem(self, app: Application, form: Mapping[str, str]) -> Response:
        """A delegated grant for ``app``, whose client authentication was already checked."""
        grant = form.get("grant_type")
        if grant == DEVICE_CODE_GRANT:
            return self._redeem_device_code(app, form)
        if grant == "authorization_code":
            return self._redeem_authorization_code(app, form)
        return self._redeem_refresh_token(app, form)

    def _redeem_refresh_token(self, app: Application, form: Mapping[str, str]) -> Response:
        now = self._clock()
        with self._changed:
            grant = self._state.refresh_tokens.get(form.get("refresh_token", ""))
            if grant is None or grant.client_id != app.client_id:
                return invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
            if grant.revoked:
                return invalid_grant(
                    50173,
                    "The provided grant has expired due to it being revoked, a fresh auth token "
                    "is needed. The user might have changed or reset their password.",
                )
            if now - grant.last_used > REFRESH_INACTIVITY:
                return invalid_grant(
                    700082,
                    "The refresh token has expired due to inactivity. The token was inactive "
                    f"for more than {REFRESH_INACTIVITY // 86400} days.",
                )
            grant.last_used = now
            user_id, granted = grant.user_id, grant.scopes
        requested = form.get("scope") or " ".join(granted)
        return self._tokens(app, user_id, self.check_scopes(requested), form, nonce=None)


__all__ = [
    "DELEGATED_GRANTS",
    "DEVICE_CODE_GRANT",
    "DelegatedError",
    "DelegatedFlows",
]
