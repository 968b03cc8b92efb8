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
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from syncctl import deadline
from syncctl.errors import GraphError
from syncctl.source.graph_batch import (
    ADVANCED,
    BATCH_SIZE,
    RETRYABLE_STATUS,
    Answer,
    batch_body,
    read_batch,
)
from syncctl.source.graph_errors import (
    cannot_wait,
    error_reason,
    gave_up,
    graph_error,
    reworded,
)
from syncctl.source.graph_request import Request, RetryPolicy, TokenSource
from syncctl.source.http import request_timeout
from syncctl.source.pacing import THROTTLE_WARNING_HEADER, Pacer, throttle_usage
from syncctl.source.pages import announced_count, check_complete, json_or_none, page_values
from syncctl.source.progress import Progress
from syncctl.transport import parse_retry_after

T = TypeVar("T")
R = TypeVar("R")

__all__ = [
    "BATCH_SIZE",
    "PAGE_SIZE",
    "Answer",
    "GraphClient",
    "Request",
    "RetryPolicy",
    "TokenSource",
]

PAGE_SIZE = 999  # the maximum $top for users, groups and members
DEFAULT_RETRY = RetryPolicy()


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
        retry: RetryPolicy = DEFAULT_RETRY,
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
        items: list[dict[str, Any]] = []
        self._drain(request, page, items.extend)
        return items

    def get_many(self, requests: Sequence[Request]) -> list[list[dict[str, Any]]]:
        """Several collections: first pages 20 to a ``$batch`` (one round trip instead of 20),
        remaining pages followed concurrently with a bound. Results in request order."""
        collections: list[list[dict[str, Any]]] = [[] for _ in requests]
        self.each_page(requests, lambda index, items: collections[index].extend(items))
        return collections

    def each_page(
        self, requests: Sequence[Request], take: Callable[[int, list[dict[str, Any]]], None]
    ) -> None:
        """``get_many`` without keeping the pages: ``take(index, items)`` gets each checked
        page of ``requests[index]``, in page order (calls never overlap; pages of different
        collections interleave), so a caller can keep what it needs of a page and let the
        rest go. Only ids are kept here, for the ``@odata.count`` check after the last page:
        when this raises, pages were already handed over, and what was built from them must
        be dropped."""
        first_pages: list[Any] = [None] * len(requests)
        for start in range(0, len(requests), BATCH_SIZE):
            chunk = list(range(start, min(start + BATCH_SIZE, len(requests))))
            for index, answer in zip(chunk, self._batch([requests[i] for i in chunk]), strict=True):
                first_pages[index] = answer.body
        handing = threading.Lock()

        def finish(index: int) -> None:
            def hand(items: list[dict[str, Any]]) -> None:
                with handing:
                    take(index, items)

            self._drain(requests[index], first_pages[index], hand)

        self.map_bounded(finish, range(len(requests)))

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

    def get(self, request: Request) -> Any:
        """One object (``/users/{id}?$select=...``), retried like every read; a 404 or any
        other error raises GraphError (``status`` tells them apart)."""
        return self._send("GET", self._absolute(request.relative_url()), request, None)

    def patch(self, path: str, body: Mapping[str, Any]) -> None:
        """One update (``PATCH /users/{id}``): Graph answers 204 No Content. Retried on
        429/503/504 and dropped connections like a read, which is safe because a PATCH sets
        values (sending it twice leaves the object as sending it once); any other error
        raises GraphError. ``body`` is never part of an error."""
        request = Request(path, method="PATCH")
        self._send("PATCH", self._absolute(request.relative_url()), request, body)

    def map_bounded(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Run independent reads at most ``concurrency`` at a time; the first error wins."""
        work = list(items)
        if len(work) <= 1 or self._concurrency == 1:
            return [function(item) for item in work]
        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            return list(pool.map(function, work))

    def read_round(self, url: str, label: str) -> tuple[list[dict[str, Any]], str]:
        """One delta round from ``url`` (a stored deltaLink, or a first delta request):
        every page's items in order, and the deltaLink that continues after them. Links
        outside the Graph root are refused before anything is sent (the token never leaves)."""
        request = Request(label)
        items: list[dict[str, Any]] = []
        while True:
            if not self._same_origin(url):
                raise GraphError("delta link points outside Graph", request=request.label())
            page = self._send("GET", url, request, None)
            values = page_values(request.label(), page)
            self._count_page(request, len(values))
            items.extend(values)
            next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
            if isinstance(next_link, str):
                url = next_link
            elif isinstance(delta_link, str):
                if not self._same_origin(delta_link):
                    raise GraphError(
                        "@odata.deltaLink points outside Graph", request=request.label()
                    )
                return items, delta_link
            else:
                raise GraphError(
                    "delta page has neither @odata.nextLink nor @odata.deltaLink",
                    request=request.label(),
                )

    def delta_url(self, relative: str) -> str:
        """The absolute URL of a first delta request (``/users/delta?...``)."""
        return self._absolute(relative)

    # -- internals ---------------------------------------------------------------------------

    def _drain(
        self, request: Request, page: Any, hand: Callable[[list[dict[str, Any]]], None]
    ) -> None:
        """Check each page and hand it over before asking for the next. (Asking for the next
        page first, from a thread, was measured: with a caller that does real work on each
        page the two threads fight over the GIL and the read got slower, not faster.)"""
        label = request.label()
        expected = announced_count(label, page, counted=request.counted)
        seen: set[str] = set()
        while True:
            values = page_values(label, page)
            self._count_page(request, len(values))
            if expected is not None:
                seen.update(item["id"] for item in values)
            hand(values)
            next_link = page.get("@odata.nextLink")
            if next_link is None:
                break
            if not isinstance(next_link, str) or not self._same_origin(next_link):
                # Never send the token to a host other than the Graph root we were given.
                raise GraphError("@odata.nextLink points outside Graph", request=label)
            page = self._send("GET", next_link, request, None)
        check_complete(label, len(seen), expected)

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
            batch_request = Request("/$batch", method="POST")
            body = batch_body(pending, client_ids)
            answer = self._send("POST", f"{self._base}/$batch", batch_request, body)
            answered = read_batch(answer, pending, client_ids, accept, self._retry_after)
            if answered.usage:
                self.pacer.observe(max((u for u in answered.usage if u is not None), default=None))
            for item_id, item in answered.done.items():
                results[item_id] = item
                del pending[item_id]
            if answered.done:
                # Progress: a batch that gets through a few items per throttling window is
                # not failing (the retry budget and the deadline still bound the wait).
                attempt = 0
            if pending:
                last_error = answered.last_error
                assert last_error is not None  # every item still pending was retryable
                if attempt >= self._retry.max_attempts:
                    raise gave_up(last_error, attempt)
                asked = max(answered.asked) if answered.asked else None
                waited += self._pause(asked, attempt, waited, last_error)
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
        if status == 204 and method != "GET":
            return None  # a write's No Content (a read answering 204 is still not JSON)
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
