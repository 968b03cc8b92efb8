"""The policy's Entra credential as an azure-core ``TokenCredential``, for Azure Storage, and
the TLS trust of ``tenant.ca_bundle`` for azure-core's transport.

The state backend signs in to Blob Storage with the same credential the policy reads Entra
with, through ``TokenProvider`` (so msal stays in ``syncctl.source.auth``), instead of
azure-identity's own credential chain, which would look at the environment and the machine.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from syncctl.errors import AuthError
from syncctl.policy.model import Tenant
from syncctl.source.auth import STORAGE_RESOURCE, TokenProvider
from syncctl.transport import tls_context

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken
    from azure.core.pipeline.transport import RequestsTransport


class StorageTokenCredential:
    """``get_token`` for ``https://storage.azure.com``; the scopes the SDK passes are always
    that resource's, so they are not consulted."""

    def __init__(self, tenant: Tenant, http: httpx.Client) -> None:
        self._provider = TokenProvider(tenant, http, resource=STORAGE_RESOURCE)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        from azure.core.credentials import AccessToken

        token, expires_on = self._provider.token_expiring()
        return AccessToken(token, expires_on)


def storage_transport(
    ca_bundle: Path, *, connection_timeout: float, read_timeout: float
) -> RequestsTransport:
    """azure-core's requests transport trusting ``ca_bundle`` in addition to the system's and
    certifi's CAs, like every other client syncctl builds (``verify=PATH`` would trust only
    the bundle, breaking real endpoints behind a proxy that re-signs only some hosts)."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from urllib3.util.retry import Retry

    try:
        context = tls_context(ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise AuthError(f"ca_bundle {ca_bundle}: cannot load CA certificates: {exc}") from None

    class _TrustingAdapter(requests.adapters.HTTPAdapter):
        def build_connection_pool_key_attributes(
            self, request: requests.PreparedRequest, verify: Any, cert: Any = None
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            host, tls = super().build_connection_pool_key_attributes(request, verify, cert)
            if verify is not False:  # never False here: syncctl does not turn TLS checks off
                tls["ssl_context"] = context
            return host, tls

    session = requests.Session()
    # Retries are azure-core's (its retry policy), not urllib3's, as in its own sessions.
    adapter = _TrustingAdapter(
        max_retries=Retry(total=False, redirect=False, raise_on_status=False)
    )
    session.mount("https://", adapter)
    return RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
    )
