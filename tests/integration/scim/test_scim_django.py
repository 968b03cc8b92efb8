"""A second, independent and rougher SCIM peer: django-scim2 in a minimal Django project.

It claims patch but no filter, ETag or Bulk; answers 501 to filtered/URN PATCH paths; ignores
``members`` on POST /Groups; removes members only with the Entra-style value array; gives 409
without ``scimType``; drops the enterprise extension; and names absolute endpoints in
/ResourceTypes. syncctl must degrade gracefully: use what /ServiceProviderConfig claims and
what the server actually does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncctl.plan.model import Action, AttributeChange, ChangeKind
from syncctl.targets.base import OutcomeStatus
from syncctl.targets.scim import ScimDirectory
from tests.contract.scim_harness import free_port, scim_policy, stop, wait_until_up
from tests.integration.scim.helpers import (
    create_group,
    create_user,
    eid,
    make_policy,
    member,
    object_change,
)

PROJECT = Path(__file__).resolve().parents[2] / "fixtures" / "django_scim"
BIN = Path(sys.executable).parent
OWNER = "scim-test"
TOKEN = "django-peer-token"


@pytest.fixture(scope="module")
def django_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SCIM_DB": str(tmp_path_factory.mktemp("django") / "scim.sqlite3"),
        "SCIM_NETLOC": f"127.0.0.1:{port}",
        "SCIM_TOKEN": TOKEN,
        "DJANGO_SETTINGS_MODULE": "settings",
    }
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "-v", "0"],
        cwd=PROJECT,
        env=env,
        check=True,
        timeout=60,
    )
    command = [str(BIN / "gunicorn"), "-w", "1", "--threads", "8", "-b", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        [*command, "wsgi:application"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/scim/v2"
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        wait_until_up(f"{base}/ServiceProviderConfig", process, headers=auth)
        yield base
    finally:
        stop(process)


@pytest.fixture
def raw(django_url: str) -> Iterator[httpx.Client]:
    """Direct access; the store is emptied after each test (django-scim2 has no tenants)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=django_url, headers=headers, timeout=30) as client:
        yield client
        for endpoint in ("/Groups", "/Users"):
            listing = client.get(endpoint, params={"count": "500"}).json()
            for resource in listing.get("Resources", []):
                client.delete(f"{endpoint}/{resource['id']}")


@pytest.fixture
def directory(tmp_path: Path, django_url: str, raw: httpx.Client) -> Iterator[ScimDirectory]:
    token = tmp_path / "django-token"
    token.write_text(TOKEN, encoding="utf-8")
    built = ScimDirectory(scim_policy(make_policy(tmp_path), django_url, token))
    try:
        yield built
    finally:
        built.close()


def _seed(directory: ScimDirectory, users: int = 2) -> None:
    directory.read(OWNER, [])
    changes = [create_user(n) for n in range(1, users + 1)] + [create_group(1)]
    outcomes = directory.apply(changes, OWNER)
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * (users + 1), outcomes


def _known(users: int = 2) -> list[str]:
    return [eid("user", n) for n in range(1, users + 1)] + [eid("group", 1)]


def test_discovery_follows_the_claims(directory: ScimDirectory) -> None:
    sp = directory.service_provider
    assert (sp.patch, sp.bulk, sp.filter, sp.etag) == (True, False, False, False)
    # django-scim2 names absolute endpoints ("/scim/v2/Users"): resolved against the base.
    assert (sp.users_endpoint, sp.groups_endpoint) == ("/Users", "/Groups")
    assert directory.capabilities().versions is False
    directory.check()


def test_create_read_and_memberships(directory: ScimDirectory, raw: httpx.Client) -> None:
    _seed(directory)
    outcomes = directory.apply([member(Action.ADD, 1, 1), member(Action.ADD, 1, 2)], OWNER)
    assert [o.status for o in outcomes] == [OutcomeStatus.APPLIED] * 2
    snapshot = directory.read(OWNER, _known())
    users = {u.key: u for u in snapshot.users}
    assert set(users) == {"user1@contoso.test", "user2@contoso.test"}
    user = users["user1@contoso.test"]
    assert user.managed_by == OWNER and user.external_id == eid("user", 1)
    # Lossy peer: what it stored is what syncctl reads back (no enterprise extension).
    assert user.attributes["name.familyName"] == "N1"
    assert "department" not in user.attributes
    assert user.version.startswith("sha256:")  # no ETags: a content hash
    group = snapshot.groups[0]
    assert snapshot.members[group.target_id] == {u.target_id for u in users.values()}


def test_member_removal_falls_back_to_the_value_array(
    directory: ScimDirectory, raw: httpx.Client
) -> None:
    _seed(directory, users=3)
    directory.apply([member(Action.ADD, 1, n) for n in (1, 2, 3)], OWNER)
    (first,) = directory.apply([member(Action.REMOVE, 1, 1)], OWNER)
    assert first.status is OutcomeStatus.APPLIED
    assert directory._ctx.remove_style == "value_array"
    (second,) = directory.apply([member(Action.REMOVE, 1, 2)], OWNER)
    assert second.status is OutcomeStatus.APPLIED
    snapshot = directory.read(OWNER, _known(3))
    remaining = {u.target_id for u in snapshot.users if u.key == "user3@contoso.test"}
    assert snapshot.members[snapshot.groups[0].target_id] == remaining


def test_update_uses_put_where_patch_answers_501(
    directory: ScimDirectory, raw: httpx.Client
) -> None:
    _seed(directory, users=1)
    user = directory.read(OWNER, _known(1)).users[0]
    change = object_change(
        Action.UPDATE,
        user.target_id,
        "user/user1@contoso.test",
        version=user.version,
        attributes=(
            AttributeChange("name.familyName", "N1", "Renamed"),
            AttributeChange('emails[type eq "work"].value', "user1@contoso.test", "u1@new.test"),
        ),
    )
    (outcome,) = directory.apply([change], OWNER)
    assert outcome.status is OutcomeStatus.APPLIED, outcome.message
    stored = raw.get(f"/Users/{user.target_id}").json()
    assert stored["name"]["familyName"] == "Renamed"
    assert [e["value"] for e in stored["emails"]] == ["u1@new.test"]
    assert stored["externalId"] == eid("user", 1)  # PUT kept ownership


def test_disable_and_delete(directory: ScimDirectory, raw: httpx.Client) -> None:
    _seed(directory, users=1)
    snapshot = directory.read(OWNER, _known(1))
    user, group = snapshot.users[0], snapshot.groups[0]
    disable = object_change(Action.DISABLE, user.target_id, "user/user1@contoso.test")
    assert directory.apply([disable], OWNER)[0].status is OutcomeStatus.APPLIED
    assert raw.get(f"/Users/{user.target_id}").json()["active"] is False
    deletes = [
        object_change(Action.DELETE, user.target_id, "user/user1@contoso.test"),
        object_change(Action.DELETE, group.target_id, "group/Group 1", kind=ChangeKind.GROUP),
    ]
    assert [o.status for o in directory.apply(deletes, OWNER)] == [OutcomeStatus.APPLIED] * 2
    assert raw.get(f"/Users/{user.target_id}").status_code == 404
    assert directory.apply(deletes[:1], OWNER)[0].status is OutcomeStatus.UNCHANGED


def test_conflict_without_scim_type_and_adoption_without_filter(
    tmp_path: Path, django_url: str, raw: httpx.Client
) -> None:
    assert raw.post("/Users", json={"userName": "user1@contoso.test"}).status_code == 201
    token = tmp_path / "t"
    token.write_text(TOKEN, encoding="utf-8")
    plain = ScimDirectory(scim_policy(make_policy(tmp_path), django_url, token))
    matching = ScimDirectory(
        scim_policy(make_policy(tmp_path, user_match=("userName",)), django_url, token)
    )
    try:
        plain.read(OWNER, [])
        (failed,) = plain.apply([create_user(1)], OWNER)
        assert failed.status is OutcomeStatus.FAILED
        assert "status 409" in (failed.message or "") and "match" in (failed.message or "")
        # With `match`, the object listed by read() is adopted (the server cannot filter).
        matching.read(OWNER, [])
        (adopted,) = matching.apply([create_user(1)], OWNER)
        assert adopted.status is OutcomeStatus.APPLIED, adopted.message
        stored = raw.get(f"/Users/{adopted.target_id}").json()
        assert stored["externalId"] == eid("user", 1)
    finally:
        plain.close()
        matching.close()
