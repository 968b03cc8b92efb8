"""The HTTP side of the SCIM target: one verified httpx.Client, auth, retries, error naming.

Everything that talks to a SCIM service provider goes through ``ScimHttp.request``, which
- refuses plain ``http://`` except for loopback hosts (local test servers, with a warning);
- always verifies TLS (the policy's ``ca_bundle`` is added to the default trust store);
- sends a bearer token from ``{env}``/``{file}`` or one obtained with the OAuth 2.0 client
  credentials grant (refreshed once on 401);
- retries 429/503 honouring ``Retry-After``, other 5xx and dropped connections with backoff,
  every wait capped by the per-request retry budget and the run's deadline (syncctl.deadline);
- turns "the whole target is broken" (unreachable, 401/403, a TLS certificate it cannot
  verify) into ``TargetError``; a certificate failure is never retried, it will not change.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from syncctl import deadline
from syncctl.errors import TargetError, TargetRefused, TransientTargetError
from syncctl.policy.model import OAuthClientCredentials, ScimTarget
from syncctl.redaction import remember
from syncctl.transport import parse_retry_after, tls_context

log = logging.getLogger(__name__)

SCIM_JSON = "application/scim+json"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # seconds; a longer Retry-After is treated as this long


class ConnectionLost(TransientTargetError):
    """No answer at all: a write may or may not have reached the server."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # total tries per request
    backoff: float = 0.2  # first pause when the server gives no Retry-After; doubles each try
    max_pause: float = MAX_RETRY_AFTER


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The base URL without a trailing slash; refuses anything but https or loopback http."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host and is_loopback(host):
        log.warning("SCIM target %s uses plain http (allowed only for loopback hosts)", url)
        return url.rstrip("/")
    if parts.scheme == "http":
        raise TargetError(f"SCIM target {url}: plain http is refused for non-loopback hosts")
    raise TargetError(f"SCIM target {url}: not an https URL")


class _TokenAuth(httpx.Auth):
    """Bearer auth whose token comes from a callable; asks for a fresh one once on 401."""

    def __init__(self, fetch: _TokenSource) -> None:
        self._fetch = fetch

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._fetch.token()}"
        response = yield request
        if response.status_code == 401 and self._fetch.refreshable:
            request.headers["Authorization"] = f"Bearer {self._fetch.token(force=True)}"
            yield request


class _TokenSource:
    refreshable = False

    def token(self, force: bool = False) -> str:
        raise NotImplementedError


class _StaticToken(_TokenSource):
    def __init__(self, target: ScimTarget) -> None:
        assert target.token is not None
        self._ref = target.token
        self._value: str | None = None  # revealed on first use, not when the policy loads

    def token(self, force: bool = False) -> str:
        if self._value is None:
            self._value = self._ref.reveal()
        return self._value


class _ClientCredentialsToken(_TokenSource):
    """OAuth 2.0 client credentials grant (RFC 6749 §4.4), cached until shortly before expiry."""

    refreshable = True

    def __init__(
        self, oauth: OAuthClientCredentials, client: httpx.Client, ca_bundle: Path | None
    ) -> None:
        self._oauth = oauth
        self._client = client
        self._ca_bundle = ca_bundle
        self._lock = threading.Lock()
        self._value: str | None = None
        self._expires = 0.0

    def token(self, force: bool = False) -> str:
        with self._lock:
            if force or self._value is None or time.monotonic() >= self._expires:
                self._value, lifetime = self._request()
                self._expires = time.monotonic() + max(0.0, lifetime - 60.0)
            return self._value

    def _request(self) -> tuple[str, float]:
        where = f"POST {self._oauth.token_url}"
        form = {
            "grant_type": "client_credentials",
            "client_id": self._oauth.client_id,
            "client_secret": self._oauth.client_secret.reveal(),
        }
        if self._oauth.scope:
            form["scope"] = self._oauth.scope
        check_url(self._oauth.token_url)
        try:
            response = self._client.post(self._oauth.token_url, data=form)
        except httpx.HTTPError as exc:
            certificate = _certificate_problem(exc)
            if certificate is not None:
                message = certificate_message(self._oauth.token_url, certificate, self._ca_bundle)
                raise TargetError(message) from None
            raise TargetError(
                f"{where}: token endpoint not reachable ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            message = f"{where}: token request refused (status {response.status_code})"
            if 400 <= response.status_code < 500:
                raise TargetRefused(message, status=response.status_code)
            raise TargetError(message)
        try:
            body = response.json()
            token = remember(str(body["access_token"]))
        except (ValueError, KeyError, TypeError):
            raise TargetError(f"{where}: token response has no access_token") from None
        return token, float(body.get("expires_in") or 3600)


# OpenSSL X509_V_ERR_* codes that need another remedy than "trust the CA".
_CERT_EXPIRED = 10
_HOSTNAME_MISMATCH = 62


def _certificate_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind an httpx error, if that is what it is."""
    seen: BaseException | None = exc
    for _ in range(10):  # httpx -> httpcore -> ssl; bounded in case of a cycle
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def certificate_message(
    where: str, error: ssl.SSLCertVerificationError, ca_bundle: Path | None
) -> str:
    """One line naming the certificate problem and what to change."""
    reason = f"{error.reason or 'CERTIFICATE_VERIFY_FAILED'}: {error.verify_message or error}"
    if error.verify_code == _HOSTNAME_MISMATCH:
        return f"{where}: TLS certificate does not match the host ({reason}); check target.url"
    if error.verify_code == _CERT_EXPIRED:
        return f"{where}: TLS certificate not valid ({reason}); the server must renew it"
    if ca_bundle is None:
        hint = "set target.ca_bundle to the CA that signed it"
    else:
        hint = f"target.ca_bundle ({ca_bundle}) does not hold the CA that signed it"
    return f"{where}: TLS certificate not trusted ({reason}); {hint}"


def _ssl_context(target: ScimTarget) -> ssl.SSLContext:
    try:
        return tls_context(target.ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise TargetError(
            f"ca_bundle {target.ca_bundle}: cannot load CA certificates: {exc}"
        ) from None


class ScimHttp:
    """A thread-safe SCIM HTTP session bound to one base URL."""

    def __init__(
        self,
        target: ScimTarget,
        *,
        max_connections: int = 16,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base = check_url(target.url)
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._ca_bundle = target.ca_bundle
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.Client(
            verify=_ssl_context(target),
            timeout=timeout,
            limits=limits,
            headers={"Accept": f"{SCIM_JSON}, application/json"},
        )
        source: _TokenSource
        if target.oauth is not None:
            source = _ClientCredentialsToken(target.oauth, self._client, target.ca_bundle)
        elif target.token is not None:
            source = _StaticToken(target)
        else:
            raise TargetError(f"SCIM target {self.base}: neither token nor oauth is configured")
        self._auth = _TokenAuth(source)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One request with retries; returns the final response, whatever its status.

        Raises TargetError for 401/403 and an unverifiable TLS certificate,
        TransientTargetError when the server is still unreachable, throttling (429) or
        unavailable (502-504) after every retry or after the per-request retry budget, and
        deadline.DeadlineExceeded once the run's deadline has passed. A
        non-idempotent request (POST create) is retried only on 429/503, which say the
        request was not processed; for anything else the caller checks whether it took
        effect before sending it again."""
        url = self.url(path)
        where = f"{method} {url}"
        send_headers = dict(headers or {})
        content: bytes | None = None
        if json is not None:
            import json as _json

            content = _json.dumps(json, separators=(",", ":")).encode()
            send_headers["Content-Type"] = SCIM_JSON
        pause = self.retry.backoff
        waited = 0.0
        last_problem = ""
        response: httpx.Response | None = None
        for attempt in range(1, self.retry.attempts + 1):
            deadline.check(where)
            try:
                response = self._client.request(
                    method,
                    url,
                    content=content,
                    params=params,
                    headers=send_headers,
                    auth=self._auth,
                    timeout=deadline.request_timeout(self._timeout),
                )
            except httpx.TransportError as exc:
                certificate = _certificate_problem(exc)
                if certificate is not None:
                    message = certificate_message(url, certificate, self._ca_bundle)
                    raise TargetError(message) from None
                response = None
                last_problem = f"connection failed ({type(exc).__name__})"
                if not idempotent:
                    break
                wait = pause
            else:
                if response.status_code in (401, 403):
                    label = "401 Unauthorized" if response.status_code == 401 else "403 Forbidden"
                    raise TargetRefused(
                        f"{where}: the SCIM server refused the token ({label})",
                        status=response.status_code,
                    )
                if response.status_code not in RETRY_STATUSES:
                    return response
                if not idempotent and response.status_code not in (429, 503):
                    return response
                last_problem = f"status {response.status_code}"
                given = parse_retry_after(response.headers.get("Retry-After"))
                wait = pause if given is None else given
            if attempt == self.retry.attempts:
                break
            try:
                wait = deadline.bounded_wait(where, min(wait, self.retry.max_pause), waited)
            except deadline.RetryBudgetExceeded:
                last_problem += f", gave up after {waited:.1f}s of waiting"
                break
            log.info("%s: %s, retry %d in %.1fs", where, last_problem, attempt, wait)
            time.sleep(wait)
            waited += wait
            pause *= 2
        if response is not None and response.status_code == 500:
            return response  # one object's failure (the caller reports it), not an outage
        # Still throttled, unavailable or unreachable after every retry: the target is down.
        error = ConnectionLost if response is None else TransientTargetError
        raise error(f"{where}: {last_problem} (attempt {attempt} of {self.retry.attempts})")

    def close(self) -> None:
        self._client.close()
