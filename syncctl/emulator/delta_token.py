"""The state a delta ``$deltatoken`` carries (delta-query-overview.md: "state tokens"): the
change-log position a round reports from, and the query options of the round's first request,
which Graph encodes into its tokens so later requests need not repeat them (group-delta.md).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from syncctl.emulator.responses import GraphRequestError


@dataclass(frozen=True, slots=True)
class DeltaToken:
    resource: str  # "users" | "groups"
    seq: int  # change-log position this token reports from
    prev: int  # where the round that issued it started (for replays)
    epoch: int  # bumped by expire_tokens()
    issued: float  # tenant clock, POSIX seconds
    select: tuple[str, ...] | None
    id_filter: str | None
    expand_members: bool = False  # groups: $expand=members (delta-query-groups.md)

    @property
    def tracks_members(self) -> bool:
        """members@delta rides on group objects without $select, with ``members`` selected
        (group-delta.md), or with $expand=members (delta-query-groups.md)."""
        return self.resource == "groups" and (
            self.expand_members or self.select is None or "members" in self.select
        )

    def encode(self) -> str:
        raw = json.dumps(
            [
                self.resource,
                self.seq,
                self.prev,
                self.epoch,
                self.issued,
                self.select,
                self.id_filter,
                self.expand_members,
            ],
            separators=(",", ":"),
        ).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> DeltaToken:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            # tokens issued before expand_members existed have seven fields
            resource, seq, prev, epoch, issued, select, id_filter, *expand = json.loads(raw)
            return cls(
                str(resource),
                int(seq),
                int(prev),
                int(epoch),
                float(issued),
                tuple(select) if select is not None else None,
                id_filter,
                bool(expand and expand[0]),
            )
        except (ValueError, TypeError):
            raise GraphRequestError(
                400, "The delta token is malformed.", "Request_BadRequest"
            ) from None
