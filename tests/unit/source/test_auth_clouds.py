"""Authorities, Graph roots and token requests per national cloud, through real msal.

msal talks to an httpx MockTransport (via our MsalHttpClient), so these tests see exactly
which hosts and scopes a tenant in each cloud would use, without a network.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from syncctl.errors import AuthError
from syncctl.policy.model import (
    ClientSecretCredential,
    Cloud,
    Endpoints,
    FederatedTokenCredential,
    SecretRef,
    Tenant,
)
from syncctl.source.auth import TokenProvider
from syncctl.source.clouds import authority_url, graph_base, graph_resource, graph_scope

TENANT = "contoso.onmicrosoft.com"
CLIENT = "11111111-2222-3333-4444-555555555555"

EXPECTED = {
    Cloud.GLOBAL: ("login.microsoftonline.com", "https://graph.microsoft.com"),
    Cloud.USGOV: ("login.microsoftonline.us", "https://graph.microsoft.us"),
    Cloud.USGOV_DOD: ("login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    Cloud.CHINA: ("login.partner.microsoftonline.cn", "https://microsoftgraph.chinacloudapi.cn"),
}


class FakeAuthority:
    """OpenID discovery + token endpoint for any host, recording what msal sends."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = request.url.host
        if request.url.path.endswith("/.well-known/openid-configuration"):
            base = f"https://{host}/{TENANT}"
            return httpx.Response(
                200,
                json={
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "issuer": f"https://{host}/{TENANT}/v2.0",
                },
            )
        if request.url.path.endswith("/oauth2/v2.0/token"):
            self.tokens_issued += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"at-{self.tokens_issued}",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                },
            )
        if "discovery/instance" in request.url.path:
            return httpx.Response(
                200,
                json={
                    "tenant_discovery_endpoint": f"https://{host}/{TENANT}/v2.0/"
                    ".well-known/openid-configuration",
                    "metadata": [{"preferred_network": host, "aliases": [host]}],
                },
            )
        return httpx.Response(404)

    def token_forms(self) -> list[dict[str, list[str]]]:
        return [
            parse_qs(r.content.decode())
            for r in self.requests
            if r.url.path.endswith("/oauth2/v2.0/token")
        ]


def _provider(tenant: Tenant, fake: FakeAuthority) -> TokenProvider:
    return TokenProvider(tenant, httpx.Client(transport=httpx.MockTransport(fake)))


def _secret_tenant(monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> Tenant:
    monkeypatch.setenv("SYNCCTL_TEST_SECRET", "s3cr3t-value")
    return Tenant(
        id=TENANT,
        client_id=CLIENT,
        credential=ClientSecretCredential(SecretRef(env="SYNCCTL_TEST_SECRET")),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("cloud", list(Cloud))
def test_each_cloud_signs_in_at_its_authority_for_its_graph(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority_host, graph_root = EXPECTED[cloud]
    tenant = _secret_tenant(monkeypatch, cloud=cloud)
    assert authority_url(tenant) == f"https://{authority_host}/{TENANT}"
    assert graph_base(tenant) == f"{graph_root}/v1.0"
    assert graph_resource(tenant) == graph_root
    fake = FakeAuthority()
    assert _provider(tenant, fake).token() == "at-1"
    assert {r.url.host for r in fake.requests} == {authority_host}
    (form,) = fake.token_forms()
    assert form["scope"] == [f"{graph_scope(tenant)}"]
    assert form["scope"] == [f"{graph_root}/.default"]
    assert form["client_secret"] == ["s3cr3t-value"]
    assert form["grant_type"] == ["client_credentials"]


def test_endpoints_override_the_cloud_and_skip_instance_discovery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = _secret_tenant(
        monkeypatch,
        cloud=Cloud.CHINA,
        endpoints=Endpoints(authority="https://idp.example.test/", graph="https://g.example.test"),
    )
    fake = FakeAuthority()
    _provider(tenant, fake).token()
    assert {r.url.host for r in fake.requests} == {"idp.example.test"}
    assert not any("discovery/instance" in r.url.path for r in fake.requests)
    assert fake.token_forms()[0]["scope"] == ["https://g.example.test/.default"]


def test_tokens_are_cached_for_the_run_and_refresh_fetches_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAuthority()
    provider = _provider(_secret_tenant(monkeypatch), fake)
    assert [provider.token() for _ in range(3)] == ["at-1"] * 3
    assert provider.refresh() == "at-2"
    assert provider.token() == "at-2"
    assert fake.tokens_issued == 2


def test_federated_token_file_is_reread_on_every_token_request(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("jwt-one\n")
    tenant = Tenant(
        id=TENANT, client_id=CLIENT, credential=FederatedTokenCredential(file=token_file)
    )
    fake = FakeAuthority()
    provider = _provider(tenant, fake)
    provider.token()
    token_file.write_text("jwt-two")  # kubelet rotated it
    provider.refresh()
    assertions = [f["client_assertion"][0] for f in fake.token_forms()]
    assert assertions == ["jwt-one", "jwt-two"]
    assert fake.token_forms()[0]["client_assertion_type"] == [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]


def test_github_actions_token_is_requested_with_the_federation_audience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAuthority()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "actions.test":
            assert request.headers["Authorization"] == "Bearer runner-token"
            assert request.url.params["audience"] == "api://AzureADTokenExchange"
            assert request.url.params["api-version"] == "2.0"
            return httpx.Response(200, json={"value": "gh-jwt"})
        return fake(request)

    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "https://actions.test/token?api-version=2.0")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-token")
    tenant = Tenant(
        id=TENANT, client_id=CLIENT, credential=FederatedTokenCredential(github_actions=True)
    )
    provider = TokenProvider(tenant, httpx.Client(transport=httpx.MockTransport(handler)))
    provider.token()
    assert fake.token_forms()[0]["client_assertion"] == ["gh-jwt"]


def test_azure_pipelines_token_uses_the_service_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAuthority()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "ado.test":
            assert request.method == "POST"
            assert request.url.params["serviceConnectionId"] == "sc-1"
            assert request.url.params["api-version"] == "7.1"
            assert request.headers["Authorization"] == "Bearer ado-token"
            return httpx.Response(200, json={"oidcToken": "ado-jwt"})
        return fake(request)

    monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", "https://ado.test/oidc")
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "ado-token")
    tenant = Tenant(
        id=TENANT,
        client_id=CLIENT,
        credential=FederatedTokenCredential(azure_pipelines_service_connection_id="sc-1"),
    )
    TokenProvider(tenant, httpx.Client(transport=httpx.MockTransport(handler))).token()
    assert fake.token_forms()[0]["client_assertion"] == ["ado-jwt"]


def test_missing_github_environment_is_a_clear_auth_error() -> None:
    tenant = Tenant(
        id=TENANT, client_id=CLIENT, credential=FederatedTokenCredential(github_actions=True)
    )
    with pytest.raises(AuthError, match="id-token: write"):
        _provider(tenant, FakeAuthority()).token()


def test_rejected_sign_in_is_one_line_without_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(
                401,
                json={
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.\nTrace",
                },
            )
        return FakeAuthority()(request)

    tenant = _secret_tenant(monkeypatch)
    provider = TokenProvider(tenant, httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(AuthError) as caught:
        provider.token()
    message = str(caught.value)
    assert message == (
        f"sign-in to tenant {TENANT} (ClientSecret): invalid_client: "
        "AADSTS7000215: Invalid client secret provided."
    )
    assert "s3cr3t" not in message


def test_missing_token_file_is_an_auth_error(tmp_path: Path) -> None:
    tenant = Tenant(
        id=TENANT,
        client_id=CLIENT,
        credential=FederatedTokenCredential(file=tmp_path / "absent"),
    )
    with pytest.raises(AuthError, match="cannot read"):
        _provider(tenant, FakeAuthority()).token()


def test_msal_requests_carry_form_data_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAuthority()
    _provider(_secret_tenant(monkeypatch), fake).token()
    token_request = next(r for r in fake.requests if r.url.path.endswith("/token"))
    assert token_request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    with pytest.raises(json.JSONDecodeError):
        json.loads(token_request.content)


class NotJsonTokenEndpoint(FakeAuthority):
    """A proxy or captive portal answering the token request with a web page."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/v2.0/token"):
            self.requests.append(request)
            return httpx.Response(
                200,
                content=b"<html>Sign in to the proxy</html>",
                headers={"Content-Type": "text/html"},
            )
        return super().__call__(request)


def test_a_token_answer_that_is_not_json_is_one_line_naming_the_endpoint(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    provider = _provider(_secret_tenant(monkeypatch), NotJsonTokenEndpoint())
    with pytest.raises(AuthError) as caught:
        provider.token()
    assert str(caught.value) == (
        f"sign-in to tenant {TENANT} (ClientSecret): POST "
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token answered HTTP 200 with a "
        "body that is not JSON (text/html); is a proxy or captive portal in the way?"
    )
    # MSAL logs the failure with a traceback before raising; none of it is printed (the
    # binary's stderr is checked in tests/integration/source/test_cli.py).
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_directory_id_is_read_from_the_token_tid_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    guid = "6513270e-1111-4222-8333-944445555666"

    class WithJwt(FakeAuthority):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/oauth2/v2.0/token"):
                import base64

                claims = base64.urlsafe_b64encode(json.dumps({"tid": guid}).encode()).rstrip(b"=")
                token = f"e30.{claims.decode()}.sig"
                return httpx.Response(
                    200, json={"access_token": token, "token_type": "Bearer", "expires_in": 3600}
                )
            return super().__call__(request)

    assert _provider(_secret_tenant(monkeypatch), WithJwt()).directory_id() == guid
    # An opaque token (not a JWT) says nothing: no id rather than a guess.
    assert _provider(_secret_tenant(monkeypatch), FakeAuthority()).directory_id() is None
