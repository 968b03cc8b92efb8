"""Signing in half-way through ``syncctl init``, exactly as the finished policy will: the
answers so far become a ``Tenant`` and Graph is read with it (for ``interactive``, after a
device-code sign-in whose message the person sees)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from syncctl.init.directory import Search
from syncctl.init.flow import Connection
from syncctl.policy.model import (
    CertificateCredential,
    ClientSecretCredential,
    Cloud,
    Credential,
    Endpoints,
    FederatedTokenCredential,
    InteractiveCredential,
    ManagedIdentityCredential,
    SecretRef,
    Tenant,
)

# A GUID no object has: the first search proves sign-in and read permissions, finding nothing.
_NO_OBJECT = "00000000-0000-0000-0000-000000000000"


def tenant_model(connection: Connection, cwd: Path) -> Tenant:
    """The tenant section of the policy-to-be; relative paths are relative to ``cwd`` (where
    the person typed them)."""
    endpoints = connection.endpoints
    return Tenant(
        id=connection.tenant,
        client_id=connection.client_id,
        cloud=Cloud(connection.cloud),
        credential=_credential(connection.credential, cwd),
        endpoints=Endpoints(endpoints["authority"], endpoints["graph"]) if endpoints else None,
        ca_bundle=cwd / connection.ca_bundle if connection.ca_bundle else None,
    )


def _credential(raw: dict[str, Any], cwd: Path) -> Credential:
    ((kind, options),) = raw.items()
    if kind == "client_secret":
        return ClientSecretCredential(SecretRef(env=options["env"]))
    if kind == "certificate":
        password = options.get("password")
        return CertificateCredential(
            cwd / options["path"], SecretRef(env=password["env"]) if password else None
        )
    if kind == "federated_token":
        pipelines = options.get("azure_pipelines") or {}
        return FederatedTokenCredential(
            file=cwd / options["file"] if "file" in options else None,
            env=options.get("env"),
            github_actions="github_actions" in options,
            azure_pipelines_service_connection_id=pipelines.get("service_connection_id"),
        )
    if kind == "managed_identity":
        return ManagedIdentityCredential(options.get("client_id"))
    return InteractiveCredential()


@contextmanager
def sign_in(
    connection: Connection, *, cwd: Path, browser: bool, say: Callable[[str], None]
) -> Iterator[Search]:
    """A search over Graph, signed in as the answers say."""
    from syncctl.source.reader import graph_session
    from syncctl.source.search import search_graph

    tenant = tenant_model(connection, cwd)
    if connection.credential_kind == "interactive":
        _login(tenant, browser=browser, say=say)
    with graph_session(tenant) as graph:
        search_graph(graph, _NO_OBJECT)
        yield lambda term: search_graph(graph, term)


def _login(tenant: Tenant, *, browser: bool, say: Callable[[str], None]) -> None:
    from syncctl.source.interactive import sign_in

    who = sign_in(tenant, browser=browser, say=say).username
    say(f"Signed in as {who}.")
