"""What a SCIM service provider says it can do (RFC 7643 §5, §6), read once per run.

``/ServiceProviderConfig`` is required and decides PATCH vs PUT, Bulk limits, filter and ETag
use. ``/ResourceTypes`` is optional: when offered it names the Users/Groups endpoints and
whether the enterprise extension exists. Servers get these documents wrong in known ways
(django-scim2: absolute ``endpoint`` paths, no ``totalResults``), so parsing is lenient about
shape and strict only about "is this SCIM at all".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from syncctl.errors import TargetError
from syncctl.targets.scim_http import ScimHttp

SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@dataclass(frozen=True, slots=True)
class ServiceProvider:
    patch: bool = True
    bulk: bool = False
    bulk_max_operations: int = 0
    bulk_max_payload: int = 0
    filter: bool = False
    filter_max_results: int = 0  # 0: not stated
    etag: bool = False
    users_endpoint: str = "/Users"
    groups_endpoint: str = "/Groups"
    enterprise_extension: bool = True  # unknown counts as offered (RFC 7643 §4.3 is common)


def _flag(document: dict[str, Any], name: str) -> bool:
    block = document.get(name)
    return isinstance(block, dict) and block.get("supported") is True


def _int(block: Any, name: str) -> int:
    if isinstance(block, dict):
        value = block.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def _relative_endpoint(base: str, endpoint: str) -> str:
    """``/Users`` relative to the base; also accepts an absolute path that repeats the base
    path (django-scim2 says ``/scim/v2/Users``) or a full URL."""
    if endpoint.startswith(("http://", "https://")):
        endpoint = urlsplit(endpoint).path
    base_path = urlsplit(base).path.rstrip("/")
    if base_path and endpoint.startswith(base_path + "/"):
        endpoint = endpoint[len(base_path) :]
    return "/" + endpoint.lstrip("/")


def _json(response: Any, where: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise TargetError(f"{where}: not a SCIM endpoint (the answer is not JSON)") from None


def discover(http: ScimHttp) -> ServiceProvider:
    where = f"GET {http.url('/ServiceProviderConfig')}"
    response = http.request("GET", "/ServiceProviderConfig")
    if response.status_code == 404:
        raise TargetError(f"{where}: not a SCIM endpoint (404 Not Found)")
    if response.status_code != 200:
        raise TargetError(f"{where}: not a SCIM endpoint (status {response.status_code})")
    spc = _json(response, where)
    schemas = spc.get("schemas") if isinstance(spc, dict) else None
    if not isinstance(spc, dict) or (
        SPC_SCHEMA not in (schemas or []) and "patch" not in spc and "filter" not in spc
    ):
        raise TargetError(f"{where}: not a SCIM endpoint (no ServiceProviderConfig document)")
    users, groups, enterprise = "/Users", "/Groups", True
    types = http.request("GET", "/ResourceTypes")
    if types.status_code == 200:
        try:
            body = types.json()
        except ValueError:
            body = None
        resources = body.get("Resources") if isinstance(body, dict) else body
        for resource in resources if isinstance(resources, list) else []:
            if not isinstance(resource, dict) or not isinstance(resource.get("endpoint"), str):
                continue
            endpoint = _relative_endpoint(http.base, resource["endpoint"])
            if resource.get("name") == "User":
                users = endpoint
                extensions = resource.get("schemaExtensions")
                if isinstance(extensions, list):
                    enterprise = any(
                        isinstance(e, dict) and e.get("schema") == ENTERPRISE_URN
                        for e in extensions
                    )
            elif resource.get("name") == "Group":
                groups = endpoint
    return ServiceProvider(
        patch=_flag(spc, "patch"),
        bulk=_flag(spc, "bulk"),
        bulk_max_operations=_int(spc.get("bulk"), "maxOperations"),
        bulk_max_payload=_int(spc.get("bulk"), "maxPayloadSize"),
        filter=_flag(spc, "filter"),
        filter_max_results=_int(spc.get("filter"), "maxResults"),
        etag=_flag(spc, "etag"),
        users_endpoint=users,
        groups_endpoint=groups,
        enterprise_extension=enterprise,
    )
