"""The authorization code grant with PKCE (v2-oauth2-auth-code-flow.md): ``/authorize``
signs the interactive user in at once (no sign-in page: a test's fake browser follows the
answer) and sends the browser back to the app's loopback redirect URI with a code, which the
app redeems at ``/token`` with its PKCE verifier.

Here too: which redirect URIs are accepted (a desktop app's ``http://localhost``), the PKCE
check, and the answer's shapes (a 302 with the code in the query or fragment, or for
``response_mode=form_post`` Entra's self-submitting form).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from syncctl.emulator.responses import Response, html_response, identity_error
from syncctl.emulator.signin import AuthorizationCode, DelegatedError, SignInCore, invalid_grant
from syncctl.emulator.user_tokens import b64url

if TYPE_CHECKING:
    from syncctl.emulator.identity import Application

AUTHORIZATION_CODE_LIFETIME = 600  # v2-oauth2-auth-code-flow.md: "after about 10 minutes"


class AuthorizationCodeGrant(SignInCore):
    """Authorization codes: issued by /authorize to the interactive user, redeemed once."""

    # Who /authorize signs in (UPN or object id); None: login_hint's user if it names one,
    # else the first enabled member user.
    interactive_user: str | None

    # ---- /authorize -------------------------------------------------------------------------
    def authorize(self, query: Mapping[str, str]) -> Response:
        """Sign the interactive user in and send the browser back to the app: a 302 with
        ``code`` and ``state`` in the query (or fragment), or for ``response_mode=form_post``
        Entra's self-submitting form (what MSAL's local listener accepts)."""
        client_id = query.get("client_id", "")
        if self._applications(client_id) is None:
            return self._unknown_client(client_id)
        redirect_uri = query.get("redirect_uri", "")
        if not _is_loopback(redirect_uri):
            # Entra shows this on its own page: it never redirects to an unregistered URI.
            return identity_error(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'. The emulator "
                "accepts http://localhost[:port][/path] (a desktop app's redirect URI).",
            )
        mode = query.get("response_mode") or "query"
        state = query.get("state")
        if query.get("response_type") != "code":
            return _redirect(
                redirect_uri,
                mode,
                _oauth_error(
                    "unsupported_response_type",
                    70005,
                    "The emulator's authorize endpoint issues authorization codes only "
                    "(response_type=code).",
                ),
                state,
            )
        challenge = query.get("code_challenge") or None
        method = query.get("code_challenge_method") or "plain"
        if challenge is not None and method not in ("S256", "plain"):
            return _redirect(
                redirect_uri,
                mode,
                _oauth_error(
                    "invalid_request",
                    501491,
                    f"Invalid code_challenge_method '{method}': S256 or plain.",
                ),
                state,
            )
        scopes = self.check_scopes(query.get("scope", ""))
        if isinstance(scopes, Response):
            return _redirect(redirect_uri, mode, json.loads(scopes.body), state)
        try:
            user_id = self._user_id(self.interactive_user or _known(self, query.get("login_hint")))
        except DelegatedError as exc:
            return _redirect(
                redirect_uri, mode, _oauth_error("access_denied", 50034, str(exc)), state
            )
        code = secrets.token_urlsafe(64)
        with self._changed:
            self._state.authorization_codes[code] = AuthorizationCode(
                client_id=client_id,
                redirect_uri=redirect_uri,
                challenge=challenge,
                method=method,
                scopes=scopes.requested,
                nonce=query.get("nonce"),
                user_id=user_id,
                expires=self._clock() + AUTHORIZATION_CODE_LIFETIME,
            )
        answer = {"code": code, **({"state": state} if state is not None else {})}
        return _redirect(redirect_uri, mode, answer, None)

    # ---- /token -----------------------------------------------------------------------------
    def _redeem_authorization_code(self, app: Application, form: Mapping[str, str]) -> Response:
        now = self._clock()
        with self._changed:
            code = self._state.authorization_codes.get(form.get("code", ""))
            if code is None or code.client_id != app.client_id:
                return invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
            if code.redeemed:
                return invalid_grant(
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new "
                    "valid code or use an existing refresh token.",
                )
            if code.expires <= now:
                return invalid_grant(
                    70008,
                    "The provided authorization code or refresh token has expired due to "
                    "inactivity. Send a new interactive authorization request for this user "
                    "and resource.",
                )
            if form.get("redirect_uri", "") != code.redirect_uri:
                return invalid_grant(
                    50011,
                    f"The redirect URI '{form.get('redirect_uri', '')}' specified in the request "
                    "does not match the redirect URI the authorization code was issued for.",
                )
            if code.challenge is not None and not _verifier_matches(
                form.get("code_verifier", ""), code.challenge, code.method
            ):
                return invalid_grant(
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
            code.redeemed = True  # single use (a wrong verifier above does not spend it)
        requested = form.get("scope") or " ".join(code.scopes)
        return self._tokens(app, code.user_id, self.check_scopes(requested), form, nonce=code.nonce)


def _known(flows: SignInCore, login_hint: str | None) -> str | None:
    """login_hint's user when it names one, else None (Entra would prefill the hint)."""
    if not login_hint:
        return None
    try:
        return flows._user_id(login_hint)
    except DelegatedError:
        return None


def _is_loopback(uri: str) -> bool:
    """http://localhost[:port][/path]: a desktop app's redirect URI (Entra also accepts
    127.0.0.1 for it, native-app redirect URI rules)."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in ("localhost", "127.0.0.1")
        and not parts.query
        and not parts.fragment
    )


def _verifier_matches(verifier: str, challenge: str, method: str) -> bool:
    if not verifier:
        return False
    if method == "S256":
        expected = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    else:
        expected = verifier
    return hmac.compare_digest(expected.encode(), challenge.encode())


def _redirect(uri: str, mode: str, params: Mapping[str, Any], state: str | None) -> Response:
    answer = {k: str(v) for k, v in params.items() if k in _REDIRECT_KEYS}
    if state is not None:
        answer["state"] = state
    if mode == "form_post":
        # Entra's form_post answer: a page whose form posts the parameters to the app.
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}" />'
            for k, v in answer.items()
        )
        page = (
            "<html><head><title>Working...</title></head><body>"
            f'<form method="POST" name="hiddenform" action="{html.escape(uri)}">{inputs}'
            "<noscript><p>Script is disabled. Click Submit to continue.</p>"
            '<input type="submit" value="Submit" /></noscript></form>'
            "<script>document.forms[0].submit();</script></body></html>"
        )
        return html_response(200, page)
    separator = "#" if mode == "fragment" else ("&" if "?" in uri else "?")
    return Response(
        302, b"", {"Location": f"{uri}{separator}{urlencode(answer)}", "Cache-Control": "no-store"}
    )


_REDIRECT_KEYS = ("code", "state", "error", "error_description", "error_uri")


def _oauth_error(error: str, aadsts: int, description: str) -> dict[str, Any]:
    return {"error": error, "error_description": f"AADSTS{aadsts}: {description}"}
