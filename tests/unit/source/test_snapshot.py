"""Snapshot files: round trip, byte-identical output, atomic writes, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.errors import SnapshotError
from syncctl.model import RemovalReason, SourceGroup, SourceSnapshot, SourceUser
from syncctl.policy.model import Tenant
from syncctl.source import load_snapshot, write_snapshot
from syncctl.source.snapshot import dumps_snapshot, load_tenant_slice

ids = st.uuids().map(str)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def snapshots(draw: st.DrawFn) -> SourceSnapshot:
    user_ids = draw(st.lists(ids, unique=True, max_size=6))
    group_ids = draw(st.lists(ids.filter(lambda i: i not in user_ids), unique=True, max_size=4))
    taken = set(user_ids) | set(group_ids)
    removed_ids = draw(st.lists(ids.filter(lambda i: i not in taken), unique=True, max_size=4))
    users = {}
    for user_id in user_ids:
        extra = draw(st.dictionaries(st.sampled_from(["department", "mail", "x"]), json_values))
        users[user_id] = SourceUser(user_id, {**extra, "id": user_id})
    groups = {}
    for group_id in group_ids:
        name = draw(st.text(max_size=12))
        members = draw(
            st.lists(st.sampled_from(user_ids), unique=True) if user_ids else st.just([])
        )
        groups[group_id] = SourceGroup(
            group_id, {"id": group_id, "displayName": name}, tuple(sorted(members))
        )
    removed = {i: draw(st.sampled_from(list(RemovalReason))) for i in removed_ids}
    return SourceSnapshot(draw(st.text(min_size=1, max_size=10)), users, groups, removed)


@settings(max_examples=60, deadline=None)
@given(snapshots())
def test_round_trip_is_lossless_and_byte_stable(
    tmp_path_factory: pytest.TempPathFactory, snapshot: SourceSnapshot
) -> None:
    path = tmp_path_factory.mktemp("snap") / "s.json"
    write_snapshot(snapshot, path)
    loaded = load_snapshot(path)
    assert loaded.fingerprint() == snapshot.fingerprint()
    assert loaded.tenant == snapshot.tenant
    # Same snapshot -> same bytes, whatever order the maps were built in.
    reordered = SourceSnapshot(
        snapshot.tenant,
        dict(reversed(list(snapshot.users.items()))),
        dict(reversed(list(snapshot.groups.items()))),
        dict(reversed(list(snapshot.removed.items()))),
    )
    assert dumps_snapshot(reordered) == path.read_text(encoding="utf-8")


def _valid() -> dict[str, object]:
    return {
        "format_version": 1,
        "tenant": "t",
        "users": [{"id": "u1", "attributes": {"id": "u1"}}],
        "groups": [{"id": "g1", "attributes": {"id": "g1", "displayName": "G"}, "members": ["u1"]}],
        "removed": [{"id": "u9", "reason": "soft_deleted"}],
    }


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_valid_minimal_document_loads(tmp_path: Path) -> None:
    snapshot = load_snapshot(_write(tmp_path, _valid()))
    assert set(snapshot.users) == {"u1"}
    assert snapshot.groups["g1"].members == ("u1",)
    assert snapshot.removed == {"u9": RemovalReason.SOFT_DELETED}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("users"), '"users" is a required property'),
        (lambda d: d.__setitem__("format_version", 2), "/format_version"),
        (lambda d: d["removed"][0].__setitem__("reason", "gone"), "/removed/0/reason"),
        (lambda d: d["users"][0].__setitem__("extra", 1), "/users/0"),
        (lambda d: d["groups"][0]["attributes"].pop("displayName"), "/groups/0/attributes"),
        (lambda d: d["users"][0]["attributes"].__setitem__("id", "u2"), "attributes.id is 'u2'"),
        (lambda d: d["users"].append(d["users"][0]), "user u1 appears twice"),
        (
            lambda d: d["removed"].append({"id": "u1", "reason": "disabled"}),
            "also listed as present",
        ),
    ],
)
def test_invalid_documents_fail_with_one_line_naming_the_place(
    tmp_path: Path, mutate: object, expected: str
) -> None:
    document = _valid()
    mutate(document)  # type: ignore[operator]
    path = _write(tmp_path, document)
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "format_version": 1,\n  oops\n}', encoding="utf-8")
    with pytest.raises(SnapshotError, match=r"bad\.json:3:3: invalid JSON"):
        load_snapshot(path)


def test_missing_file_is_a_snapshot_error(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        load_snapshot(tmp_path / "absent.json")


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    good = SourceSnapshot("t", {"u": SourceUser("u", {"id": "u"})}, {})
    write_snapshot(good, path)
    before = path.read_bytes()
    broken = SourceSnapshot("t", {"u": SourceUser("u", {"id": "other"})}, {})
    # attributes.id mismatch is caught at load time; an empty tenant is caught at write time.
    with pytest.raises(SnapshotError):
        write_snapshot(SourceSnapshot("", {}, {}), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.json"]
    write_snapshot(broken, path)
    with pytest.raises(SnapshotError, match=r"attributes\.id"):
        load_snapshot(path)


def test_unwritable_directory_is_a_snapshot_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SnapshotError, match="cannot write snapshot"):
        write_snapshot(SourceSnapshot("t", {}, {}), blocker / "sub" / "s.json")


# -- snapshots belong to a tenant -------------------------------------------------------------

GUID = "6513270e-1111-4222-8333-944445555666"


def test_a_snapshot_of_another_tenant_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {**_valid(), "tenant": "fabrikam.onmicrosoft.com"})
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(path, tenant="contoso.onmicrosoft.com")
    message = str(caught.value)
    assert message.startswith(
        f"{path}: snapshot was read from tenant fabrikam.onmicrosoft.com, not the policy's "
        "tenant.id contoso.onmicrosoft.com"
    )
    assert "\n" not in message
    # Without a policy to compare with (a tool reading any file), it loads.
    assert load_snapshot(path).tenant == "fabrikam.onmicrosoft.com"


@pytest.mark.parametrize(
    "named", ["contoso.onmicrosoft.com", "Contoso.OnMicrosoft.com", GUID, GUID.upper()]
)
def test_either_name_of_the_tenant_is_accepted_when_both_are_recorded(
    tmp_path: Path, named: str
) -> None:
    path = _write(tmp_path, {**_valid(), "tenant": "contoso.onmicrosoft.com", "tenant_id": GUID})
    assert load_snapshot(path, tenant=named).tenant == "contoso.onmicrosoft.com"


def test_a_domain_cannot_match_a_snapshot_that_records_only_the_guid(tmp_path: Path) -> None:
    path = _write(tmp_path, {**_valid(), "tenant": GUID})
    with pytest.raises(SnapshotError, match=f"read from tenant {GUID}, not the policy's tenant.id"):
        load_snapshot(path, tenant="contoso.onmicrosoft.com")
    other = _write(tmp_path, {**_valid(), "tenant": "contoso.onmicrosoft.com", "tenant_id": GUID})
    with pytest.raises(SnapshotError, match=f"contoso.onmicrosoft.com / {GUID}, not the"):
        load_snapshot(other, tenant="fabrikam.onmicrosoft.com")


def test_export_records_the_directory_id_next_to_a_domain(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    snapshot = SourceSnapshot("contoso.onmicrosoft.com", {}, {})
    write_snapshot(snapshot, path, tenant_id=GUID)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert (document["tenant"], document["tenant_id"]) == ("contoso.onmicrosoft.com", GUID)
    assert load_tenant_slice(path).tenant_id == GUID
    # The same name twice is recorded once; no id, no field.
    write_snapshot(SourceSnapshot(GUID, {}, {}), path, tenant_id=GUID.upper())
    assert "tenant_id" not in json.loads(path.read_text(encoding="utf-8"))
    write_snapshot(snapshot, path)
    assert "tenant_id" not in json.loads(path.read_text(encoding="utf-8"))


def test_tenant_id_must_be_a_guid(tmp_path: Path) -> None:
    path = _write(tmp_path, {**_valid(), "tenant_id": "contoso.onmicrosoft.com"})
    with pytest.raises(SnapshotError, match="/tenant_id"):
        load_snapshot(path)


def test_policies_reading_a_snapshot_check_its_tenant(tmp_path: Path) -> None:
    from syncctl.source import check_source, read_source, read_tenant_slice
    from syncctl.source.search import search_policy
    from tests.unit.source.policies import DEMO_SNAPSHOT, make_policy

    policy = make_policy(tenant=Tenant(id="fabrikam.onmicrosoft.com", snapshot=DEMO_SNAPSHOT))
    for read in (
        lambda: read_source(policy, ()),
        lambda: read_tenant_slice(policy),
        lambda: check_source(policy),
        lambda: search_policy(policy, ""),
    ):
        with pytest.raises(
            SnapshotError, match=r"demo\.json: snapshot was read from tenant contoso"
        ):
            read()
