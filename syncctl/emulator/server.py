"""The emulator's HTTPS server: a threaded stdlib server with a trustme test CA.

``running_emulator(tenant)`` starts it on 127.0.0.1 in a background thread and stops it on
exit; ``Emulator`` exposes the URLs, the CA bundle, the app registrations (the default app's
credential, more apps with chosen permissions) and the failure knobs.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import trustme

from syncctl.emulator.control import PREFIX as CONTROL_PREFIX
from syncctl.emulator.control import Control
from syncctl.emulator.delegated import DelegatedFlows
from syncctl.emulator.faults import Fault, Faults
from syncctl.emulator.graph import GraphService
from syncctl.emulator.identity import Identity
from syncctl.emulator.request import GraphRequest
from syncctl.emulator.responses import Response, graph_error, identity_error, rewritten
from syncctl.emulator.tenant import EmulatorTenant, generate_tenant
from syncctl.emulator.throttle import ResourceUnitBudget

RequestRecord = tuple[str, str, str]  # (method, path, query string)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, emulator: Emulator):
        self.context = context
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens here, in the connection's own thread, so one slow client
        # cannot hold up accept().
        raw: socket.socket = request
        with self.connections_lock:
            self.connections.add(raw)
        try:
            try:
                tls = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                return
            _Handler(tls, client_address, self)
        finally:
            with self.connections_lock:
                self.connections.discard(raw)

    def drop_connections(self) -> None:
        with self.connections_lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TLSServer
    timeout = 120
    # Small answers otherwise wait ~40 ms for the client's delayed ACK (Nagle's algorithm):
    # Graph does not do that, and every test and benchmark would pay it per request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read ``emu.requests`` instead of a log."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def _handle(self) -> None:
        emulator = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        if emulator.control is not None and parts.path.startswith(CONTROL_PREFIX):
            headers = dict(self.headers.items())
            response = emulator.control.handle(self.command, parts.path, headers, body)
            self._send(response, truncate=False)
            return
        emulator.record(self.command, parts.path, parts.query)
        fault = emulator.faults.take(self.command, self.path)
        pause = emulator.faults.latency + (fault.delay if fault else 0.0)
        if pause > 0:
            time.sleep(pause)
        if fault is not None and fault.reset:
            self._reset()
            return
        if fault is not None and fault.body is not None:
            response = Response(fault.status or 200, fault.body, {"Content-Type": "text/html"})
        elif fault is not None and fault.status is not None and not fault.truncate:
            response = self._fault_response(parts.path, fault)
        else:
            try:
                response = emulator.respond(
                    self.command, self.path, dict(self.headers.items()), body
                )
                if fault is not None and fault.rewrite is not None:
                    response = rewritten(response, fault.rewrite)
            except Exception as exc:  # an emulator bug must reach the test as a 500, not a hang
                response = graph_error(500, f"emulator error: {type(exc).__name__}: {exc}")
        self._send(response, truncate=bool(fault and fault.truncate))

    def _fault_response(self, path: str, fault: Fault) -> Response:
        status = fault.status or 503
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if path.startswith("/v1.0/"):
            return graph_error(status, fault.message, headers=headers)
        response = identity_error(
            status, "temporarily_unavailable", 50196, fault.message or "The server is busy."
        )
        response.headers.update(headers)
        return response

    def _send(self, response: Response, *, truncate: bool) -> None:
        try:
            self.send_response(response.status, response.reason)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if truncate:
                self.wfile.write(response.body[: len(response.body) // 2])
                self.wfile.flush()
                self._reset()
                return
            if response.body:
                self.wfile.write(response.body)
        except OSError:
            # The client gave up first (its timeout ran out during a `delay` fault): nothing
            # to answer, and nothing worth a traceback on the test's terminal.
            self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, as a crashed proxy would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


class Emulator:
    """A running (or ready to run) emulator for one tenant. Its default app registration
    (``client_id``, ``client_secret``) is granted ``DEFAULT_ROLES``, what syncctl needs;
    ``add_application`` registers more, each with the roles a test chooses."""

    def __init__(
        self,
        tenant: EmulatorTenant,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ca_path: Path | None = None,
    ) -> None:
        self.tenant = tenant
        self._workdir = Path(tempfile.mkdtemp(prefix="syncctl-emulator-"))
        self.ca = trustme.CA(organization_name="syncctl emulator test CA")
        server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(context)
        self.ca_bundle = ca_path or self._workdir / "emulator-ca.pem"
        try:
            self.ca.cert_pem.write_to_path(str(self.ca_bundle))
            self._server = _TLSServer((host, port), context, self)
        except OSError:
            shutil.rmtree(self._workdir, ignore_errors=True)
            raise
        self.port: int = self._server.server_address[1]
        self.authority = f"https://{host}:{self.port}"
        self.graph = self.authority
        self.faults = Faults()
        self.budget = ResourceUnitBudget()
        self.identity = Identity(self.authority, tenant.tenant_id, tenant.domain)
        identity = self.identity

        def now() -> float:
            # late-bound: a test may replace identity.clock at any time
            return identity.clock()

        self.delegated = DelegatedFlows(
            base_url=self.authority,
            tenant=tenant,
            applications=identity.find_application,
            sign=identity.sign,
            clock=now,
            token_lifetime=lambda: identity.token_lifetime,
        )
        identity.delegated = self.delegated
        self.service = GraphService(tenant, self.graph, self.identity, self.faults, self.budget)
        tenant.sorted_ids("users")  # index the largest collection before the first client
        self.requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.control: Control | None = None

    # ---- credentials ------------------------------------------------------------------------
    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def client_id(self) -> str:
        return self.identity.client_id

    @property
    def client_secret(self) -> str:
        return self.identity.client_secret

    @property
    def token_lifetime(self) -> int:
        return self.identity.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: int) -> None:
        self.identity.token_lifetime = seconds

    def mint_token(self, lifetime: int = 3600, client_id: str | None = None) -> str:
        """A Graph token for an app (default: the default app) carrying its current roles."""
        return self.identity.mint_token(lifetime, client_id=client_id)

    def add_application(
        self, roles: Iterable[str] = (), *, public_client: bool = False
    ) -> tuple[str, str]:
        """Register another app granted exactly ``roles`` (Graph application permissions,
        e.g. ``("User.Read.All",)``); returns its ``(client_id, client_secret)``. With
        ``public_client`` its public client flows are allowed: users sign in to it by device
        code or authorization code without a secret (the default app is confidential)."""
        app = self.identity.add_application(roles, public_client=public_client)
        return app.client_id, app.client_secret

    # ---- interactive sign-in (syncctl.emulator.delegated) -----------------------------------
    @property
    def device_login_url(self) -> str:
        """The device code flow's ``verification_uri``: a page where a person approves."""
        return self.delegated.verification_uri

    def pending_device_codes(self) -> list[str]:
        """User codes of device sign-ins waiting for approval, oldest first."""
        return self.delegated.pending_device_codes()

    def approve_device_code(self, user_code: str, user: str | None = None) -> str:
        """Sign ``user`` (UPN or object id; default: the first enabled member user) in for
        ``user_code``; returns the user's object id. DelegatedError (a ValueError) for an
        unknown, expired or already used code, or an unknown or disabled user."""
        return self.delegated.approve_device_code(user_code, user)

    def decline_device_code(self, user_code: str) -> None:
        """The user declines: the client's next poll answers ``authorization_declined``."""
        self.delegated.decline_device_code(user_code)

    def wait_for_device_poll(self, user_code: str, timeout: float = 10.0) -> bool:
        """Block until the client polled for ``user_code`` (False when ``timeout`` passed)."""
        return self.delegated.wait_for_device_poll(user_code, timeout)

    @property
    def interactive_user(self) -> str | None:
        """Who the authorize endpoint signs in (UPN or object id); None: the login_hint's
        user when it names one, else the first enabled member user."""
        return self.delegated.interactive_user

    @interactive_user.setter
    def interactive_user(self, user: str | None) -> None:
        self.delegated.interactive_user = user

    def revoke_refresh_tokens(self, user: str | None = None) -> int:
        """Revoke refresh tokens (of ``user``, default everyone's): refreshing answers
        invalid_grant AADSTS50173. Returns how many were revoked."""
        return self.delegated.revoke_refresh_tokens(user)

    @property
    def device_code_interval(self) -> int:
        """Seconds a client must wait between polls (Entra: 5); 0 lets MSAL poll at once."""
        return self.delegated.device_code_interval

    @device_code_interval.setter
    def device_code_interval(self, seconds: int) -> None:
        self.delegated.device_code_interval = seconds

    @property
    def device_code_lifetime(self) -> int:
        """Seconds a device code stays valid (Entra: 900), on the identity clock."""
        return self.delegated.device_code_lifetime

    @device_code_lifetime.setter
    def device_code_lifetime(self, seconds: int) -> None:
        self.delegated.device_code_lifetime = seconds

    def roles(self, client_id: str | None = None) -> tuple[str, ...]:
        """The roles an app (default: the default app) is granted."""
        return self.identity.application(client_id).roles

    def set_roles(self, roles: Iterable[str], client_id: str | None = None) -> None:
        """Grant an app (default: the default app) exactly ``roles``. Tokens carry the roles
        they were issued with: a client holding a cached token must get a new one to see
        the change (MSAL caches tokens per app)."""
        self.identity.set_roles(roles, client_id)

    def add_client_certificate(self, cert_pem: bytes, client_id: str | None = None) -> None:
        self.identity.add_client_certificate(cert_pem, client_id)

    def add_federated_credential(
        self,
        issuer: str,
        subject: str,
        public_key_pem: bytes | None = None,
        client_id: str | None = None,
    ) -> None:
        self.identity.add_federated_credential(issuer, subject, public_key_pem, client_id)

    # ---- knobs ------------------------------------------------------------------------------
    def throttle(self, resource_units_per_10s: int | None, window_seconds: float = 10.0) -> None:
        """Budget of resource units per window (None: no throttling). A shorter window keeps
        tests fast; Retry-After is then at most ``ceil(window_seconds)``."""
        self.budget.configure(resource_units_per_10s, window_seconds)

    def expire_delta_tokens(self) -> None:
        self.service.delta.expire_tokens()

    def replay_delta(self) -> None:
        self.service.delta.replay()

    @property
    def latency(self) -> float:
        return self.faults.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.faults.latency = seconds

    def record(self, method: str, path: str, query: str) -> None:
        with self._requests_lock:
            self.requests.append((method, path, query))

    def reset_requests(self) -> None:
        with self._requests_lock:
            self.requests.clear()

    def recorded(self) -> list[RequestRecord]:
        with self._requests_lock:
            return list(self.requests)

    def enable_control(self) -> str:
        """Serve ``/_emulator/`` (syncctl.emulator.control) for a harness in another process;
        returns the key its requests must carry (a new one each call)."""
        key = secrets.token_urlsafe(24)
        self.control = Control(
            key, self.tenant, self.recorded, self.reset_requests, delegated=self.delegated
        )
        return key

    # ---- serving ----------------------------------------------------------------------------
    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path = parts.path
        if path.startswith("/v1.0/"):
            return self.service.handle(GraphRequest.from_target(method, target, headers, body))
        segments = [s for s in path.split("/") if s]
        if method == "GET" and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self.identity.openid_configuration(segments[0])
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if method == "POST" and segments[1:] == ["oauth2", "v2.0", "token"]:
            return self.identity.token(segments[0], form, _basic_auth(headers))
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if segments == ["devicelogin"] and method in ("GET", "POST"):
            return self.delegated.device_login_page(method, query if method == "GET" else form)
        interactive = len(segments) == 4 and segments[1:3] == ["oauth2", "v2.0"]
        if interactive and not self.identity.knows_tenant(segments[0]):
            return identity_error(
                400, "invalid_tenant", 90002, f"Tenant '{segments[0]}' not found."
            )
        if interactive and method == "POST" and segments[3] == "devicecode":
            return self.delegated.device_authorization(form)
        if interactive and method == "GET" and segments[3] == "authorize":
            return self.delegated.authorize(query)
        return graph_error(404, f"No emulated endpoint at {path}.", "Request_ResourceNotFound")

    def start(self) -> Emulator:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"syncctl-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.drop_connections()
        self._server.server_close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _basic_auth(headers: dict[str, str]) -> tuple[str, str] | None:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    return unquote(user), unquote(password)


@contextlib.contextmanager
def running_emulator(
    tenant: EmulatorTenant | None = None, port: int = 0, host: str = "127.0.0.1"
) -> Iterator[Emulator]:
    """Serve ``tenant`` (default: a generated 100-user tenant) over TLS until the block ends."""
    if tenant is None:
        tenant = generate_tenant(users=100, groups=20, seed=7)
    emulator = Emulator(tenant, host=host, port=port)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
