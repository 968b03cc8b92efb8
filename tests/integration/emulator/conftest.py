"""Fixtures: a live emulator over TLS and clients that talk to it as syncctl would (real msal,
real httpx, the emulator's CA trusted explicitly, never verify=False)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import msal
import pytest

from syncctl.emulator import Emulator, EmulatorTenant, generate_tenant, running_emulator

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


@pytest.fixture
def tenant() -> EmulatorTenant:
    return generate_tenant(users=300, groups=30, seed=7)


@pytest.fixture
def emu(tenant: EmulatorTenant) -> Iterator[Emulator]:
    with running_emulator(tenant) as emulator:
        yield emulator


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(emu.ca_bundle))
    with httpx.Client(verify=context, timeout=10) as client:
        yield client


def msal_app(emu: Emulator, http: Any, credential: Any) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        emu.client_id,
        client_credential=credential,
        authority=f"{emu.authority}/{emu.tenant_id}",
        instance_discovery=False,
        http_client=http,
    )


class MsalHttpx:
    """msal's http_client contract over httpx. msal passes the certificate assertion as bytes
    in ``data``; httpx would send ``b'...'`` literally (requests decodes it), so decode here."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kw: Any
    ) -> httpx.Response:
        if isinstance(data, dict):
            data = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        return self.client.post(url, params=params, data=data, headers=headers, **_timeout(kw))

    def get(self, url: str, params: Any = None, headers: Any = None, **kw: Any) -> httpx.Response:
        return self.client.get(url, params=params, headers=headers, **_timeout(kw))


def _timeout(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"timeout": kwargs["timeout"]} if "timeout" in kwargs else {}


class Graph:
    """A bare Graph caller: bearer token from real msal, absolute URLs like a client uses."""

    def __init__(self, emu: Emulator, http: httpx.Client) -> None:
        self.emu, self.http = emu, http
        self.app = msal_app(emu, http, emu.client_secret)

    def token(self) -> str:
        result = self.app.acquire_token_for_client(GRAPH_SCOPE)
        assert "access_token" in result, result
        return str(result["access_token"])

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.emu.graph}/v1.0{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        eventual: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {self.token()}"}
        if eventual:
            all_headers["ConsistencyLevel"] = "eventual"
        all_headers.update(headers or {})
        return self.http.request(method, self.url(path), headers=all_headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def ok(self, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.get(path, **kwargs)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def all_pages(
        self, path: str, **kwargs: Any
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(every item, every page body) following @odata.nextLink to the end."""
        items: list[dict[str, Any]] = []
        pages: list[dict[str, Any]] = []
        url: str | None = path
        while url:
            page = self.ok(url, **kwargs)
            pages.append(page)
            items.extend(page["value"])
            url = page.get("@odata.nextLink")
        return items, pages

    def delta(self, url: str, **kwargs: Any) -> tuple[list[dict[str, Any]], str, int]:
        """(items, deltaLink, pages) of one full delta round."""
        items: list[dict[str, Any]] = []
        pages = 0
        current: str = url
        while True:
            page = self.ok(current, **kwargs)
            pages += 1
            items.extend(page["value"])
            if "@odata.nextLink" in page:
                assert "@odata.deltaLink" not in page
                current = page["@odata.nextLink"]
                continue
            return items, page["@odata.deltaLink"], pages


@pytest.fixture
def graph(emu: Emulator, http: httpx.Client) -> Graph:
    return Graph(emu, http)


def assert_graph_error(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """Graph's published error shape: error.code, error.message, error.innerError ids."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])
    if code is not None:
        assert error["code"] == code, error
    result: dict[str, Any] = error
    return result
