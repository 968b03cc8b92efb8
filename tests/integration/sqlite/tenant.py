"""Generated tenants and policies for engine, CLI, crash and benchmark runs.

Deterministic for a seed: users u<n>, a scope group holding all of them, and team groups
whose members are drawn at random. Written with the source engineer's ``write_snapshot`` so
the files are exactly what ``syncctl export`` would produce.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

from syncctl.model import SourceGroup, SourceSnapshot, SourceUser
from syncctl.source import write_snapshot

SCOPE_GROUP = "App Users"
_NS = uuid.UUID("6f1c3c3e-7d0b-4b8e-9a53-0d5b3a2f1e00")
DEPARTMENTS = ("Finance", "Engineering", "Sales", "Legal", "Support")


def entra_id(kind: str, n: int) -> str:
    return str(uuid.uuid5(_NS, f"{kind}-{n}"))


def make_tenant(
    users: int, groups: int, memberships: int, *, seed: int = 0, tenant: str = "contoso.test"
) -> SourceSnapshot:
    rng = random.Random(seed)
    user_ids = [entra_id("user", n) for n in range(users)]
    source_users = {
        uid: SourceUser(
            uid,
            {
                "id": uid,
                "userPrincipalName": f"user{n:06d}@contoso.test",
                "displayName": f"User {n:06d}",
                "givenName": "User",
                "surname": f"{n:06d}",
                "mail": f"user{n:06d}@contoso.test",
                "jobTitle": "Engineer" if n % 3 else None,
                "department": DEPARTMENTS[n % len(DEPARTMENTS)],
                "accountEnabled": True,
                "userType": "Member",
            },
        )
        for n, uid in enumerate(user_ids)
    }
    members: dict[str, set[str]] = {entra_id("group", g): set() for g in range(groups)}
    group_ids = sorted(members)
    if group_ids and user_ids:
        target = min(memberships, len(group_ids) * len(user_ids))
        placed = 0
        while placed < target:
            chosen = members[rng.choice(group_ids)]
            before = len(chosen)
            chosen.add(rng.choice(user_ids))
            placed += len(chosen) - before
    source_groups = {
        gid: SourceGroup(
            gid,
            {
                "id": gid,
                "displayName": f"Team-{g:05d}",
                "groupTypes": [],
                "securityEnabled": True,
                "mailEnabled": False,
            },
            tuple(sorted(members[gid])),
        )
        for g, gid in ((g, entra_id("group", g)) for g in range(groups))
    }
    scope_id = entra_id("scope", 0)
    source_groups[scope_id] = SourceGroup(
        scope_id,
        {
            "id": scope_id,
            "displayName": SCOPE_GROUP,
            "groupTypes": [],
            "securityEnabled": True,
            "mailEnabled": False,
        },
        tuple(sorted(user_ids)),
    )
    return SourceSnapshot(tenant=tenant, users=source_users, groups=source_groups)


POLICY = """\
version: 1
name: {name}
tenant:
  id: contoso.test
  snapshot: {snapshot}
source:
  scope_groups: [{scope}]
  groups:
    - {{match: "^Team-"}}
target:
  type: sqlite
  path: {database}
deletion:
  max_deletes: "{max_deletes}"
  max_disables: "{max_disables}"
"""


def write_fixture(
    directory: Path,
    tenant: SourceSnapshot,
    *,
    name: str = "generated",
    max_deletes: str = "10%",
    max_disables: str = "10%",
) -> Path:
    """Write ``tenant.json`` and ``<name>.yaml`` into ``directory``; returns the policy path.
    The database goes to ``directory/<name>.db``, the state to ``directory/.syncctl/``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_snapshot(tenant, directory / "tenant.json")
    policy = directory / f"{name}.yaml"
    policy.write_text(
        POLICY.format(
            name=name,
            snapshot="tenant.json",
            scope=SCOPE_GROUP,
            database=f"{name}.db",
            max_deletes=max_deletes,
            max_disables=max_disables,
        ),
        encoding="utf-8",
    )
    return policy
