"""Reading Microsoft Entra ID: the SourceSnapshot a policy puts in scope.

``read_source`` is the one entry point the rest of syncctl uses. With ``tenant.snapshot`` it
reads a snapshot file (no network, no credential); otherwise it signs in and reads Graph.
msal and httpx are imported only on the Graph path so offline runs stay light.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from syncctl.errors import PermissionsMissing, SignInRequired, SnapshotError
from syncctl.model import SourceSnapshot
from syncctl.policy.model import InteractiveCredential, Policy
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


def policy_argument(policy: Policy) -> str:
    """The policy file as a user would type it here: relative to the working directory when
    it is below it, else absolute."""
    try:
        relative = os.path.relpath(policy.path)
    except ValueError:  # another drive (Windows)
        return str(policy.path)
    return str(policy.path) if relative.startswith("..") else relative


@contextmanager
def naming_policy(policy: Policy) -> Iterator[None]:
    """A SignInRequired raised inside names the policy file in its fix (``syncctl login
    PATH``): the token provider only knows the tenant."""
    try:
        yield
    except SignInRequired as exc:
        raise exc.for_policy(policy_argument(policy)) from None


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

    with naming_policy(policy):
        return read_graph(policy, managed_ids, progress=progress)


def read_tenant_slice(policy: Policy, *, progress: Progress | None = None) -> TenantSlice:
    """What ``syncctl export`` writes: the policy's slice of the tenant (candidate users with
    their attributes, scope and provisioned groups with user members, removals seen), which
    ``read_source`` can evaluate offline against this or an edited policy. Raises rather than
    return a partial slice."""
    if policy.tenant.snapshot is not None:
        return load_tenant_slice(policy.tenant.snapshot, tenant=policy.tenant.id)
    from syncctl.source.reader import read_graph_slice

    with naming_policy(policy):
        return read_graph_slice(policy, progress=progress)


def check_source(policy: Policy) -> tuple[str, ...]:
    """``validate --online``: the snapshot file loads, or the credential signs in to Entra and
    its token grants the application permissions the policy needs (``permissions.features``).
    Raises SnapshotError / AuthError (SignInRefused, SignInUnreachable) / SecretError with a
    one-line reason, and PermissionsMissing with one line (and the name) per missing
    permission. Returns what could not be checked (a token without a ``roles`` claim), for
    the caller to show as unchecked. An interactive credential uses the cached sign-in
    (never prompts) and its token's delegated ``scp`` instead of ``roles``."""
    if policy.tenant.snapshot is not None:
        load_snapshot(policy.tenant.snapshot, tenant=policy.tenant.id)
        return ()
    from syncctl.source import permissions
    from syncctl.source.auth import TokenProvider
    from syncctl.source.http import build_http_client
    from syncctl.source.token_claims import token_roles, token_scopes

    http = build_http_client(policy.tenant.ca_bundle)
    try:
        with naming_policy(policy):
            token = TokenProvider(policy.tenant, http).token()
    finally:
        http.close()
    if isinstance(policy.tenant.credential, InteractiveCredential):
        return _check_delegated(policy, token_scopes(token))
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


def _check_delegated(policy: Policy, scopes: frozenset[str] | None) -> tuple[str, ...]:
    """``check_source``'s permission check for a signed-in administrator: the token's
    delegated permissions (``scp``), each missing one named once, with the fix."""
    from syncctl.source import permissions

    if scopes is None:
        return (
            "delegated permissions not checked: the access token has no `scp` claim "
            "(see docs/login.md for the permissions syncctl needs)",
        )
    fix = (
        "; add it to the app registration, grant admin consent and run "
        f'"syncctl login {policy_argument(policy)}" again'
    )
    names: dict[str, str] = {}
    for feature in permissions.features(policy):
        for endpoint in feature.endpoints:
            name = endpoint.lacking()
            if endpoint.granted_by(scopes) or name in names:
                continue
            names[name] = (
                f"the sign-in lacks the delegated permission {name}, which {feature.name} "
                f"needs {endpoint.needed_for} ({endpoint.url}){fix}"
            )
    if names:
        raise PermissionsMissing(list(names.values()), tuple(names))
    return ()
