"""Sign-in through real msal over TLS: secret, certificate and federated assertions, and
Graph's 401 answers for missing, malformed, foreign and expired tokens."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import msal
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from syncctl.emulator import Emulator

from .conftest import GRAPH_SCOPE, Graph, MsalHttpx, assert_graph_error, msal_app


def test_msal_client_secret_gets_a_token_graph_accepts(emu: Emulator, http: httpx.Client) -> None:
    result = msal_app(emu, http, emu.client_secret).acquire_token_for_client(GRAPH_SCOPE)
    assert result["token_type"] == "Bearer"
    assert 0 < result["expires_in"] <= 3600
    response = http.get(
        f"{emu.graph}/v1.0/users?$top=1",
        headers={"Authorization": f"Bearer {result['access_token']}"},
    )
    assert response.status_code == 200
    assert len(response.json()["value"]) == 1
    paths = [path for _, path, _ in emu.requests]
    assert paths[:2] == [
        f"/{emu.tenant_id}/v2.0/.well-known/openid-configuration",
        f"/{emu.tenant_id}/oauth2/v2.0/token",
    ]


def test_emulator_scope_is_accepted_like_the_graph_resource(
    emu: Emulator, http: httpx.Client
) -> None:
    result = msal_app(emu, http, emu.client_secret).acquire_token_for_client(
        [f"{emu.graph}/.default"]
    )
    assert "access_token" in result, result


@pytest.mark.parametrize(
    ("client_id", "secret", "scopes", "error", "aadsts"),
    [
        (None, "wrong-secret", GRAPH_SCOPE, "invalid_client", 7000215),
        (str(uuid.UUID(int=1)), None, GRAPH_SCOPE, "unauthorized_client", 700016),
        (None, None, ["https://graph.microsoft.com/User.Read"], "invalid_scope", 1002012),
        (None, None, ["https://vault.example/.default"], "invalid_resource", 500011),
    ],
)
def test_bad_credentials_are_refused_with_aadsts_codes(
    emu: Emulator,
    http: httpx.Client,
    client_id: str | None,
    secret: str | None,
    scopes: list[str],
    error: str,
    aadsts: int,
) -> None:
    app = msal.ConfidentialClientApplication(
        client_id or emu.client_id,
        client_credential=secret or emu.client_secret,
        authority=f"{emu.authority}/{emu.tenant_id}",
        instance_discovery=False,
        http_client=http,
    )
    result = app.acquire_token_for_client(scopes)
    assert "access_token" not in result
    assert result["error"] == error
    assert result["error_codes"] == [aadsts]
    assert result["error_description"].startswith(f"AADSTS{aadsts}:")
    assert emu.client_secret not in result["error_description"]


def test_unknown_tenant_fails_discovery(emu: Emulator, http: httpx.Client) -> None:
    response = http.get(f"{emu.authority}/contoso.invalid/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_certificate_assertion_signed_by_registered_cert(emu: Emulator, http: httpx.Client) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    cert = ca.issue_cert("syncctl-client", key_type=trustme.KeyType.RSA)
    credential = {
        "private_key": cert.private_key_pem.bytes().decode(),
        "public_certificate": cert.cert_chain_pems[0].bytes().decode(),
    }
    client = MsalHttpx(http)
    refused = msal_app(emu, client, credential).acquire_token_for_client(GRAPH_SCOPE)
    assert refused.get("error") == "invalid_client", refused
    assert refused["error_codes"] == [700027]

    emu.add_client_certificate(cert.cert_chain_pems[0].bytes())
    result = msal_app(emu, client, credential).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result


def test_msal_with_bare_httpx_sends_a_bytes_assertion_that_entra_refuses(
    emu: Emulator, http: httpx.Client
) -> None:
    """A pitfall the Graph client must avoid: msal hands the signed certificate assertion to
    ``http_client.post`` as bytes, and httpx form-encodes it as the text ``b'eyJ...'``."""
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    cert = ca.issue_cert("syncctl-client", key_type=trustme.KeyType.RSA)
    emu.add_client_certificate(cert.cert_chain_pems[0].bytes())
    credential = {
        "private_key": cert.private_key_pem.bytes().decode(),
        "public_certificate": cert.cert_chain_pems[0].bytes().decode(),
    }
    result = msal_app(emu, http, credential).acquire_token_for_client(GRAPH_SCOPE)
    assert result.get("error_codes") == [50027], result


def _signed_assertion(key: rsa.RSAPrivateKey, **claims: object) -> str:
    now = int(time.time())
    payload = {"aud": "api://AzureADTokenExchange", "iat": now, "nbf": now, "exp": now + 300}
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="RS256")


def test_federated_assertion_with_matching_issuer_and_subject(
    emu: Emulator, http: httpx.Client
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issuer = "https://token.actions.githubusercontent.com"
    subject = "repo:contoso/policies:ref:refs/heads/main"
    emu.add_federated_credential(issuer, subject, public_pem)

    def assertion() -> str:
        return _signed_assertion(key, iss=issuer, sub=subject)

    ok = msal_app(emu, http, {"client_assertion": assertion}).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in ok, ok

    wrong_subject = _signed_assertion(key, iss=issuer, sub="repo:contoso/other:ref:refs/heads/main")
    refused = msal_app(
        emu, http, {"client_assertion": lambda: wrong_subject}
    ).acquire_token_for_client(GRAPH_SCOPE)
    assert refused["error_codes"] == [70021]

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = _signed_assertion(other_key, iss=issuer, sub=subject)
    refused = msal_app(emu, http, {"client_assertion": lambda: forged}).acquire_token_for_client(
        GRAPH_SCOPE
    )
    assert refused["error_codes"] == [700027]

    wrong_audience = _signed_assertion(key, iss=issuer, sub=subject, aud="https://example.test")
    refused = msal_app(
        emu, http, {"client_assertion": lambda: wrong_audience}
    ).acquire_token_for_client(GRAPH_SCOPE)
    assert refused["error_codes"] == [700212]

    expired = _signed_assertion(key, iss=issuer, sub=subject, exp=int(time.time()) - 10)
    refused = msal_app(emu, http, {"client_assertion": lambda: expired}).acquire_token_for_client(
        GRAPH_SCOPE
    )
    assert refused["error_codes"] == [700024]


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer not-a-jwt", "JWT is not well formed"),
        ("Basic dXNlcjpwYXNz", "Access token is empty."),
    ],
)
def test_graph_rejects_missing_or_malformed_tokens(
    emu: Emulator, http: httpx.Client, authorization: str | None, message: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = http.get(f"{emu.graph}/v1.0/users", headers=headers)
    error = assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert message in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_graph_rejects_a_token_signed_by_someone_else(emu: Emulator, http: httpx.Client) -> None:
    forged = jwt.encode(
        {"aud": "https://graph.microsoft.com", "tid": emu.tenant_id, "exp": time.time() + 60},
        "not the emulator's key, but long enough for HS256",
        algorithm="HS256",
    )
    response = http.get(f"{emu.graph}/v1.0/users", headers={"Authorization": f"Bearer {forged}"})
    assert_graph_error(response, 401, "InvalidAuthenticationToken")


class FakeClock:
    """The emulator's token clock, moved by the test instead of waiting (never ahead of the
    real time, which MSAL and PyJWT still use for everything else)."""

    def __init__(self) -> None:
        self.now = time.time() - 60

    def __call__(self) -> float:
        return self.now


def test_token_expires_mid_run(emu: Emulator, http: httpx.Client) -> None:
    clock = FakeClock()
    emu.identity.clock = clock
    emu.token_lifetime = 1
    result = msal_app(emu, http, emu.client_secret).acquire_token_for_client(GRAPH_SCOPE)
    assert result["expires_in"] == 1
    headers = {"Authorization": f"Bearer {result['access_token']}"}
    assert http.get(f"{emu.graph}/v1.0/users?$top=1", headers=headers).status_code == 200
    clock.now += 0.99  # within the announced second, whatever fraction it was minted at
    assert http.get(f"{emu.graph}/v1.0/users?$top=1", headers=headers).status_code == 200
    clock.now += 1.02  # past exp, which is at most a second after the announced lifetime
    response = http.get(f"{emu.graph}/v1.0/users?$top=1", headers=headers)
    error = assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert "expired" in error["message"]


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.5, 0.999])
def test_minted_tokens_last_at_least_their_lifetime(emu: Emulator, fraction: float) -> None:
    """The flake this replaces: exp was int(now) + lifetime, up to a second short."""
    clock = FakeClock()
    clock.now = float(int(clock.now)) + fraction
    emu.identity.clock = clock
    token = emu.mint_token(lifetime=1)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] >= clock.now + 1
    assert emu.identity.check_bearer(f"Bearer {token}") is None
    clock.now += 1.0 - 1e-6
    assert emu.identity.check_bearer(f"Bearer {token}") is None
    clock.now += 1.0
    assert "expired" in (emu.identity.check_bearer(f"Bearer {token}") or "")


def test_minted_tokens_work_for_a_fake_imds(emu: Emulator, http: httpx.Client) -> None:
    token = emu.mint_token(lifetime=60)
    response = http.get(
        f"{emu.graph}/v1.0/groups?$top=2", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert len(response.json()["value"]) == 2


def test_graph_helper_reuses_the_cached_token(graph: Graph, emu: Emulator) -> None:
    graph.ok("/users?$top=1")
    graph.ok("/groups?$top=1")
    token_calls = [p for _, p, _ in emu.requests if p.endswith("/oauth2/v2.0/token")]
    assert len(token_calls) == 1
