"""The ``/devicelogin`` page: where a person approves or declines a device code in a browser,
the emulator's stand-in for Microsoft's "Enter code" page.

GET shows a form (the code, which user to sign in as, approve or decline); POST does it through
the device-code hooks (``devicecode.DeviceCodeGrant``). No password is asked: anyone who can
reach the emulator (127.0.0.1) signs in as any user, which is the point.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING

from syncctl.emulator.responses import Response, html_response
from syncctl.emulator.signin import DelegatedError, signs_in

if TYPE_CHECKING:
    from syncctl.emulator.devicecode import DeviceCodeGrant


def device_login_page(flows: DeviceCodeGrant, method: str, form: Mapping[str, str]) -> Response:
    """GET: a form (code, user, approve or decline); POST: do it. No password: anyone who
    can reach the emulator (127.0.0.1) signs in as any user, which is the point."""
    if method == "GET":
        return html_response(200, _form_html(flows, form.get("otc", ""), ""))
    user_code = form.get("user_code", "").strip().upper()
    try:
        if form.get("action") == "decline":
            flows.decline_device_code(user_code)
            return html_response(200, _page("Sign-in declined", "You may now close this window."))
        user_id = flows.approve_device_code(user_code, form.get("user", "").strip() or None)
    except DelegatedError as exc:
        return html_response(400, _form_html(flows, user_code, str(exc)))
    with flows.tenant.lock:
        upn = str(flows.tenant.users[user_id].get("userPrincipalName", user_id))
    return html_response(
        200,
        _page(
            "You're signed in",
            f"Signed in as {upn}. You have signed in to the application on "
            "your device. You may now close this window.",
        ),
    )


def _form_html(flows: DeviceCodeGrant, user_code: str, problem: str) -> str:
    with flows.tenant.lock:
        users = [
            str(flows.tenant.users[i].get("userPrincipalName", ""))
            for i in flows.tenant.sorted_ids("users")[:200]
            if signs_in(flows.tenant.users[i])
        ][:25]
    options = "".join(f'<option value="{html.escape(upn)}">' for upn in users)
    error = f'<p style="color:#a00">{html.escape(problem)}</p>' if problem else ""
    pending = ", ".join(flows.pending_device_codes()) or "none"
    body = (
        f"{error}<form method='post' action='/devicelogin'>"
        "<p><label>Code <input name='user_code' autofocus "
        f"value='{html.escape(user_code)}'></label></p>"
        "<p><label>Sign in as (UPN or object id; empty: the first enabled member) "
        "<input name='user' list='users' size='40'></label>"
        f"<datalist id='users'>{options}</datalist></p>"
        "<p><button name='action' value='approve'>Sign in</button> "
        "<button name='action' value='decline'>Decline</button></p></form>"
        f"<p><small>Waiting codes: {html.escape(pending)}</small></p>"
    )
    return _page("Enter code", "Enter the code displayed on your app or device.", body)


def _page(title: str, lead: str, body: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "</head><body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(lead)}</p>{body}"
        "<p><small>syncctl Graph emulator: a stand-in for Microsoft's sign-in page, no "
        "password asked.</small></p></body></html>"
    )
