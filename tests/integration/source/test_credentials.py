"""End to end, per credential kind: real msal signs in to the TLS emulator, real httpx reads
Graph, and every kind yields the same snapshot."""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from syncctl.emulator import Emulator
from syncctl.errors import AuthError
from syncctl.model import SourceSnapshot
from syncctl.policy.model import (
    CertificateCredential,
    ClientSecretCredential,
    FederatedTokenCredential,
    ManagedIdentityCredential,
    SecretRef,
)
from syncctl.source import read_source
from tests.integration.source.conftest import emulator_policy

ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "repo:contoso/policies:ref:refs/heads/main"
GITHUB_SUBJECT = "repo:contoso/policies:environment:production"


def _baseline(emu: Emulator) -> SourceSnapshot:
    return read_source(emulator_policy(emu), managed_ids=())


def _key_and_cert() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncctl test app")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def test_client_secret(emu: Emulator) -> None:
    snapshot = _baseline(emu)
    assert len(snapshot.users) > 10
    assert ("POST", f"/{emu.tenant_id}/oauth2/v2.0/token", "") in emu.requests


def test_wrong_client_secret_is_a_clear_auth_error(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRONG_SECRET", "not-the-secret")
    policy = emulator_policy(emu, ClientSecretCredential(SecretRef(env="WRONG_SECRET")))
    with pytest.raises(AuthError) as caught:
        read_source(policy, managed_ids=())
    message = str(caught.value)
    assert message.startswith(f"sign-in to tenant {emu.tenant_id} (ClientSecret): invalid_client")
    assert "not-the-secret" not in message and "\n" not in message
    assert not [r for r in emu.requests if r[1].startswith("/v1.0/")]


@pytest.mark.parametrize("encrypted", [False, True])
def test_certificate_pem(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypted: bool
) -> None:
    key, cert = _key_and_cert()
    emu.add_client_certificate(cert.public_bytes(serialization.Encoding.PEM))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(b"pem-pass")
        if encrypted
        else serialization.NoEncryption()
    )
    pem = tmp_path / "app.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    monkeypatch.setenv("PEM_PASS", "pem-pass")
    credential = CertificateCredential(
        path=pem, password=SecretRef(env="PEM_PASS") if encrypted else None
    )
    snapshot = read_source(emulator_policy(emu, credential), managed_ids=())
    assert snapshot.fingerprint() == _baseline(emu).fingerprint()


def test_certificate_pfx(emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, cert = _key_and_cert()
    emu.add_client_certificate(cert.public_bytes(serialization.Encoding.PEM))
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"app", key, cert, None, serialization.BestAvailableEncryption(b"pfx-pass")
        )
    )
    monkeypatch.setenv("PFX_PASS", "pfx-pass")
    credential = CertificateCredential(path=pfx, password=SecretRef(env="PFX_PASS"))
    snapshot = read_source(emulator_policy(emu, credential), managed_ids=())
    assert snapshot.fingerprint() == _baseline(emu).fingerprint()


def test_unregistered_certificate_is_rejected(emu: Emulator, tmp_path: Path) -> None:
    key, cert = _key_and_cert()  # never registered with the emulator
    pem = tmp_path / "app.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(AuthError, match="invalid_client"):
        read_source(emulator_policy(emu, CertificateCredential(path=pem)), managed_ids=())


def _federated_jwt(key: rsa.RSAPrivateKey, subject: str, lifetime: int = 300) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "aud": "api://AzureADTokenExchange",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, key, algorithm="RS256")


def test_federated_token_file_survives_rotation_mid_run(emu: Emulator, tmp_path: Path) -> None:
    key, _ = _key_and_cert()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    emu.add_federated_credential(ISSUER, SUBJECT, public)
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(_federated_jwt(key, SUBJECT))
    policy = emulator_policy(emu, FederatedTokenCredential(file=token_file))
    assert read_source(policy, ()).fingerprint() == _baseline(emu).fingerprint()

    # Short Entra tokens force a new sign-in per request; the file is rotated while reading,
    # so a provider that captured the first token would present a stale one.
    emu.token_lifetime = 1
    rotations = 0

    def rotate() -> None:
        nonlocal rotations
        while not stop.is_set():
            # Atomically, as kubelet's AtomicWriter swaps the projected token in.
            fresh = token_file.with_suffix(".new")
            fresh.write_text(_federated_jwt(key, SUBJECT))
            os.replace(fresh, token_file)
            rotations += 1
            stop.wait(0.05)

    stop = threading.Event()
    rotator = threading.Thread(target=rotate)
    rotator.start()
    try:
        emu.reset_requests()
        snapshot = read_source(policy, ())
    finally:
        stop.set()
        rotator.join()
    token_posts = [r for r in emu.requests if r[1].endswith("/oauth2/v2.0/token")]
    assert len(token_posts) > 1  # signed in again during the run, from the file each time
    assert rotations > 0
    assert snapshot.fingerprint() == _baseline(emu).fingerprint()


def test_federated_token_with_unknown_subject_is_rejected(emu: Emulator, tmp_path: Path) -> None:
    key, _ = _key_and_cert()
    token_file = tmp_path / "token"
    token_file.write_text(_federated_jwt(key, "repo:someone/else:pull_request"))
    with pytest.raises(AuthError, match="70021"):
        read_source(emulator_policy(emu, FederatedTokenCredential(file=token_file)), ())


class _AppServiceIdentity(BaseHTTPRequestHandler):
    """The App Service managed identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER)."""

    server: Any

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self.server.seen.append((self.headers.get("X-IDENTITY-HEADER"), query))
        if self.headers.get("X-IDENTITY-HEADER") != self.server.secret:
            self._answer(400, {"statusCode": 400, "message": "bad identity header"})
            return
        self._answer(
            200,
            {
                "access_token": self.server.mint(),
                "expires_on": str(int(time.time()) + 3600),
                "resource": query["resource"][0],
                "token_type": "Bearer",
            },
        )

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app_service_identity(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreadingHTTPServer]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _AppServiceIdentity)
    server.secret = "identity-header-secret"
    server.mint = emu.mint_token
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{server.server_port}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", server.secret)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("client_id", [None, "9a8b7c6d-0000-4000-8000-000000000001"])
def test_managed_identity_app_service(
    emu: Emulator, app_service_identity: Any, client_id: str | None
) -> None:
    policy = emulator_policy(emu, ManagedIdentityCredential(client_id=client_id))
    snapshot = read_source(policy, managed_ids=())
    assert snapshot.fingerprint() == _baseline(emu).fingerprint()
    ((header, query),) = app_service_identity.seen
    assert header == "identity-header-secret"
    assert query["resource"] == [emu.graph]
    assert query["api-version"] == ["2019-08-01"]
    assert query.get("client_id") == ([client_id] if client_id else None)


def _register_federation(emu: Emulator, subject: str) -> rsa.RSAPrivateKey:
    """A new key for a subject of its own: the emulator is shared by the module's tests."""
    key, _ = _key_and_cert()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    emu.add_federated_credential(ISSUER, subject, public)
    return key


def test_federated_token_from_environment(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    subject = "project_path:contoso/policies:ref_type:branch:ref:main"
    key = _register_federation(emu, subject)
    monkeypatch.setenv("CI_ID_TOKEN", _federated_jwt(key, subject))
    policy = emulator_policy(emu, FederatedTokenCredential(env="CI_ID_TOKEN"))
    assert read_source(policy, ()).fingerprint() == _baseline(emu).fingerprint()


class _GitHubOidc(BaseHTTPRequestHandler):
    """GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL: a fresh JWT for the asked audience."""

    server: Any

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self.server.requests.append(query)
        authorized = self.headers.get("Authorization") == "Bearer runner-token"
        audience = query.get("audience") == ["api://AzureADTokenExchange"]
        status = 200 if authorized and audience else 403
        body = json.dumps({"value": _federated_jwt(self.server.key, GITHUB_SUBJECT)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_federated_token_from_github_actions(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _GitHubOidc)
    server.key = _register_federation(emu, GITHUB_SUBJECT)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        f"http://127.0.0.1:{server.server_port}/token?api-version=2.0",
    )
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-token")
    try:
        policy = emulator_policy(emu, FederatedTokenCredential(github_actions=True))
        snapshot = read_source(policy, ())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert snapshot.fingerprint() == _baseline(emu).fingerprint()
    assert server.requests[0]["api-version"] == ["2.0"]  # the runner's own query was kept
