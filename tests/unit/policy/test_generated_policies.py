"""Property: every policy the language allows validates, builds, and explains to a fixed point."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.policy import check_policies, explain

GUID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
secrets = st.sampled_from([{"env": "SECRET_A"}, {"file": "secrets/a.txt"}, {"file": "/abs/b"}])
credentials = st.one_of(
    secrets.map(lambda s: {"client_secret": s}),
    st.builds(
        lambda p: {"certificate": {"path": "app.pem", **p}},
        st.sampled_from([{}, {"password": {"env": "PW"}}]),
    ),
    st.sampled_from(
        [
            {"federated_token": {"file": "token"}},
            {"federated_token": {"env": "ID_TOKEN"}},
            {"federated_token": {"github_actions": {}}},
            {"federated_token": {"azure_pipelines": {"service_connection_id": "sc"}}},
            {"managed_identity": {}},
            {"managed_identity": {"client_id": GUID}},
        ]
    ),
)
clauses = st.one_of(
    st.builds(
        lambda a, op, v: {"attribute": a, "op": op, "value": v},
        st.sampled_from(["department", "jobTitle", "extension_1.x"]),
        st.sampled_from(
            [
                "equals",
                "not_equals",
                "starts_with",
                "ends_with",
                "includes",
                "greater_than",
                "less_than",
            ]
        ),
        st.one_of(st.text(min_size=1, max_size=5), st.integers(), st.booleans()),
    ),
    st.builds(
        lambda op: {"attribute": "accountEnabled", "op": op},
        st.sampled_from(["is_true", "is_false", "is_null", "is_not_null"]),
    ),
    st.builds(
        lambda v: {"attribute": "country", "op": "in", "value": v},
        st.lists(st.text(min_size=1, max_size=3), min_size=1, max_size=3),
    ),
    st.builds(
        lambda v: {"attribute": "mail", "op": "regex_match", "value": v},
        st.sampled_from(["^a", "x$", "(?i)contoso"]),
    ),
)
targets = st.one_of(
    st.just({"type": "sqlite", "path": "app.db"}),
    st.builds(lambda s: {"type": "scim", "url": "https://v.example.com/scim", "token": s}, secrets),
    st.builds(
        lambda s: {
            "type": "scim",
            "url": "http://127.0.0.1:9/scim",
            "oauth": {"token_url": "https://i/t", "client_id": "c", "client_secret": s},
        },
        secrets,
    ),
)
mapping_values = st.one_of(
    st.sampled_from(
        ["[displayName]", 'Join(" ", [givenName], [surname])', "ToLower([mail])", '"fixed"']
    ),
    st.builds(
        lambda v, d, a: {"value": v, **d, **a},
        st.sampled_from(["[department]", "Coalesce([mail], [userPrincipalName])"]),
        st.sampled_from([{}, {"default": "none"}]),
        st.sampled_from([{}, {"apply": "always"}, {"apply": "on_create"}]),
    ),
)
user_attributes = st.dictionaries(
    st.sampled_from(
        [
            "displayName",
            "title",
            "department",
            "nickName",
            "name.givenName",
            "employeeNumber",
            'emails[type eq "work"].value',
        ]
    ),
    mapping_values,
    max_size=4,
).map(lambda extra: {"userName": "[userPrincipalName]", **extra})
thresholds = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=100).map(lambda n: f"{n}%"),
)
deletions = st.fixed_dictionaries(
    {},
    optional={
        "out_of_scope": st.sampled_from(["ignore", "disable", "delete"]),
        "hard_deleted": st.sampled_from(["ignore", "disable", "delete"]),
        "groups": st.sampled_from(["ignore", "delete"]),
        "delete_after": st.builds(
            lambda n, u: f"{n}{u}", st.integers(0, 400), st.sampled_from("smhdw")
        ),
        "max_deletes": thresholds,
        "max_disables": thresholds,
        "protected": st.lists(st.sampled_from(["a@x.com", "Admins", GUID]), unique=True),
    },
)
policies = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "name": st.from_regex(r"\A[a-z0-9-]{1,20}\Z"),
        "tenant": st.builds(
            lambda c: {"id": "contoso.onmicrosoft.com", "client_id": GUID, "credential": c},
            credentials,
        ),
        "source": st.fixed_dictionaries(
            {
                "scope_groups": st.lists(
                    st.sampled_from(["Users", GUID, "PM Users"]), min_size=1, max_size=2
                )
            },
            optional={
                "nested": st.booleans(),
                "filters": st.lists(st.lists(clauses, min_size=1, max_size=3), max_size=2),
                "groups": st.lists(
                    st.sampled_from(["Vault Admins", GUID, {"match": "^PM-"}]), max_size=3
                ),
            },
        ),
        "target": targets,
    },
    optional={
        "mappings": st.builds(
            lambda u: {"user": {"match": ["userName"], "attributes": u}}, user_attributes
        ),
        "deletion": deletions,
    },
)


@settings(max_examples=120, deadline=None)
@given(policies)
def test_generated_valid_policies_validate_build_and_explain_to_a_fixed_point(
    document: dict[str, Any],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "policy.yaml"
        path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

        result = check_policies([path])
        assert result.errors == [], [str(d) for d in result.errors]
        effective = explain(result.policies[0].policy)

        path.write_text(yaml.safe_dump(effective, allow_unicode=True), encoding="utf-8")
        again = check_policies([path])
        assert again.errors == []
        assert explain(again.policies[0].policy) == effective
