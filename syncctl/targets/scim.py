"""The SCIM 2.0 target (RFC 7643/7644): ``target: {type: scim, url, token | oauth}``.

Ownership lives in ``externalId``: an object is managed when its externalId is one of the
Entra ids the state says this policy manages (the applier records them before it creates or
adopts, so a crash never leaves an object syncctl cannot recognise). Everything else is listed
as unmanaged and never written.

This module is the Target itself: discovery, the online check, and sorting a batch into
creates (scim_create, scim_bulk), writes of existing objects (scim_write) and membership
changes (scim_members). Reading is scim_read; what the instance learned during the run is
scim_context; the confirmation of disables, deletes and member removals is scim_confirm.
See docs/scim.md for every server deviation this tolerates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from syncctl.errors import TargetError
from syncctl.mapping import target_paths
from syncctl.model import ObjectKind, TargetSnapshot
from syncctl.plan.model import Action, Change, ChangeKind
from syncctl.policy.model import Policy, ScimTarget
from syncctl.targets import scim_bulk, scim_create, scim_filter, scim_members, scim_read
from syncctl.targets.base import Capabilities, Outcome, OutcomeStatus
from syncctl.targets.scim_context import ScimContext, kind_of
from syncctl.targets.scim_discovery import ServiceProvider
from syncctl.targets.scim_http import ScimHttp
from syncctl.targets.scim_resources import error_detail
from syncctl.targets.scim_write import delete, modify, not_owned

DEFAULT_PARALLELISM = 8  # connection pool size; the applier decides how many threads call us


class ScimDirectory:
    """A SCIM 2.0 service provider as a syncctl target."""

    def __init__(
        self,
        policy: Policy,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        bulk: bool | None = None,
    ) -> None:
        """``bulk``: None uses /Bulk for creates when the server offers it; False never."""
        if not isinstance(policy.target, ScimTarget):
            raise TargetError(f"policy {policy.name}: target is not of type scim")
        self._http = ScimHttp(policy.target, max_connections=max(1, parallelism))
        self._ctx = ScimContext(policy, self._http, bulk=bulk)
        self._user_paths = target_paths(policy, ObjectKind.USER)
        self._group_paths = target_paths(policy, ObjectKind.GROUP)

    # -- discovery ---------------------------------------------------------------------------

    @property
    def service_provider(self) -> ServiceProvider:
        return self._ctx.sp

    def capabilities(self) -> Capabilities:
        sp = self.service_provider
        return Capabilities(max_batch=100, parallel_safe=True, versions=sp.etag)

    def check(self) -> None:
        """``validate --online``: the endpoint speaks SCIM and accepts the token.

        Discovery documents may be open to anyone (RFC 7643 §5), so the token is proven with
        a list request that matches nothing (as Entra's "Test Connection" does)."""
        sp = self.service_provider
        params = {"count": "1", "attributes": "id"}
        if sp.filter:
            params["filter"] = scim_filter.eq("userName", "syncctl-check-0000")
        where = f"GET {self._http.url(sp.users_endpoint)}"
        response = self._http.request("GET", sp.users_endpoint, params=params)
        if response.status_code != 200:
            raise TargetError(f"{where}: {error_detail(response)}")

    # -- reading -----------------------------------------------------------------------------

    def read(self, owner: str, known_ids: Collection[str]) -> TargetSnapshot:
        return scim_read.read(self._ctx, owner, known_ids, self._user_paths, self._group_paths)

    # -- writing -----------------------------------------------------------------------------

    def apply(self, changes: Sequence[Change], owner: str) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        memberships: dict[tuple[str, Action], list[tuple[int, Change]]] = defaultdict(list)
        creates: list[tuple[int, Change]] = []
        for index, change in enumerate(changes):
            if change.kind is ChangeKind.MEMBERSHIP:
                memberships[(change.group or "", change.action)].append((index, change))
            elif scim_bulk.eligible(self._ctx, change):
                creates.append((index, change))
            else:
                outcomes[index] = self._apply_object(change)
        if len(creates) >= 2:
            outcomes.update(scim_bulk.bulk_create(self._ctx, creates))
        else:
            outcomes.update((index, self._apply_object(change)) for index, change in creates)
        for (group, action), items in sorted(memberships.items()):
            for index, outcome in scim_members.apply_members(self._ctx, group, action, items):
                outcomes[index] = outcome
        return [outcomes[i] for i in range(len(changes))]

    def _apply_object(self, change: Change) -> Outcome:
        kind = kind_of(change.kind)
        if change.action is Action.CREATE:
            return scim_create.create(self._ctx, kind, change)
        if change.action is Action.ADOPT:
            return scim_create.adopt(self._ctx, kind, change)
        if change.target_id is None:
            return Outcome(change.address, OutcomeStatus.FAILED, message="no target id to act on")
        refusal = not_owned(self._ctx, kind, change.target_id, change.source_id)
        if refusal is not None:
            return Outcome(change.address, OutcomeStatus.FAILED, message=refusal)
        if change.action is Action.DELETE:
            return delete(self._ctx, kind, change)
        extra: list[dict[str, Any]] = []
        if change.action in (Action.DISABLE, Action.ENABLE):
            active = change.action is Action.ENABLE
            extra.append({"op": "replace", "path": "active", "value": active})
        elif change.action is not Action.UPDATE:
            return Outcome(change.address, OutcomeStatus.FAILED, message=f"{change.action}?")
        return modify(
            self._ctx, kind, change, change.target_id, version=change.version, extra=extra
        )

    def change_marker(self) -> str | None:
        # SCIM has no change feed, and a list filtered on meta.lastModified would neither
        # see deletes nor be offered by most servers: the caller reads the directory.
        return None

    def close(self) -> None:
        self._http.close()
