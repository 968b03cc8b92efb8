"""Reading Microsoft Entra ID: the SourceSnapshot a policy puts in scope.

``read_source`` is the one entry point the rest of syncctl uses. With ``tenant.snapshot`` it
reads a snapshot file (no network, no credential); otherwise it signs in and reads Graph.
msal and httpx are imported only on the Graph path so offline runs stay light.
"""

from __future__ import annotations

from collections.abc import Collection

from syncctl.errors import PermissionsMissing, SnapshotError
from syncctl.model import SourceSnapshot
from syncctl.policy.model import Policy
from syncctl.source.progress import Progress
from syncctl.source.scope import evaluate_offline
from syncctl.source.snapshot import TenantSlice, load_snapshot, load_tenant_slice, write_snapshot

__all__ = [
    "Progress",
    "TenantSlice",
    "check_source",
    "load_snapshot",
    "read_source",
    "read_tenant_slice",
    "write_snapshot",
]


def read_source(
    policy: Policy, managed_ids: Collection[str], *, progress: Progress | None = None
) -> SourceSnapshot:
    """The in-scope users and groups of ``policy`` and, for every managed id out of scope,
    why it left. Raises AuthError / GraphError / SnapshotError; never returns a partial or
    empty snapshot because of an error."""
    snapshot_path = policy.tenant.snapshot
    if snapshot_path is not None:
        tenant_slice = load_snapshot(snapshot_path, tenant=policy.tenant.id)

        def error(message: str) -> SnapshotError:
            return SnapshotError(f"{snapshot_path}: policy {policy.name}: {message}")

        return evaluate_offline(policy, tenant_slice, managed_ids, error)
    from syncctl.source.reader import read_graph

    return read_graph(policy, managed_ids, progress=progress)


def read_tenant_slice(policy: Policy, *, progress: Progress | None = None) -> TenantSlice:
    """What ``syncctl export`` writes: the policy's slice of the tenant (candidate users with
    their attributes, scope and provisioned groups with user members, removals seen), which
    ``read_source`` can evaluate offline against this or an edited policy. Raises rather than
    return a partial slice."""
    if policy.tenant.snapshot is not None:
        return load_tenant_slice(policy.tenant.snapshot, tenant=policy.tenant.id)
    from syncctl.source.reader import read_graph_slice

    return read_graph_slice(policy, progress=progress)


def check_source(policy: Policy) -> tuple[str, ...]:
    """``validate --online``: the snapshot file loads, or the credential signs in to Entra and
    its token grants the application permissions the policy needs (``permissions.features``).
    Raises SnapshotError / AuthError (SignInRefused, SignInUnreachable) / SecretError with a
    one-line reason, and PermissionsMissing with one line (and the name) per missing
    permission. Returns what could not be checked (a token without a ``roles`` claim), for
    the caller to show as unchecked."""
    if policy.tenant.snapshot is not None:
        load_snapshot(policy.tenant.snapshot, tenant=policy.tenant.id)
        return ()
    from syncctl.source import permissions
    from syncctl.source.auth import TokenProvider, token_roles
    from syncctl.source.http import build_http_client

    http = build_http_client(policy.tenant.ca_bundle)
    try:
        token = TokenProvider(policy.tenant, http).token()
    finally:
        http.close()
    roles = token_roles(token)
    if roles is None:
        return (
            "application permissions not checked: the access token has no `roles` claim "
            "(see docs/source.md for the permissions syncctl needs)",
        )
    lacking = permissions.missing(policy, roles)
    if lacking:
        # The names, in the order (and once each) that ``missing`` words them.
        names = dict.fromkeys(
            endpoint.lacking()
            for feature in permissions.features(policy)
            for endpoint in feature.endpoints
            if not endpoint.granted_by(roles)
        )
        raise PermissionsMissing(lacking, tuple(names))
    return ()
