"""``syncctl emulator serve`` through the real binary: the JSON line, a token and a Graph read
over TLS with the printed CA, the restricted client's 403, the documented curl example, clean
SIGTERM, missing extra."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest

SYNCCTL = str(Path(sys.executable).with_name("syncctl"))


def _read_line(process: subprocess.Popen[str], timeout: float = 20.0) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        raise AssertionError("emulator printed nothing in time")
    return process.stdout.readline()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    process = subprocess.Popen(
        [
            SYNCCTL,
            "emulator",
            "serve",
            "--users",
            "40",
            "--groups",
            "12",
            "--json",
            "--ca-file",
            str(tmp_path / "ca.pem"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_line(process)
        yield process, json.loads(line)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM (a kill if it does not stop), then close its pipes."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _token(http: httpx.Client, info: dict[str, Any]) -> str:
    response = http.post(
        f"{info['authority']}/{info['tenant_id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_json_line_then_graph_over_tls_then_sigterm(
    served: tuple[subprocess.Popen[str], dict[str, Any]], tmp_path: Path
) -> None:
    process, info = served
    assert sorted(info) == [
        "authority",
        "ca_bundle",
        "client_id",
        "client_secret",
        "graph",
        "restricted_client",
        "tenant_id",
    ]
    assert info["authority"].startswith("https://127.0.0.1:")
    assert info["ca_bundle"] == str(tmp_path / "ca.pem")
    context = ssl.create_default_context(cafile=info["ca_bundle"])
    with httpx.Client(verify=context, timeout=10) as http:
        token = _token(http, info)
        page = http.get(
            f"{info['graph']}/v1.0/users?$select=id,displayName&$top=999",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert len(page["value"]) == 40
    with httpx.Client(timeout=10) as untrusting, pytest.raises(httpx.ConnectError):
        untrusting.get(f"{info['graph']}/v1.0/users")  # the system CAs do not know the test CA
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_restricted_client_signs_in_with_msal_and_gets_403_on_get_by_ids(
    served: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    _, info = served
    restricted = info["restricted_client"]
    assert sorted(restricted) == ["client_id", "client_secret", "roles"]
    assert restricted["roles"] == ["User.Read.All"]
    assert restricted["client_id"] != info["client_id"]
    context = ssl.create_default_context(cafile=info["ca_bundle"])
    with httpx.Client(verify=context, timeout=10) as http:
        app = msal.ConfidentialClientApplication(
            restricted["client_id"],
            client_credential=restricted["client_secret"],
            authority=f"{info['authority']}/{info['tenant_id']}",
            instance_discovery=False,
            http_client=http,
        )
        result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
        assert "access_token" in result, result
        headers = {"Authorization": f"Bearer {result['access_token']}"}
        users = http.get(f"{info['graph']}/v1.0/users?$select=id&$top=3", headers=headers)
        assert users.status_code == 200
        user_id = users.json()["value"][0]["id"]
        denied = http.post(
            f"{info['graph']}/v1.0/directoryObjects/getByIds",
            headers=headers,
            json={"ids": [user_id], "types": ["user"]},
        )
        assert denied.status_code == 403
        error = denied.json()["error"]
        assert error["code"] == "Authorization_RequestDenied"
        assert error["message"] == "Insufficient privileges to complete the operation."
        assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])
        # the default app, granted Directory.Read.All, gets the same request answered
        default = http.post(
            f"{info['graph']}/v1.0/directoryObjects/getByIds",
            headers={"Authorization": f"Bearer {_token(http, info)}"},
            json={"ids": [user_id], "types": ["user"]},
        )
        assert [o["id"] for o in default.json()["value"]] == [user_id]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_documented_curl_example(served: tuple[subprocess.Popen[str], dict[str, Any]]) -> None:
    _, info = served
    token_call = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "--cacert",
            info["ca_bundle"],
            f"{info['authority']}/{info['tenant_id']}/oauth2/v2.0/token",
            "-d",
            "grant_type=client_credentials",
            "-d",
            f"client_id={info['client_id']}",
            "--data-urlencode",
            f"client_secret={info['client_secret']}",
            "-d",
            "scope=https://graph.microsoft.com/.default",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    token = json.loads(token_call.stdout)["access_token"]
    users_call = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "--cacert",
            info["ca_bundle"],
            "-H",
            f"Authorization: Bearer {token}",
            f"{info['graph']}/v1.0/users?$select=id,displayName&$top=5",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    assert len(json.loads(users_call.stdout)["value"]) == 5


def test_text_mode_prints_a_policy_snippet_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [SYNCCTL, "emulator", "serve", "--users", "5", "--groups", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [_read_line(process)]
        assert process.stdout is not None
        while not lines[-1].startswith("Serving until"):  # printed in one write: buffered
            lines.append(process.stdout.readline())
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        assert process.stdout is not None and process.stderr is not None
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert "emulator stopped" in stderr and "Traceback" not in stderr
    text = "".join(lines)
    for needle in (
        "tenant:\n",
        "  endpoints:\n",
        "    authority: https://127.0.0.1:",
        "  ca_bundle: ",
        "client_secret: {env: SYNCCTL_EMULATOR_SECRET}",
        "granted Directory.Read.All, GroupMember.Read.All, User.Read.All:",
        "A second app granted only User.Read.All, to try Graph's 403 answers:",
        "curl -s --cacert",
    ):
        assert needle in text
    assert process.returncode == 0


def test_serve_a_tenant_file(tmp_path: Path) -> None:
    from syncctl.emulator import generate_tenant

    document = tmp_path / "tenant.json"
    generate_tenant(users=7, groups=10, seed=3).save(document)
    process = subprocess.Popen(
        [SYNCCTL, "emulator", "serve", "--tenant", str(document), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(_read_line(process))
        with httpx.Client(verify=ssl.create_default_context(cafile=info["ca_bundle"])) as http:
            token = _token(http, info)
            page = http.get(
                f"{info['graph']}/v1.0/users?$select=id",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert len(page.json()["value"]) == 7
    finally:
        _stop(process)


def test_bad_tenant_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "tenant.json"
    bad.write_text('{"format": "something-else"}')
    result = subprocess.run(
        [SYNCCTL, "emulator", "serve", "--tenant", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


def test_startup_problems_are_one_line_errors(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [SYNCCTL, "emulator", "serve", "--users", "1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert busy.returncode == 1 and f"127.0.0.1:{port}" in busy.stderr
    missing_dir = tmp_path / "no" / "such" / "ca.pem"
    unwritable = subprocess.run(
        [SYNCCTL, "emulator", "serve", "--users", "1", "--ca-file", str(missing_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert unwritable.returncode == 1 and str(missing_dir) in unwritable.stderr
    for result in (busy, unwritable):
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_without_the_extra_it_says_what_to_install() -> None:
    script = (
        "import sys; sys.modules['trustme'] = None\n"
        "from syncctl.cli.main import main\n"
        "main(['emulator', 'serve'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode == 1
    assert "pip install 'syncctl[emulator]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_throttle_option(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            SYNCCTL,
            "emulator",
            "serve",
            "--users",
            "5",
            "--groups",
            "10",
            "--json",
            "--throttle",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(_read_line(process))
        with httpx.Client(verify=ssl.create_default_context(cafile=info["ca_bundle"])) as http:
            headers = {"Authorization": f"Bearer {_token(http, info)}"}
            first = http.get(f"{info['graph']}/v1.0/users", headers=headers)  # 2 RU
            second = http.get(f"{info['graph']}/v1.0/users", headers=headers)
            assert first.status_code == 200
            # Graph's Retry-After may carry a fraction ("2.128"), as the emulator's does
            assert second.status_code == 429 and float(second.headers["Retry-After"]) > 0
    finally:
        _stop(process)


def test_control_endpoint_counts_requests_and_takes_tenant_changes(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [SYNCCTL, "emulator", "serve", "--users", "5", "--groups", "10", "--json", "--control"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(_read_line(process))
        control = info["control"]
        assert control["url"] == f"{info['authority']}/_emulator"
        with httpx.Client(verify=ssl.create_default_context(cafile=info["ca_bundle"])) as http:
            key = {"Authorization": f"Bearer {control['key']}"}
            graph = {"Authorization": f"Bearer {_token(http, info)}"}
            users = http.get(f"{info['graph']}/v1.0/users?$select=id,accountEnabled", headers=graph)
            user_id = users.json()["value"][0]["id"]
            http.post(f"{info['graph']}/v1.0/$batch", headers=graph, json={"requests": []})
            log = http.get(f"{control['url']}/requests", headers=key).json()
            # the token POST is logged but is not a Graph request; control calls are not logged
            assert log["graph"] == {"GET": 1, "POST": 1}
            assert [r["path"] for r in log["requests"]][-2:] == ["/v1.0/users", "/v1.0/$batch"]
            assert log["requests"][-2]["query"] == "$select=id,accountEnabled"
            assert http.delete(f"{control['url']}/requests", headers=key).status_code == 204
            assert http.get(f"{control['url']}/requests", headers=key).json()["graph"] == {}

            changes = [
                {"op": "disable_user", "args": [user_id]},
                {"op": "update_user", "args": [user_id], "properties": {"jobTitle": "Mayor"}},
                {
                    "op": "create_user",
                    "properties": {"userPrincipalName": "new@x.example", "displayName": "New"},
                },
            ]
            applied = http.post(f"{control['url']}/changes", headers=key, json={"changes": changes})
            assert applied.status_code == 200
            assert applied.json()["applied"] == 3
            new_id = applied.json()["results"][2]
            changed = http.get(
                f"{info['graph']}/v1.0/users/{user_id}?$select=accountEnabled,jobTitle",
                headers=graph,
            ).json()
            assert (changed["accountEnabled"], changed["jobTitle"]) == (False, "Mayor")
            created = http.get(f"{info['graph']}/v1.0/users/{new_id}", headers=graph)
            assert created.json()["userPrincipalName"] == "new@x.example"

            bad = http.post(
                f"{control['url']}/changes",
                headers=key,
                json={"changes": [{"op": "disable_user", "args": [user_id]}, {"op": "save"}]},
            )
            assert bad.status_code == 400
            message = bad.json()["error"]["message"]
            assert message.startswith("change 1: unknown op 'save'") and "\n" not in message
            missing = http.post(
                f"{control['url']}/changes",
                headers=key,
                json={"changes": [{"op": "remove_member", "args": [user_id, user_id]}]},
            )
            assert missing.status_code == 400 and "change 0:" in missing.json()["error"]["message"]
            for wrong in ({}, {"Authorization": "Bearer nope"}, graph):
                denied = http.get(f"{control['url']}/requests", headers=wrong)
                assert denied.status_code == 401
            # the refused and the control calls were not logged as Graph requests either
            log = http.get(f"{control['url']}/requests", headers=key).json()
            assert log["graph"] == {"GET": 2}
    finally:
        _stop(process)


def test_without_control_there_is_no_control_endpoint(
    served: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    _, info = served
    assert "control" not in info
    with httpx.Client(verify=ssl.create_default_context(cafile=info["ca_bundle"])) as http:
        answer = http.get(f"{info['authority']}/_emulator/requests")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "Request_ResourceNotFound"
