"""The no-change cron loop where the state is shared (PostgreSQL, Azure Blob through Azurite)
and where the target has no change feed (SCIM): two Graph requests a run, "No changes", and
the cached slice kept in the state backend itself, not on the runner's disk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from syncctl.emulator import Emulator
from tests.cli.delta_workspace import NO_CHANGES, Workspace, delta_emulator
from tests.contract.scim_harness import shared_server
from tests.contract.state_store import StateStore

pytestmark = pytest.mark.slow  # every test runs the real binary several times


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    with delta_emulator(users=200, groups=12, seed=41) as emu:
        yield emu


@pytest.fixture(params=["postgres", "azure_blob"])
def store(request: pytest.FixtureRequest) -> StateStore:
    found: StateStore = request.getfixturevalue(f"{request.param}_state_store")
    return found


def _blob_names(store: StateStore, tenant: str, policy: str) -> set[str]:
    """The blobs the backend holds for the policy, asked of the backend itself."""
    if store.kind == "postgres":
        dsn = store.env["SYNCCTL_TEST_STATE_DSN"]
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT name, length(data) FROM syncctl_blobs WHERE policy = %s AND tenant = %s",
                (policy, tenant),
            ).fetchall()
        return {str(name) for name, size in rows if size}
    from azure.storage.blob import BlobServiceClient

    (connection_string,) = store.env.values()
    prefix = f"{tenant}/{policy}.blobs/"
    with BlobServiceClient.from_connection_string(connection_string) as service:
        box = service.get_container_client(store.section["container"])
        return {
            b.name.removeprefix(prefix) for b in box.list_blobs(name_starts_with=prefix) if b.size
        }


def _sharing(
    emu: Emulator, store: StateStore, root: Path, database: Path | None = None
) -> Workspace:
    """A workspace whose state is in ``store`` (and whose target is ``database``)."""
    space = Workspace.create(emu, root)
    document = space.policy()
    document["state"] = store.section
    if database is not None:
        document["target"]["path"] = str(database)
    space.write_policy(document)
    space.env.update(store.env)
    return space


def test_a_cron_loop_with_shared_state_costs_two_requests_and_keeps_the_slice_there(
    emu: Emulator, store: StateStore, tmp_path: Path
) -> None:
    space = _sharing(emu, store, tmp_path / "ws")

    space.converge()
    space.assert_quiet(2)
    space.assert_quiet(1, command=("apply", "--auto-approve"))
    assert not (space.root / ".syncctl").exists()  # nothing on the runner's disk

    shown = space.run("state", "show")
    assert shown.code == 0, shown
    state = json.loads(shown.stdout)
    cache = state["source_cache"]
    assert cache["blob"].startswith("slice-"), cache
    assert set(state["delta_links"]) == {"users", "groups"}
    held = _blob_names(store, state["tenant"], "emu")
    assert cache["blob"] in held, held
    if cache["quiet_blob"] is not None:
        assert cache["quiet_blob"] in held, held

    # A second runner (another checkout, another pod) continues from the shared slice.
    _sharing(emu, store, tmp_path / "other", database=space.database).assert_quiet(1)


SCIM_TARGET = {"type": "scim", "token": {"env": "SCIM_TOKEN"}}


def test_a_scim_target_cron_loop_costs_two_graph_requests_and_reads_the_target(
    emu: Emulator, tmp_path: Path
) -> None:
    server = shared_server()
    space = Workspace.create(emu, tmp_path / "ws")
    document = space.policy()
    document["target"] = {**SCIM_TARGET, "url": server.tenant_url()}
    space.write_policy(document)
    space.env["SCIM_TOKEN"] = server.token

    first = space.converge()
    assert "Apply complete" in first.stdout and " 0 failed" in first.stdout, first
    url = document["target"]["url"]
    loopback = f"SCIM target {url} uses plain http (allowed only for loopback hosts)\n"
    space.assert_quiet(2, stderr=loopback)
    space.assert_quiet(1, command=("apply", "--auto-approve"), stderr=loopback)
    cache = space.state()["source_cache"]
    assert cache["quiet_inputs"] is None, cache  # no change marker: no quiet plan recorded
    # The target is still read every run: a user deleted on the SCIM side is planned again.
    with server.client(url) as client:
        users = client.get("/Users", params={"count": "1000"}).json()["Resources"]
        victim = users[0]
        assert client.delete(f"/Users/{victim['id']}").status_code == 204
    run = space.run("plan", "--format", "json", "--detailed-exitcode")
    assert run.code == 2, run
    assert run.requests == 2, run
    created = [
        c
        for p in json.loads(run.stdout)["policies"]
        for c in p["changes"]
        if c["action"] == "create"
    ]
    assert [c["source_id"] for c in created] == [victim["externalId"]], created
    assert NO_CHANGES not in run.stdout
