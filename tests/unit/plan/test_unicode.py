"""Unicode in keys and values (issue 10): Unicode-equal keys are one key, and one invalid value
(a lone UTF-16 surrogate) is an error of that object alone, never a crashed plan."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.mapping import Mapper
from syncctl.model import ObjectKind
from syncctl.plan.model import Action
from syncctl.plan.planfile import dumps, loads, plan_to_dict
from syncctl.plan.planner import Mappers, plan_policy
from syncctl.plan.unicode import norm_key, printable
from syncctl.policy.model import Policy
from syncctl.render import markdown, text
from tests.unit.plan.support import (
    NOW,
    actions,
    make_policy,
    plan_of,
    snapshot,
    source_group,
    source_user,
    target_group,
    target_snapshot,
    target_user,
    whole_plan,
)

NFC = unicodedata.normalize("NFC", "josé@contoso.com")
NFD = unicodedata.normalize("NFD", "josé@contoso.com")
BAD = "Fin\ud800ance"  # a lone high surrogate, as json.loads('"Fin\\ud800ance"') gives it


def real_mappers(policy: Policy) -> Mappers:
    return Mappers(
        Mapper(policy.name, policy.mappings.user, ObjectKind.USER),
        Mapper(policy.name, policy.mappings.group, ObjectKind.GROUP),
    )


def everything_renders(plan_doc: dict[str, object]) -> None:
    """What the CLI does with a plan: none of it may raise on the text it holds."""
    for rendered in (text.render(plan_doc), markdown.render(plan_doc)):
        rendered.encode("utf-8")


# -- lone surrogates -------------------------------------------------------------------------


def test_a_lone_surrogate_in_one_users_value_is_an_error_of_that_user_only() -> None:
    zoe = source_user("u-zoe", "zoe@contoso.com", department=BAD)
    ann = source_user("u-ann", "ann@contoso.com", department="IT")
    target = target_snapshot(
        [target_user("t-zoe", "zoe@contoso.com", "u-zoe", displayName="Zoe", department="X")]
    )
    policy = make_policy()
    for mappers in (None, real_mappers(policy)):  # the test double and the real Mapper
        plan = plan_policy(
            policy, snapshot([zoe, ann]), target, disabled_at={}, now=NOW, mappers=mappers
        )
        # Ann is planned; Zoe is neither updated nor disabled (she is not "out of scope").
        assert actions(plan) == [("user/ann@contoso.com", "create", "entered_scope")]
        (error,) = plan.errors
        assert error.address == "user/zoe@contoso.com"
        assert 'mapping "department", object u-zoe' in error.message
        assert "lone UTF-16 surrogate \\ud800" in error.message
        document = plan_to_dict(whole_plan(plan))
        assert loads(dumps(whole_plan(plan))) == document
        everything_renders(document)


def test_a_lone_surrogate_in_the_key_names_the_object_by_its_target_key() -> None:
    bad = source_user("u-bad", "bad\udfff@contoso.com")
    new = source_user("u-new", "new\ud801@contoso.com")
    target = target_snapshot([target_user("t-bad", "bad@contoso.com", "u-bad", displayName="Bad")])
    plan = plan_of(make_policy(), snapshot([bad, new]), target)
    assert plan.changes == ()
    assert [e.address for e in plan.errors] == [
        "user/bad@contoso.com",
        "user/new\\ud801@contoso.com",  # never held on the target: its key, escaped
    ]
    dumps(whole_plan(plan)).encode("utf-8")


def test_a_lone_surrogate_in_a_group_name_is_an_error_and_its_members_stay() -> None:
    ann = source_user("u-ann", "ann@contoso.com")
    group = source_group("g1", "Sta\ud800ff", ("u-ann",))
    target = target_snapshot(
        [target_user("t-ann", "ann@contoso.com", "u-ann", displayName="Ann")],
        [target_group("tg1", "Staff", "g1")],
        {"tg1": {"t-ann"}},
    )
    plan = plan_of(make_policy(), snapshot([ann], [group]), target)
    assert plan.changes == ()
    assert [e.address for e in plan.errors] == ["group/Staff"]


def test_a_lone_surrogate_held_by_the_target_is_shown_escaped_and_overwritten() -> None:
    ann = source_user("u-ann", "ann@contoso.com", displayName="Ann")
    target = target_snapshot(
        [target_user("t-ann", "ann@contoso.com", "u-ann", displayName="A\ud800nn")]
    )
    plan = plan_of(make_policy(), snapshot([ann]), target)
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    assert change.attributes[0].before == "A\ud800nn"  # the applier gets the real values
    document = plan_to_dict(whole_plan(plan))
    shown = document["policies"][0]["changes"][0]["attributes"][0]
    assert shown["before"] == "A\\ud800nn"
    everything_renders(document)


def test_the_source_fingerprint_of_a_lone_surrogate_is_stable() -> None:
    source = snapshot([source_user("u-zoe", "zoe@contoso.com", department=BAD)])
    assert source.fingerprint() == source.fingerprint()
    valid = snapshot([source_user("u-zoe", "zoe@contoso.com", department="Finance")])
    assert source.fingerprint() != valid.fingerprint()


def test_printable_escapes_only_surrogates() -> None:
    assert printable("josé") == "josé"
    assert printable("a\ud800b\udfff") == "a\\ud800b\\udfff"


# -- Unicode-equal keys ----------------------------------------------------------------------


def test_nfc_and_nfd_spellings_of_one_name_are_both_errors_never_two_creates() -> None:
    first = source_user("u-1", NFC)
    second = source_user("u-2", NFD)
    plan = plan_of(make_policy(), snapshot([first, second]), target_snapshot())
    assert plan.changes == ()
    assert len(plan.errors) == 2
    assert all("is also mapped from" in e.message for e in plan.errors)
    assert all("Unicode normalisation" in e.message for e in plan.errors)


def test_a_desired_name_unicode_equal_to_an_unmanaged_row_is_a_conflict() -> None:
    target = target_snapshot([target_user("t1", NFC, None, managed_by=None)])
    plan = plan_of(make_policy(), snapshot([source_user("u-1", NFD.upper())]), target)
    assert plan.changes == ()
    (error,) = plan.errors
    assert "conflicts with unmanaged user" in error.message


def test_a_desired_name_unicode_equal_to_an_unmanaged_row_is_adopted_by_username() -> None:
    target = target_snapshot([target_user("t1", NFC, None, managed_by=None)])
    policy = make_policy(user_match=("userName",))
    plan = plan_of(policy, snapshot([source_user("u-1", NFD)]), target)
    assert [(c.action, c.target_id) for c in plan.changes] == [(Action.ADOPT, "t1")]


def test_a_managed_user_whose_name_changes_normalisation_is_renamed_in_place() -> None:
    target = target_snapshot([target_user("t1", NFD, "u-1", displayName=NFD.split("@")[0])])
    plan = plan_of(make_policy(), snapshot([source_user("u-1", NFC)]), target)
    (change,) = plan.changes
    assert change.action is Action.UPDATE and change.target_id == "t1"
    assert not plan.errors


def test_protected_names_match_whatever_the_normalisation() -> None:
    target = target_snapshot([target_user("t1", NFD, "u-1")])
    policy = make_policy(protected=(NFC.upper(),))
    plan = plan_of(policy, snapshot(), target)
    assert plan.changes == ()


def test_norm_key_is_canonical_caseless() -> None:
    assert norm_key(NFC) == norm_key(NFD) == norm_key(NFD.upper())
    assert norm_key("Straße") == norm_key("STRASSE")
    assert norm_key("alice@contoso.com") == "alice@contoso.com"


def _spellings(name: str) -> st.SearchStrategy[str]:
    """``name`` composed or decomposed, in lower, upper or its own case."""
    spelled = [unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)]
    return st.sampled_from([case(s) for s in spelled for case in (str.lower, str.upper, str)])


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["josé", "zoë", "ångström", "Ünal", "renée"]),
    data=st.data(),
    existing=st.sampled_from([None, "managed", "unmanaged"]),
)
def test_keys_differing_only_by_normalisation_or_case_never_give_two_objects(
    name: str, data: st.DataObject, existing: str | None
) -> None:
    spellings = data.draw(st.lists(_spellings(name + "@contoso.com"), min_size=2, max_size=3))
    users = [source_user(f"u-{i}", key) for i, key in enumerate(spellings)]
    rows = []
    if existing is not None:
        key = data.draw(_spellings(name + "@contoso.com"))
        owner = "contoso-vault" if existing == "managed" else None
        rows.append(target_user("t0", key, "u-0" if owner else None, managed_by=owner))
    plan = plan_of(make_policy(), snapshot(users), target_snapshot(rows))
    creates = [c for c in plan.changes if c.action is Action.CREATE]
    destructive = [c for c in plan.changes if c.action in (Action.DELETE, Action.DISABLE)]
    assert not creates and not destructive
    # Every Entra user is an error, except the one already holding the name on the target.
    holder = 1 if existing == "managed" else 0
    assert len(plan.errors) == len(users) - holder
    assert {c.source_id for c in plan.changes} <= ({"u-0"} if holder else set())


def test_a_group_unicode_equal_to_an_unmanaged_one_is_adopted_by_display_name() -> None:
    target = target_snapshot(groups=[target_group("tg1", "Équipe", None, managed_by=None)])
    policy = make_policy(group_match=("displayName",), skip_empty_groups=False)
    group = source_group("g1", unicodedata.normalize("NFD", "équipe"))
    plan = plan_of(policy, snapshot(groups=[group]), target)
    assert [(c.action, c.target_id) for c in plan.changes] == [(Action.ADOPT, "tg1")]
