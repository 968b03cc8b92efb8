"""One request as the Graph routes see it, whether it came over HTTP or inside a $batch."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from syncctl.emulator.responses import GraphRequestError


@dataclass(frozen=True, slots=True)
class GraphRequest:
    method: str
    path: str  # without the query string, e.g. "/v1.0/users"
    query: Mapping[str, str]  # decoded query options
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = b""
    raw_query: str = ""

    @classmethod
    def from_target(
        cls,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes = b"",
    ) -> GraphRequest:
        parts = urlsplit(target)
        # OData system query options are case-insensitive ($orderBy, $deltaToken, $Select)
        query = {
            (key.lower() if key.startswith("$") else key): value
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        }
        lowered = {k.lower(): v for k, v in headers.items()}
        return cls(method.upper(), unquote(parts.path), query, lowered, body, parts.query)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def eventual(self) -> bool:
        return (self.header("ConsistencyLevel") or "").strip().lower() == "eventual"

    @property
    def wants_count(self) -> bool:
        return self.query.get("$count", "").lower() == "true"

    def prefer(self, name: str) -> str | None:
        """A ``Prefer`` preference (``return=minimal``, ``odata.maxpagesize=50``)."""
        for part in (self.header("Prefer") or "").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == name.lower():
                return value.strip() or "true"
        return None

    def json_body(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise GraphRequestError(
                400, "Unable to read JSON request payload.", "BadRequest"
            ) from None
