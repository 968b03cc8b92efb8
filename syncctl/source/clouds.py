"""National clouds: which sign-in authority and Graph root a tenant uses.

Values from Microsoft's national cloud documentation (authentication-national-cloud.md and
Graph deployments.md): GCC uses the global endpoints; tokens never cross clouds.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from syncctl.policy.model import Cloud, Endpoints, Tenant

CLOUD_ENDPOINTS: dict[Cloud, Endpoints] = {
    Cloud.GLOBAL: Endpoints(
        authority="https://login.microsoftonline.com", graph="https://graph.microsoft.com"
    ),
    Cloud.USGOV: Endpoints(
        authority="https://login.microsoftonline.us", graph="https://graph.microsoft.us"
    ),
    Cloud.USGOV_DOD: Endpoints(
        authority="https://login.microsoftonline.us", graph="https://dod-graph.microsoft.us"
    ),
    Cloud.CHINA: Endpoints(
        authority="https://login.partner.microsoftonline.cn",
        graph="https://microsoftgraph.chinacloudapi.cn",
    ),
}

# Hosts MSAL's instance discovery knows (msal.authority.WELL_KNOWN_AUTHORITY_HOSTS, 1.39).
# Any other authority (a proxy, the emulator) must skip instance discovery, which would
# otherwise ask login.microsoftonline.com about a host it has never heard of.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
    }
)


def endpoints_for(tenant: Tenant) -> Endpoints:
    """The tenant's endpoints: ``tenant.endpoints`` overrides the cloud's defaults."""
    chosen = tenant.endpoints or CLOUD_ENDPOINTS[tenant.cloud]
    return Endpoints(authority=chosen.authority.rstrip("/"), graph=chosen.graph.rstrip("/"))


def authority_url(tenant: Tenant) -> str:
    return f"{endpoints_for(tenant).authority}/{tenant.id}"


def graph_base(tenant: Tenant) -> str:
    """Root of the v1.0 API, e.g. ``https://graph.microsoft.com/v1.0``."""
    return f"{endpoints_for(tenant).graph}/v1.0"


def graph_scope(tenant: Tenant) -> str:
    return f"{endpoints_for(tenant).graph}/.default"


def graph_resource(tenant: Tenant) -> str:
    """The resource a managed identity asks a token for (no ``/.default``)."""
    return endpoints_for(tenant).graph


def is_microsoft_authority(tenant: Tenant) -> bool:
    host = urlsplit(endpoints_for(tenant).authority).hostname or ""
    return host.lower() in MICROSOFT_AUTHORITY_HOSTS
