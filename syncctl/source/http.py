"""The one place syncctl builds HTTP clients for Entra: TLS always verified, extra CAs added.

Both Graph traffic and MSAL's sign-in traffic go through clients built here, so a proxy's or
the emulator's CA (``tenant.ca_bundle``) is trusted in addition to the system's, never instead
of verification.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from syncctl.errors import AuthError
from syncctl.transport import parse_retry_after, tls_context

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=15.0)
USER_AGENT = "syncctl"


def _verified(ca_bundle: Path | None) -> ssl.SSLContext:
    try:
        return tls_context(ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise AuthError(f"ca_bundle {ca_bundle}: cannot load CA certificates: {exc}") from None


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


class MsalHttpClient:
    """The ``http_client`` MSAL expects (``get``/``post`` returning a requests-like response).

    MSAL leaves retries to a custom client, so sign-in requests get a few here: on a dropped
    connection, and on 429/5xx honouring Retry-After (capped: sign-in must fail fast).
    """

    def __init__(self, client: httpx.Client, *, attempts: int = 3, max_wait: float = 10.0):
        self._client = client
        self._attempts = attempts
        self._max_wait = max_wait

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
        last_error: Exception | None = None
        for attempt in range(self._attempts):
            try:
                response = self._client.request(method, url, **options)
            except httpx.TransportError as exc:
                last_error = exc
                time.sleep(min(self._max_wait, 0.2 * 2**attempt))
                continue
            if response.status_code in _TRANSIENT_STATUS and attempt + 1 < self._attempts:
                asked = parse_retry_after(response.headers.get("Retry-After"))
                time.sleep(min(self._max_wait, asked or 0.5 * 2**attempt))
                continue
            return response
        host = httpx.URL(url).host
        raise AuthError(f"{method} {host}: cannot reach the sign-in service: {last_error}")
