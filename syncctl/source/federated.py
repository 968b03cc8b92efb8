"""Where federated (workload identity) tokens come from: a file, a variable, GitHub Actions'
or Azure Pipelines' OIDC endpoint. Each is read afresh on every token request: CI and AKS
tokens are short-lived and rotated."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx

from syncctl.errors import AuthError, SignInUnreachable
from syncctl.policy.model import FederatedTokenCredential
from syncctl.redaction import remember
from syncctl.secretfile import read_small_file

# The audience Entra expects on federated tokens from GitHub Actions / Azure Pipelines.
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"


def federated_token_source(
    credential: FederatedTokenCredential, http: httpx.Client
) -> Callable[[], str]:
    """A callable MSAL invokes on every token request: CI and AKS tokens are short-lived and
    rotated, so they are read (or requested) afresh each time, never captured once."""
    if credential.file is not None:
        path = credential.file
        return lambda: _read_token_file(path)
    if credential.env is not None:
        name = credential.env
        return lambda: _read_token_env(name)
    if credential.github_actions:
        return lambda: _github_actions_token(http)
    if credential.azure_pipelines_service_connection_id is not None:
        connection = credential.azure_pipelines_service_connection_id
        return lambda: _azure_pipelines_token(http, connection)
    raise AuthError("federated_token: no token source configured")


def _read_token_file(path: Path) -> str:
    data = read_small_file(path, what="federated token file", error=AuthError)
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AuthError(f"federated token file {path} is not UTF-8 text") from None
    if not token:
        raise AuthError(f"federated token file {path} is empty")
    return remember(token)


def _read_token_env(name: str) -> str:
    token = os.environ.get(name, "").strip()
    if not token:
        raise AuthError(f"federated token: environment variable {name} is not set or empty")
    return remember(token)


def _github_actions_token(http: httpx.Client) -> str:
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        raise AuthError(
            "GitHub Actions OIDC: ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN are not set "
            "(the job needs `permissions: id-token: write`)"
        )
    response = _oidc_request(
        http,
        "GET",
        url,
        params={"audience": FEDERATION_AUDIENCE},
        bearer=bearer,
        what="GitHub Actions OIDC",
    )
    return remember(_json_field(response, "value", "GitHub Actions OIDC"))


def _azure_pipelines_token(http: httpx.Client, service_connection_id: str) -> str:
    url = os.environ.get("SYSTEM_OIDCREQUESTURI")
    bearer = os.environ.get("SYSTEM_ACCESSTOKEN")
    if not url or not bearer:
        raise AuthError(
            "Azure Pipelines OIDC: SYSTEM_OIDCREQUESTURI/SYSTEM_ACCESSTOKEN are not set "
            "(map System.AccessToken into the step's env)"
        )
    params = {"api-version": "7.1", "serviceConnectionId": service_connection_id}
    response = _oidc_request(
        http, "POST", url, params=params, bearer=bearer, what="Azure Pipelines OIDC"
    )
    return remember(_json_field(response, "oidcToken", "Azure Pipelines OIDC"))


def _oidc_request(
    http: httpx.Client, method: str, url: str, *, params: dict[str, str], bearer: str, what: str
) -> httpx.Response:
    try:
        # The URL may carry a query already (GitHub's does): merge, never replace it.
        response = http.request(
            method,
            httpx.URL(url).copy_merge_params(params),
            headers={"Authorization": f"Bearer {bearer}"},
            json={} if method == "POST" else None,
        )
    except httpx.HTTPError as exc:
        raise SignInUnreachable(f"{what}: request failed: {exc}") from None
    if response.status_code != 200:
        raise AuthError(f"{what}: token request answered HTTP {response.status_code}")
    return response


def _json_field(response: httpx.Response, field: str, what: str) -> str:
    try:
        value = response.json().get(field)
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise AuthError(f"{what}: response has no `{field}`")
    return value
