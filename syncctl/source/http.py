"""The one place syncctl builds HTTP clients for Entra: TLS always verified, extra CAs added.

Both Graph traffic and MSAL's sign-in traffic go through clients built here, so a proxy's or
the emulator's CA (``tenant.ca_bundle``) is trusted in addition to the system's, never instead
of verification.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from syncctl import deadline
from syncctl.errors import SignInUnreachable
from syncctl.transport import parse_retry_after, tls_context

READ_TIMEOUT = 60.0
CONNECT_TIMEOUT = 15.0
DEFAULT_TIMEOUT = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
USER_AGENT = "syncctl"


def request_timeout() -> httpx.Timeout:
    """The timeouts of one request: the defaults, cut short so that no request outlives the
    run's deadline (``--timeout``)."""
    seconds = deadline.request_timeout(READ_TIMEOUT)
    return httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT, seconds))


def _verified(ca_bundle: Path | None) -> ssl.SSLContext:
    try:
        return tls_context(ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        # Without its CA nothing can be verified, so nothing can be asked: unreachable.
        raise SignInUnreachable(
            f"ca_bundle {ca_bundle}: cannot load CA certificates: {exc}"
        ) from None


def build_http_client(
    ca_bundle: Path | None, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT, max_connections: int = 8
) -> httpx.Client:
    """HTTP/1.1 with keep-alive, verified TLS, a request timeout."""
    return httpx.Client(
        verify=_verified(ca_bundle),
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Exchange:
    """The last request MSAL made and what came back, for naming it in errors."""

    method: str
    url: str
    status: int
    content_type: str

    def not_json(self) -> str:
        kind = self.content_type.split(";")[0].strip() or "no content type"
        return (
            f"{self.method} {self.url} answered HTTP {self.status} with a body that is not "
            f"JSON ({kind}); is a proxy or captive portal in the way?"
        )


class MsalHttpClient:
    """The ``http_client`` MSAL expects (``get``/``post`` returning a requests-like response).

    MSAL leaves retries to a custom client, so sign-in requests get a few here: on a dropped
    connection, and on 429/5xx honouring Retry-After (capped: sign-in must fail fast), all
    within the run's deadline and the per-request retry budget (``syncctl.deadline``).
    """

    def __init__(self, client: httpx.Client, *, attempts: int = 3, max_wait: float = 10.0):
        self._client = client
        self._attempts = attempts
        self._max_wait = max_wait
        self._last = threading.local()

    @property
    def last_exchange(self) -> Exchange | None:
        """This thread's last answered request (MSAL signs in from Graph's worker threads)."""
        exchange: Exchange | None = getattr(self._last, "exchange", None)
        return exchange

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        return self._send("GET", url, params=params, headers=headers, **kwargs)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> Any:
        return self._send("POST", url, params=params, data=data, headers=headers, **kwargs)

    def close(self) -> None:
        """The client is owned by whoever built it; MSAL must not close it."""

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        options = {k: v for k, v in kwargs.items() if k in ("params", "data", "headers", "json")}
        if isinstance(options.get("data"), dict):
            # MSAL hands some form values (the signed client assertion) over as bytes, which
            # httpx would spell as "b'...'": decode them; drop unset values as requests does.
            options["data"] = {
                k: v.decode() if isinstance(v, bytes) else v
                for k, v in options["data"].items()
                if v is not None
            }
        target = httpx.URL(url)
        label = f"sign-in {method} {target.host}{target.path}"
        last_error: Exception | None = None
        waited = 0.0  # failed attempts and pauses so far: the request's retry budget
        for attempt in range(self._attempts):
            deadline.check(label)
            started = time.monotonic()
            more = attempt + 1 < self._attempts
            try:
                response = self._client.request(method, url, timeout=request_timeout(), **options)
            except httpx.TransportError as exc:
                last_error = exc
                waited += time.monotonic() - started
                if more:
                    waited += self._pause(label, 0.2 * 2**attempt, waited)
                continue
            if response.status_code in _TRANSIENT_STATUS and more:
                waited += time.monotonic() - started
                asked = parse_retry_after(response.headers.get("Retry-After"))
                waited += self._pause(label, asked or 0.5 * 2**attempt, waited)
                continue
            self._last.exchange = Exchange(
                method,
                str(target.copy_with(query=None)),
                response.status_code,
                response.headers.get("Content-Type", ""),
            )
            return response
        raise SignInUnreachable(
            f"{method} {target.host}: cannot reach the sign-in service: {last_error}"
        )

    def _pause(self, label: str, wanted: float, waited: float) -> float:
        pause = deadline.bounded_wait(label, min(self._max_wait, wanted), waited)
        time.sleep(pause)
        return pause
