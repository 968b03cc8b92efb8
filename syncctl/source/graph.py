"""A small Microsoft Graph v1.0 client over one httpx.Client.

What it guarantees: every collection is read to the last ``@odata.nextLink`` or the read
fails; a collection read with ``$count=true`` holds at least as many distinct objects as the
first page's ``@odata.count`` or the read fails (a page that lost items is never taken for the
collection); every page is a JSON object with a ``value`` array of objects with an ``id``;
transient failures (429, 503, 504, dropped connections, truncated bodies) are retried with
Retry-After or capped, jittered exponential backoff, up to a maximum number of attempts and
within the request's retry budget and the run's deadline (``syncctl.deadline``); a 401 gets
one token refresh; every other error becomes a one-line GraphError naming the request, the
HTTP status, the Graph error code, the request-id and the client-request-id (a fresh GUID sent
on every request), and a 403 names the application permission the request needed
(``syncctl.source.permissions``). Near the throttle limit (``x-ms-throttle-limit-percentage``)
requests are spaced out before Graph starts answering 429.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from syncctl import deadline
from syncctl.errors import GraphError
from syncctl.source.graph_errors import (
    cannot_wait,
    error_reason,
    gave_up,
    graph_error,
    reworded,
)
from syncctl.source.http import request_timeout
from syncctl.source.pacing import THROTTLE_WARNING_HEADER, Pacer, throttle_usage
from syncctl.source.pages import announced_count, json_kind, json_or_none, page_values
from syncctl.source.progress import Progress
from syncctl.transport import parse_retry_after

T = TypeVar("T")
R = TypeVar("R")

PAGE_SIZE = 999  # the maximum $top for users, groups and members
BATCH_SIZE = 20  # Graph's JSON batching limit
RETRYABLE_STATUS = frozenset({429, 503, 504})
ADVANCED = {"ConsistencyLevel": "eventual"}
QUERY_SAFE = "$,'()*:/"


class TokenSource(Protocol):
    def token(self) -> str: ...

    def refresh(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5  # first backoff when there is no Retry-After
    max_delay: float = 30.0  # cap of the exponential backoff
    max_retry_after: float = 300.0  # a longer Retry-After fails the read instead of hanging


@dataclass(frozen=True, slots=True)
class Request:
    """One Graph request, addressed relative to the v1.0 root (GETs read collections)."""

    path: str  # e.g. /groups/{id}/members/microsoft.graph.user
    params: Mapping[str, str] = field(default_factory=dict)
    advanced: bool = False  # send ConsistencyLevel: eventual (on every page)
    method: str = "GET"

    def relative_url(self) -> str:
        if not self.params:
            return self.path
        # Spaces as %20 and $ , ' kept literal, as Graph's own examples spell queries.
        query = "&".join(
            f"{key}={quote(value, safe=QUERY_SAFE)}" for key, value in self.params.items()
        )
        return f"{self.path}?{query}"

    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def counted(self) -> bool:
        """Asks for ``@odata.count`` (on the first page), which the read is checked against."""
        return self.params.get("$count", "").lower() == "true"


@dataclass(frozen=True, slots=True)
class Answer:
    """What Graph said to one single-object GET of ``get_each``: ``body`` on 200, ``error``
    (status, Graph error code, request-id) otherwise."""

    status: int
    body: dict[str, Any] | None
    error: GraphError | None


class _Retry(Exception):
    """Internal: this attempt failed transiently; wait ``delay`` (the server's Retry-After,
    None: backoff) and retry."""

    def __init__(self, reason: str, delay: float | None, error: GraphError) -> None:
        super().__init__(reason)
        self.delay = delay
        self.error = error


class GraphClient:
    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        tokens: TokenSource,
        *,
        retry: RetryPolicy = RetryPolicy(),
        concurrency: int = 4,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        base = urlsplit(self._base)
        self._origin = (base.scheme, base.netloc)
        self.tokens = tokens
        self._retry = retry
        self._concurrency = max(1, concurrency)
        self._progress = progress
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock
        self._lock = threading.Lock()
        self.requests_sent = 0
        self.pages = 0
        self.objects = 0
        self.pacer = Pacer(clock=clock, sleep=sleep)

    @property
    def throttle_usage(self) -> float | None:
        """The last x-ms-throttle-limit-percentage Graph sent (None: not near the limit)."""
        return self.pacer.usage

    @property
    def paced_seconds(self) -> float:
        return self.pacer.paced_seconds

    # -- collections -------------------------------------------------------------------------

    def get_all(self, request: Request) -> list[dict[str, Any]]:
        """Every item of a collection, following nextLink to the end."""
        page = self._send("GET", self._absolute(request.relative_url()), request, None)
        return self._drain(request, page)

    def get_many(self, requests: Sequence[Request]) -> list[list[dict[str, Any]]]:
        """Several collections: first pages 20 to a ``$batch`` (one round trip instead of 20),
        remaining pages followed concurrently with a bound. Results in request order."""
        first_pages: list[Any] = [None] * len(requests)
        for start in range(0, len(requests), BATCH_SIZE):
            chunk = list(range(start, min(start + BATCH_SIZE, len(requests))))
            for index, answer in zip(chunk, self._batch([requests[i] for i in chunk]), strict=True):
                first_pages[index] = answer.body

        def finish(index: int) -> list[dict[str, Any]]:
            return self._drain(requests[index], first_pages[index])

        return self.map_bounded(finish, range(len(requests)))

    def get_each(
        self, requests: Sequence[Request], accept: frozenset[int] = frozenset({200, 404})
    ) -> list[Answer]:
        """Single-object GETs (``/directoryObjects/{id}``...), 20 to a ``$batch``, batches sent
        at most ``concurrency`` at a time. An answer whose status is in ``accept`` is returned
        for the caller to judge (a 404 is an answer); transient ones are retried; any other
        fails. Results in request order."""
        chunks = [requests[i : i + BATCH_SIZE] for i in range(0, len(requests), BATCH_SIZE)]
        answered = self.map_bounded(lambda chunk: self._batch(chunk, accept), chunks)
        return [answer for chunk in answered for answer in chunk]

    def post(self, path: str, body: Mapping[str, Any], params: Mapping[str, str]) -> Any:
        request = Request(path, params, method="POST")
        return self._send("POST", self._absolute(request.relative_url()), request, body)

    def map_bounded(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Run independent reads at most ``concurrency`` at a time; the first error wins."""
        work = list(items)
        if len(work) <= 1 or self._concurrency == 1:
            return [function(item) for item in work]
        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            return list(pool.map(function, work))

    # -- internals ---------------------------------------------------------------------------

    def _drain(self, request: Request, page: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        expected = announced_count(request.label(), page, counted=request.counted)
        for current in self._pages(request, page):
            items.extend(current)
        if expected is not None:
            distinct = len({item["id"] for item in items})
            # More than counted is an object added while paging: a real answer. Fewer is a
            # page that lost items, which must never pass for the whole collection.
            if distinct < expected:
                raise GraphError(
                    f"incomplete answer: {distinct} distinct objects read, but the first page "
                    f"counted {expected} (@odata.count); not using a partial collection",
                    request=request.label(),
                )
        return items

    def _pages(self, request: Request, page: Any) -> Iterator[list[dict[str, Any]]]:
        while True:
            values = page_values(request.label(), page)
            self._count_page(request, len(values))
            yield values
            next_link = page.get("@odata.nextLink")
            if next_link is None:
                return
            if not isinstance(next_link, str) or not self._same_origin(next_link):
                # Never send the token to a host other than the Graph root we were given.
                raise GraphError("@odata.nextLink points outside Graph", request=request.label())
            page = self._send("GET", next_link, request, None)

    def _batch(
        self, requests: Sequence[Request], accept: frozenset[int] = frozenset({200})
    ) -> list[Answer]:
        """Up to 20 GETs in one $batch; throttled or failed-transiently items are sent again
        in a smaller batch after their Retry-After. Answers with a status in ``accept`` are
        returned (a 200 must carry a JSON object); any other status fails the read."""
        results: dict[str, Answer] = {}
        pending = {str(i): r for i, r in enumerate(requests)}
        attempt = 0
        waited = 0.0
        while pending:
            attempt += 1
            # Every item gets its own client-request-id, echoed in its error, so a failed item
            # is named to Microsoft support by the id of that item, not of the whole batch.
            client_ids = {item_id: str(uuid.uuid4()) for item_id in pending}
            payload = {
                "requests": [
                    {
                        "id": item_id,
                        "method": "GET",
                        "url": request.relative_url(),
                        "headers": {
                            "client-request-id": client_ids[item_id],
                            **(ADVANCED if request.advanced else {}),
                        },
                    }
                    for item_id, request in sorted(pending.items(), key=lambda kv: int(kv[0]))
                ]
            }
            batch_request = Request("/$batch", method="POST")
            answer = self._send("POST", f"{self._base}/$batch", batch_request, payload)
            responses = answer.get("responses") if isinstance(answer, dict) else None
            if not isinstance(responses, list):
                raise GraphError("response has no `responses` array", request="POST /$batch")
            asked: list[float] = []  # Retry-After of the throttled items
            usage: list[float | None] = []  # the items' throttle warnings (they carry their own)
            last_error: GraphError | None = None
            for response in responses:
                item_id = str(response.get("id")) if isinstance(response, dict) else ""
                if item_id not in pending:
                    continue
                request = pending[item_id]
                status = response.get("status")
                raw_headers = response.get("headers")
                headers = (
                    {str(k).lower(): str(v) for k, v in raw_headers.items()}
                    if isinstance(raw_headers, dict)
                    else {}
                )
                body = response.get("body")
                error = graph_error(request.label(), status, body, headers, client_ids[item_id])
                if status not in RETRYABLE_STATUS:
                    usage.append(throttle_usage(headers.get(THROTTLE_WARNING_HEADER)))
                if status in accept and status != 200:
                    results[item_id] = Answer(status, None, error)
                    del pending[item_id]
                    continue
                if status == 200 and 200 in accept:
                    if not isinstance(body, dict):
                        raise GraphError(
                            f"answered 200 with a body that is {json_kind(body)}, "
                            "not a JSON object",
                            request=request.label(),
                        )
                    results[item_id] = Answer(200, body, None)
                    del pending[item_id]
                    continue
                if status in RETRYABLE_STATUS:
                    last_error = error
                    wait = self._retry_after(headers.get("retry-after"), error)
                    if wait is not None:
                        asked.append(wait)
                    continue
                raise error
            if usage:
                self.pacer.observe(max((u for u in usage if u is not None), default=None))
            answered = {str(r.get("id")) for r in responses if isinstance(r, dict)}
            unanswered = sorted(i for i in pending if i not in answered)
            if unanswered:
                raise GraphError(
                    f"batch answered without item(s) {', '.join(unanswered)}",
                    request="POST /$batch",
                )
            if pending:
                assert last_error is not None
                if attempt >= self._retry.max_attempts:
                    raise gave_up(last_error, attempt)
                waited += self._pause(max(asked) if asked else None, attempt, waited, last_error)
        return [results[str(i)] for i in range(len(requests))]

    def _send(self, method: str, url: str, request: Request, body: Any) -> Any:
        refreshed = False
        attempt = 0
        waited = 0.0  # failed attempts and pauses so far: the request's retry budget
        while True:
            deadline.check(request.label())
            attempt += 1
            started = time.monotonic()
            try:
                return self._attempt(method, url, request, body, attempt)
            except _Unauthorized as unauthorized:
                if refreshed:
                    raise reworded(
                        unauthorized.error, "access token rejected again after a refresh"
                    ) from None
                refreshed = True
                self.tokens.refresh()
                attempt -= 1  # a token refresh is not a failed attempt
            except _Retry as retry:
                waited += time.monotonic() - started  # a timeout is time spent retrying too
                if attempt >= self._retry.max_attempts:
                    raise gave_up(retry.error, attempt) from None
                waited += self._pause(retry.delay, attempt, waited, retry.error)

    def _pause(self, asked: float | None, attempt: int, waited: float, error: GraphError) -> float:
        """Sleep before the next attempt: the server's Retry-After (``asked``) or backoff, but
        never past the request's retry budget or the run's deadline. Returns the pause."""
        label = error.request or "Graph request"
        wanted = asked if asked is not None else self._backoff(attempt)
        try:
            allowed = deadline.bounded_wait(label, wanted, waited)
        except (deadline.DeadlineExceeded, deadline.RetryBudgetExceeded) as exc:
            raise type(exc)(f"{exc}; last answer: {error_reason(error)}") from None
        if asked is not None and allowed < asked:
            # Asking again before the server's Retry-After would only be throttled again.
            raise cannot_wait(label, asked, waited, error)
        self._sleep(allowed)
        return allowed

    def _attempt(self, method: str, url: str, request: Request, body: Any, attempt: int) -> Any:
        # A fresh id per attempt: each is a separate request for Microsoft support to trace.
        client_request_id = str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {self.tokens.token()}",
            "Accept": "application/json",
            "client-request-id": client_request_id,
        }
        if request.advanced:
            headers.update(ADVANCED)
        self.pacer.wait_turn()
        with self._lock:
            self.requests_sent += 1
        try:
            response = self._http.request(
                method, url, headers=headers, json=body, timeout=request_timeout()
            )
        except httpx.TransportError as exc:
            # Resets, timeouts and bodies cut short (RemoteProtocolError) are all transient.
            error = GraphError(
                f"connection failed: {type(exc).__name__}: {exc}",
                request=request.label(),
                client_request_id=client_request_id,
            )
            raise _Retry("transport", None, error) from None
        answered = {k.lower(): v for k, v in response.headers.items()}
        status = response.status_code
        if status not in RETRYABLE_STATUS:
            self.pacer.observe(throttle_usage(answered.get(THROTTLE_WARNING_HEADER)))
        if status == 401 or status >= 400:
            error = graph_error(
                request.label(), status, json_or_none(response), answered, client_request_id
            )
            if status == 401:
                raise _Unauthorized(error)
            if status in RETRYABLE_STATUS:
                raise _Retry("status", self._retry_after(answered.get("retry-after"), error), error)
            raise error
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            # A truncated body parses as garbage: never accept it as a (shorter) page.
            error = GraphError(
                "response body is not complete JSON",
                request=request.label(),
                status=status,
                request_id=answered.get("request-id"),
                client_request_id=client_request_id,
            )
            raise _Retry("truncated", None, error) from None

    def _retry_after(self, retry_after: str | None, error: GraphError) -> float | None:
        """The server's Retry-After in seconds (None: none or unreadable, so backoff)."""
        delay = parse_retry_after(retry_after)
        if delay is not None and delay > self._retry.max_retry_after:
            raise reworded(
                error,
                f"throttled with Retry-After {delay:g}s, longer than the "
                f"{self._retry.max_retry_after:g}s syncctl waits",
            )
        return delay

    def _backoff(self, attempt: int) -> float:
        ceiling: float = min(self._retry.max_delay, self._retry.base_delay * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._jitter())  # jitter spreads out synchronized retries

    def _count_page(self, request: Request, items: int) -> None:
        with self._lock:  # also serializes progress output from concurrent readers
            self.pages += 1
            self.objects += items
            if self._progress is not None:
                self._progress(pages=self.pages, objects=self.objects, current=request.path)

    def _absolute(self, relative: str) -> str:
        return f"{self._base}{relative}"

    def _same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc) == self._origin


class _Unauthorized(Exception):
    def __init__(self, error: GraphError) -> None:
        super().__init__(str(error))
        self.error = error
