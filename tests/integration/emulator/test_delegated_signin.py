"""Interactive sign-in through the real MSAL PublicClientApplication over TLS: the device code
flow (pending, slow_down, declined, expired, unknown code, a confidential app's
AADSTS7000218), authorization code + PKCE driven by a fake browser, the token cache and
silent refresh, revoked refresh tokens, and Graph reading a user's ``scp``.

No test sleeps: the emulator's identity clock is moved instead, polls are single steps
(``exit_condition``) or run with interval 0 while another thread approves once the client
has polled."""

from __future__ import annotations

import html.parser
import threading
import webbrowser
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import msal
import pytest

from syncctl.emulator import Emulator

from .test_signin import FakeClock

SCOPES = ["https://graph.microsoft.com/User.Read.All"]


@pytest.fixture
def public_app(emu: Emulator) -> tuple[str, str]:
    return emu.add_application(public_client=True)


@pytest.fixture
def clock(emu: Emulator) -> FakeClock:
    clock = FakeClock()
    emu.identity.clock = clock
    return clock


def public_client(
    emu: Emulator, http: httpx.Client, client_id: str
) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        client_id,
        authority=f"{emu.authority}/{emu.tenant_id}",
        instance_discovery=False,
        http_client=http,
    )


def poll_once(app: msal.PublicClientApplication, flow: dict[str, Any]) -> dict[str, Any]:
    """One token request for a device flow (MSAL's loop would wait ``interval`` seconds)."""
    flow["latest_attempt_at"] = 0  # MSAL's own too-soon warning uses the wall clock
    result: dict[str, Any] = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    return result


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def first_member(emu: Emulator) -> dict[str, Any]:
    with emu.tenant.lock:
        for user_id in emu.tenant.sorted_ids("users"):
            user = emu.tenant.users[user_id]
            if user.get("accountEnabled") is not False and user.get("userType") == "Member":
                return dict(user)
    raise AssertionError("no member user")


def test_device_flow_pending_slow_down_then_approved_token(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str], clock: FakeClock
) -> None:
    app = public_client(emu, http, public_app[0])
    flow = app.initiate_device_flow(SCOPES)
    code = flow["user_code"]
    assert flow["verification_uri"] == f"{emu.authority}/devicelogin" == emu.device_login_url
    assert flow["message"] == (
        f"To sign in, use a web browser to open the page {emu.device_login_url} and enter the "
        f"code {code} to authenticate."
    )
    assert flow["interval"] == 5 and flow["expires_in"] == 900
    assert emu.pending_device_codes() == [code]

    pending = poll_once(app, flow)
    assert pending["error"] == "authorization_pending"
    assert pending["error_codes"] == [70016]
    too_soon = poll_once(app, flow)  # the identity clock has not moved: polled too fast
    assert too_soon["error"] == "slow_down"
    assert flow["interval"] == 10  # MSAL adds 5 seconds, as RFC 8628 asks

    user = first_member(emu)
    assert emu.approve_device_code(code.lower()) == user["id"]
    assert emu.pending_device_codes() == []
    clock.now += 10
    result = poll_once(app, flow)
    assert "access_token" in result, result
    access = claims(result["access_token"])
    assert access["scp"] == "User.Read.All"
    assert access["oid"] == user["id"] and access["upn"] == user["userPrincipalName"]
    assert access["tid"] == emu.tenant_id and access["aud"] == "https://graph.microsoft.com"
    assert access["idtyp"] == "user" and "roles" not in access
    identity = claims(result["id_token"])
    assert identity["aud"] == public_app[0]
    assert identity["iss"] == f"{emu.authority}/{emu.tenant_id}/v2.0"
    assert identity["preferred_username"] == user["userPrincipalName"]
    assert "refresh_token" in result
    [account] = app.get_accounts()
    assert account["username"] == user["userPrincipalName"]
    assert account["home_account_id"] == f"{user['id']}.{emu.tenant_id}"

    # the device code is used up
    clock.now += 10
    again = poll_once(app, flow)
    assert again["error"] == "bad_verification_code"


def test_blocking_device_flow_approved_from_another_thread(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str]
) -> None:
    emu.device_code_interval = 0  # MSAL then polls without sleeping
    app = public_client(emu, http, public_app[0])
    flow = app.initiate_device_flow(SCOPES)
    user = first_member(emu)
    approved: list[str] = []

    def approve() -> None:
        try:
            if emu.wait_for_device_poll(flow["user_code"], timeout=20):
                code = flow["user_code"]
                approved.append(emu.approve_device_code(code, user["userPrincipalName"]))
        finally:
            if not approved:
                flow["expires_at"] = 0  # stop MSAL's loop: the test fails instead of hanging

    helper = threading.Thread(target=approve)
    helper.start()
    result = app.acquire_token_by_device_flow(flow)
    helper.join()
    assert approved == [user["id"]]
    assert claims(result["access_token"])["oid"] == user["id"]


def test_declined_expired_and_unknown_device_codes(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str], clock: FakeClock
) -> None:
    app = public_client(emu, http, public_app[0])
    declined = app.initiate_device_flow(SCOPES)
    emu.decline_device_code(declined["user_code"])
    answer = poll_once(app, declined)
    assert answer["error"] == "authorization_declined"
    with pytest.raises(ValueError, match="declined"):
        emu.approve_device_code(declined["user_code"])

    expired = app.initiate_device_flow(SCOPES)
    clock.now += 901
    assert emu.pending_device_codes() == []
    answer = poll_once(app, expired)
    assert answer["error"] == "expired_token"
    assert answer["error_codes"] == [70020]
    with pytest.raises(ValueError, match="expired"):
        emu.approve_device_code(expired["user_code"])

    unknown = dict(app.initiate_device_flow(SCOPES), device_code="not-a-device-code")
    assert poll_once(app, unknown)["error"] == "bad_verification_code"
    with pytest.raises(ValueError, match="no device code"):
        emu.approve_device_code("NOPE12345")


def test_confidential_app_without_secret_is_refused(emu: Emulator, http: httpx.Client) -> None:
    app = public_client(emu, http, emu.client_id)  # the default app: public flows off
    flow = app.initiate_device_flow(SCOPES)
    emu.approve_device_code(flow["user_code"])
    result = poll_once(app, flow)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000218]
    assert result["error_description"].startswith(
        "AADSTS7000218: The request body must contain the following parameter: "
        "'client_assertion' or 'client_secret'."
    )


def test_confidential_app_with_its_secret_may_redeem_a_code(
    emu: Emulator, http: httpx.Client
) -> None:
    app = msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=emu.client_secret,
        authority=f"{emu.authority}/{emu.tenant_id}",
        instance_discovery=False,
        http_client=http,
    )
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri="http://localhost:8400", response_mode="form_post"
    )
    _, fields = sign_in_page(http, flow["auth_uri"])
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert "access_token" in result, result


def signed_in(
    emu: Emulator, http: httpx.Client, client_id: str, scopes: list[str]
) -> tuple[msal.PublicClientApplication, dict[str, Any]]:
    emu.device_code_interval = 0
    app = public_client(emu, http, client_id)
    flow = app.initiate_device_flow(scopes)
    emu.approve_device_code(flow["user_code"])
    result = poll_once(app, flow)
    assert "access_token" in result, result
    return app, result


def test_silent_from_cache_then_refresh_then_revoked(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str]
) -> None:
    app, first = signed_in(emu, http, public_app[0], SCOPES)
    [account] = app.get_accounts()
    cached = app.acquire_token_silent(SCOPES, account)
    assert cached is not None and cached["token_source"] == "cache"
    assert cached["access_token"] == first["access_token"]

    refreshed = app.acquire_token_silent(SCOPES, account, force_refresh=True)
    assert refreshed is not None and refreshed["token_source"] == "identity_provider"
    assert refreshed["access_token"] != first["access_token"]
    assert claims(refreshed["access_token"])["scp"] == "User.Read.All"

    # a short-lived token is refreshed by MSAL itself (it renews within 5 minutes of expiry)
    emu.token_lifetime = 60
    short = app.acquire_token_silent(SCOPES, account, force_refresh=True)
    assert short is not None and short["expires_in"] <= 60
    renewed = app.acquire_token_silent(SCOPES, account)
    assert renewed is not None and renewed["token_source"] == "identity_provider"

    assert emu.revoke_refresh_tokens() >= 1
    failed = app.acquire_token_silent_with_error(SCOPES, account, force_refresh=True)
    assert failed is not None and failed["error"] == "invalid_grant"
    assert failed["error_codes"] == [50173]


def test_graph_reads_with_the_delegated_scope_and_refuses_others(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str]
) -> None:
    _, result = signed_in(emu, http, public_app[0], SCOPES)
    headers = {"Authorization": f"Bearer {result['access_token']}"}
    users = http.get(f"{emu.graph}/v1.0/users?$top=3", headers=headers)
    assert users.status_code == 200, users.text
    assert len(users.json()["value"]) == 3
    groups = http.get(f"{emu.graph}/v1.0/groups", headers=headers)
    assert groups.status_code == 403
    assert groups.json()["error"]["code"] == "Authorization_RequestDenied"


def test_bare_graph_scope_names_and_foreign_resources(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str]
) -> None:
    _, result = signed_in(emu, http, public_app[0], ["GroupMember.Read.All", "User.Read.All"])
    assert claims(result["access_token"])["scp"] == "GroupMember.Read.All User.Read.All"
    app = public_client(emu, http, public_app[0])
    flow = app.initiate_device_flow(["https://vault.example/user_impersonation"])
    assert flow["error"] == "invalid_resource" and flow["error_codes"] == [500011]


class _Form(html.parser.HTMLParser):
    """The action and hidden inputs of Entra's form_post page."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values.get("value", "")


def sign_in_page(http: httpx.Client, url: str) -> tuple[str, dict[str, str]]:
    """What a browser gets from /authorize: (where it goes, with what): Entra's form_post
    page (what MSAL's interactive flow asks for), or a 302 with the answer in the query."""
    page = http.get(url, follow_redirects=False)
    if page.status_code == 302:
        location = httpx.URL(page.headers["Location"])
        return str(location.copy_with(query=None)), dict(location.params)
    assert page.status_code == 200, page.text
    form = _Form()
    form.feed(page.text)
    return form.action, form.fields


@pytest.fixture
def fake_browser(
    monkeypatch: pytest.MonkeyPatch, http: httpx.Client
) -> Iterator[list[httpx.Response]]:
    """webbrowser.open for MSAL: load the sign-in page over TLS, then post its form to MSAL's
    local listener, from another thread (MSAL serves the listener once open() returns)."""
    answers: list[httpx.Response] = []
    threads: list[threading.Thread] = []

    def browse(url: str) -> None:
        action, fields = sign_in_page(http, url)
        with httpx.Client(timeout=10) as plain:  # the listener is plain http://localhost
            answers.append(plain.post(action, data=fields))

    def open_(url: str, *args: Any, **kwargs: Any) -> bool:
        thread = threading.Thread(target=browse, args=(url,), daemon=True)
        threads.append(thread)
        thread.start()
        return True

    monkeypatch.setattr(webbrowser, "open", open_)
    yield answers
    for thread in threads:
        thread.join(timeout=10)


def test_interactive_authorization_code_with_pkce(
    emu: Emulator,
    http: httpx.Client,
    public_app: tuple[str, str],
    fake_browser: list[httpx.Response],
) -> None:
    user = first_member(emu)
    emu.interactive_user = user["userPrincipalName"]
    app = public_client(emu, http, public_app[0])
    result = app.acquire_token_interactive(SCOPES, timeout=30, prompt="select_account")
    assert "access_token" in result, result
    assert claims(result["access_token"])["oid"] == user["id"]
    assert claims(result["id_token"])["nonce"]  # MSAL sent one and checked it came back
    assert fake_browser[0].status_code == 200
    [account] = app.get_accounts()
    assert account["username"] == user["userPrincipalName"]


def test_wrong_verifier_reused_code_and_bad_redirect_are_refused(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str]
) -> None:
    app = public_client(emu, http, public_app[0])
    flow = app.initiate_auth_code_flow(
        SCOPES, redirect_uri="http://localhost:8400", response_mode="form_post"
    )
    action, fields = sign_in_page(http, flow["auth_uri"])
    assert action == "http://localhost:8400"
    assert fields["state"] == flow["state"]
    good = flow["code_verifier"]
    flow["code_verifier"] = good[::-1]
    wrong = app.acquire_token_by_auth_code_flow(dict(flow), fields)
    assert wrong["error"] == "invalid_grant" and wrong["error_codes"] == [501481]
    flow["code_verifier"] = good
    result = app.acquire_token_by_auth_code_flow(dict(flow), fields)
    assert "access_token" in result, result
    reused = app.acquire_token_by_auth_code_flow(dict(flow), fields)  # single use
    assert reused["error"] == "invalid_grant" and reused["error_codes"] == [54005]

    other = app.initiate_auth_code_flow(
        SCOPES, redirect_uri="http://localhost:8400/cb", response_mode="form_post"
    )
    _, fields = sign_in_page(http, other["auth_uri"])
    other["redirect_uri"] = "http://localhost:8401/cb"
    moved = app.acquire_token_by_auth_code_flow(other, fields)
    assert moved["error"] == "invalid_grant" and moved["error_codes"] == [50011]

    elsewhere = app.initiate_auth_code_flow(
        SCOPES, redirect_uri="https://evil.example/cb", response_mode="form_post"
    )
    page = http.get(elsewhere["auth_uri"])
    assert page.status_code == 400 and page.json()["error_codes"] == [50011]


def test_query_response_mode_redirects_with_code_and_state(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str]
) -> None:
    response = http.get(
        f"{emu.authority}/{emu.tenant_id}/oauth2/v2.0/authorize",
        params={
            "client_id": public_app[0],
            "response_type": "code",
            "redirect_uri": "http://localhost/cb",
            "scope": "User.Read.All offline_access openid",
            "state": "s-1",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302
    location = httpx.URL(response.headers["Location"])
    assert (location.host, location.path) == ("localhost", "/cb")
    assert location.params["state"] == "s-1" and location.params["code"]


def test_device_login_page_and_control_endpoint_approve(
    emu: Emulator, http: httpx.Client, public_app: tuple[str, str]
) -> None:
    app = public_client(emu, http, public_app[0])
    flow = app.initiate_device_flow(SCOPES)
    page = http.get(emu.device_login_url)
    assert page.status_code == 200 and "<form" in page.text
    user = first_member(emu)
    approved = http.post(
        emu.device_login_url, data={"user_code": flow["user_code"], "action": "approve"}
    )
    assert approved.status_code == 200
    assert user["userPrincipalName"] in approved.text
    assert "access_token" in poll_once(app, flow)
    wrong = http.post(emu.device_login_url, data={"user_code": "NOPE", "action": "approve"})
    assert wrong.status_code == 400

    key = emu.enable_control()
    control = {"Authorization": f"Bearer {key}"}
    second = app.initiate_device_flow(SCOPES)
    listed = http.get(f"{emu.authority}/_emulator/device/pending", headers=control)
    assert listed.json() == {"user_codes": [second["user_code"]]}
    answer = http.post(
        f"{emu.authority}/_emulator/device/approve",
        headers=control,
        json={"user_code": second["user_code"], "user": user["userPrincipalName"]},
    )
    assert answer.status_code == 200 and answer.json() == {"user": user["id"]}
    assert "access_token" in poll_once(app, second)
    revoked = http.post(f"{emu.authority}/_emulator/refresh-tokens/revoke", headers=control)
    assert revoked.json() == {"revoked": 2}
    bad = http.post(
        f"{emu.authority}/_emulator/device/approve", headers=control, json={"user_code": "X"}
    )
    assert bad.status_code == 400
