"""What one SCIM target instance knows during a run, shared by the modules that read, write,
create and change memberships.

The Entra id -> SCIM id maps and the group member sets come from ``read`` and from this
run's own writes, so membership changes (which name Entra ids) resolve to SCIM ids without
extra requests. What the server was found to do (PATCH missing, Bulk missing, which member
removal form works) is remembered here for the rest of the run.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

from syncctl.model import ObjectKind, TargetObject
from syncctl.plan.model import ChangeKind
from syncctl.policy.model import Policy
from syncctl.targets.scim_discovery import ServiceProvider, discover
from syncctl.targets.scim_http import ScimHttp

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass(frozen=True, slots=True)
class Kind:
    kind: ObjectKind
    key: str  # userName / displayName


USER = Kind(ObjectKind.USER, "userName")
GROUP = Kind(ObjectKind.GROUP, "displayName")


def kind_of(change_kind: ChangeKind) -> Kind:
    return USER if change_kind is ChangeKind.USER else GROUP


class ScimContext:
    """Shared, lock-protected run state of one ScimDirectory."""

    def __init__(self, policy: Policy, http: ScimHttp, *, bulk: bool | None) -> None:
        self.policy = policy
        self.http = http
        self.lock = threading.Lock()
        self.discovered: ServiceProvider | None = None
        self.put_only = False  # PATCH claimed or found unsupported
        self.bulk = bulk  # None: use /Bulk when offered; False: never (or found missing)
        self.remove_style: str | None = None  # "filter" | "value_array" once one has worked
        self.read_done = False
        self.managed: set[str] = set()  # Entra ids this policy manages (from read + writes)
        self.ids: dict[ObjectKind, dict[str, str]] = {ObjectKind.USER: {}, ObjectKind.GROUP: {}}
        self.owned: dict[ObjectKind, set[str]] = {ObjectKind.USER: set(), ObjectKind.GROUP: set()}
        self.members: dict[str, set[str]] = defaultdict(set)  # group SCIM id -> user SCIM ids
        self.seen: dict[ObjectKind, list[TargetObject]] = {}  # as of the last read
        self.listed: dict[ObjectKind, set[str]] = {}  # their target ids

    @property
    def sp(self) -> ServiceProvider:
        with self.lock:
            if self.discovered is None:
                self.discovered = discover(self.http)
                self.put_only = not self.discovered.patch
            return self.discovered

    def endpoint(self, kind: ObjectKind) -> str:
        sp = self.sp
        return sp.users_endpoint if kind is ObjectKind.USER else sp.groups_endpoint

    def path(self, kind: ObjectKind, target_id: str) -> str:
        return f"{self.endpoint(kind)}/{target_id}"

    def remember(self, kind: Kind, source_id: str, target_id: str) -> None:
        with self.lock:
            self.ids[kind.kind][source_id] = target_id
            self.owned[kind.kind].add(target_id)
            if kind.kind is ObjectKind.GROUP:
                self.members.setdefault(target_id, set())

    def if_match(self, version: str | None) -> dict[str, str]:
        # Content hashes stand in for versions on servers without ETags; never sent.
        if version and self.sp.etag and not version.startswith("sha256:"):
            return {"If-Match": version}
        return {}
