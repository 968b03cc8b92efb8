"""The vocabulary of GraphClient: one request (relative to the v1.0 root, spelled as Graph's
own examples spell queries), the retry policy, and where access tokens come from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

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
