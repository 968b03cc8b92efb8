"""The device authorization grant (v2-oauth2-device-code.md): ``/devicecode`` gives a client
a user code to show, a person approves or declines it (a hook, the control endpoint or the
``/devicelogin`` page of ``devicelogin``), and the client polls ``/token`` meanwhile.

The polling errors are Entra's (``authorization_pending``, ``authorization_declined``,
``bad_verification_code``, ``expired_token``, 15 minutes to sign in); ``slow_down`` is RFC 8628
section 3.5's, which Entra's page does not list.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from syncctl.emulator import devicelogin
from syncctl.emulator.responses import Response, encode_json, identity_error
from syncctl.emulator.signin import JSON_HEADERS, DelegatedError, DeviceCode, SignInCore

if TYPE_CHECKING:
    from syncctl.emulator.identity import Application

DEVICE_CODE_LIFETIME = 900  # v2-oauth2-device-code.md: "the user has 15 minutes to sign in"
DEVICE_CODE_INTERVAL = 5  # the interval Entra answers (the doc's and MSAL's default)
# RFC 8628 section 3.5: each slow_down adds 5 seconds to the interval the client must keep.
SLOW_DOWN_STEP = 5
# Entra's user codes: upper-case letters and digits, without the easily confused ones.
USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
USER_CODE_LENGTH = 9
_DEVICE_MESSAGE = (
    "To sign in, use a web browser to open the page {uri} and enter the code {code} to "
    "authenticate."
)


class DeviceCodeGrant(SignInCore):
    """Device codes: issued, approved or declined by a person, polled and redeemed."""

    device_code_lifetime: int
    device_code_interval: int

    # ---- hooks ------------------------------------------------------------------------------
    @property
    def verification_uri(self) -> str:
        return f"{self.base_url}/devicelogin"

    def pending_device_codes(self) -> list[str]:
        """User codes waiting for a sign-in (not approved, declined or expired), oldest first."""
        now = self._clock()
        with self._changed:
            return [
                c.user_code
                for c in self._state.device_codes.values()
                if c.state == "pending" and c.expires > now
            ]

    def approve_device_code(self, user_code: str, user: str | None = None) -> str:
        """Sign ``user`` (UPN or object id; default: the first enabled member user) in for the
        device showing ``user_code``; returns the user's object id."""
        user_id = self._user_id(user)
        with self._changed:
            code = self._pending(user_code)
            code.state, code.user_id = "approved", user_id
            self._changed.notify_all()
        return user_id

    def decline_device_code(self, user_code: str) -> None:
        """The user refuses the sign-in ("No, cancel" on Entra's page)."""
        with self._changed:
            self._pending(user_code).state = "declined"
            self._changed.notify_all()

    def wait_for_device_poll(self, user_code: str, timeout: float = 10.0) -> bool:
        """Block until the client has polled ``user_code``'s device code at least once (a
        test approves only once the client has seen ``authorization_pending``)."""

        def polled() -> bool:
            code = self._by_user_code(user_code)
            return code is not None and code.last_poll is not None

        with self._changed:
            return self._changed.wait_for(polled, timeout)

    # ---- /devicecode ------------------------------------------------------------------------
    def device_authorization(self, form: Mapping[str, str]) -> Response:
        client_id = form.get("client_id", "")
        if self._applications(client_id) is None:
            return self._unknown_client(client_id)
        scopes = self.check_scopes(form.get("scope", ""))
        if isinstance(scopes, Response):
            return scopes
        now = self._clock()
        user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
        code = DeviceCode(
            device_code=secrets.token_urlsafe(96),
            user_code=user_code,
            client_id=client_id,
            scopes=scopes.requested,
            expires=now + self.device_code_lifetime,
            interval=self.device_code_interval,
        )
        with self._changed:
            self._state.device_codes[code.device_code] = code
        body = {
            "user_code": code.user_code,
            "device_code": code.device_code,
            "verification_uri": self.verification_uri,
            "expires_in": self.device_code_lifetime,
            "interval": code.interval,
            "message": _DEVICE_MESSAGE.format(uri=self.verification_uri, code=code.user_code),
        }
        return Response(200, encode_json(body), dict(JSON_HEADERS))

    # ---- /devicelogin (a person's approval page) ----------------------------------------------
    def device_login_page(self, method: str, form: Mapping[str, str]) -> Response:
        """GET: a form (code, user, approve or decline); POST: do it (``devicelogin``)."""
        return devicelogin.device_login_page(self, method, form)

    # ---- /token -----------------------------------------------------------------------------
    def _redeem_device_code(self, app: Application, form: Mapping[str, str]) -> Response:
        now = self._clock()
        with self._changed:
            code = self._state.device_codes.get(form.get("device_code", ""))
            if code is None or code.client_id != app.client_id or code.state == "redeemed":
                return identity_error(
                    400,
                    "bad_verification_code",
                    70018,
                    "The provided value for the input parameter 'device_code' is not valid.",
                )
            previous, code.last_poll = code.last_poll, now
            self._changed.notify_all()
            if code.expires <= now:
                return identity_error(
                    400,
                    "expired_token",
                    70020,
                    "The provided value for the input parameter 'device_code' is not valid. "
                    "This device code has expired.",
                )
            if code.state == "declined":
                return identity_error(
                    400,
                    "authorization_declined",
                    65004,
                    "The user declined to consent to access the app.",
                )
            if previous is not None and now - previous < code.interval:
                code.interval += SLOW_DOWN_STEP
                return identity_error(
                    400,
                    "slow_down",
                    70016,
                    f"Polling too frequently: wait at least {code.interval} seconds between "
                    "requests (RFC 8628 section 3.5).",
                )
            if code.state == "pending" or code.user_id is None:
                return identity_error(
                    400,
                    "authorization_pending",
                    70016,
                    "The provided request has not yet been authorized by the user. The user "
                    "must input their code.",
                )
            code.state = "redeemed"
            user_id, scopes = code.user_id, code.scopes
        return self._tokens(app, user_id, self.check_scopes(" ".join(scopes)), form, nonce=None)

    # ---- helpers ----------------------------------------------------------------------------
    def _by_user_code(self, user_code: str) -> DeviceCode | None:
        wanted = user_code.strip().upper()
        for code in self._state.device_codes.values():
            if hmac.compare_digest(code.user_code, wanted):
                return code
        return None

    def _pending(self, user_code: str) -> DeviceCode:
        code = self._by_user_code(user_code)
        if code is None:
            raise DelegatedError(f"no device code {user_code!r}: check the code and try again")
        if code.expires <= self._clock():
            raise DelegatedError(f"the code {user_code!r} has expired: sign in again")
        if code.state != "pending":
            raise DelegatedError(f"the code {user_code!r} was already {code.state}")
        return code
