"""A working directory that runs the real ``syncctl`` binary against the Graph emulator, for
the incremental-reconciliation (delta) tests: it counts the Graph requests each run sends,
reads and edits the state and its blobs as an operator could, and compares JSON plans."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syncctl.emulator import Emulator, generate_tenant, running_emulator
from tests.cli.binary import run_syncctl

SECRET_ENV = "SYNCCTL_TEST_EMULATOR_SECRET"
SCOPE = "Password Manager Users"
NESTED = ("Password Manager Users - Europe", "Password Manager Users - Germany")
DEEPEST = "Password Manager Users - Berlin"
NO_CHANGES = "No changes"


@contextmanager
def delta_emulator(users: int = 400, groups: int = 20, seed: int = 11) -> Iterator[Emulator]:
    """A TLS Graph emulator whose scope group has a 3-level nested chain below it."""
    with running_emulator(generate_tenant(users=users, groups=groups, seed=seed)) as emu:
        yield emu


def clean(emu: Emulator) -> None:
    emu.faults.clear()
    emu.throttle(None)
    emu.reset_requests()


@dataclass(repr=False)
class Run:
    """One ``syncctl`` invocation and the Graph requests it sent (``/v1.0/`` paths)."""

    args: tuple[str, ...]
    process: subprocess.CompletedProcess[str]
    graph: list[tuple[str, str, str]]

    @property
    def code(self) -> int:
        return self.process.returncode

    @property
    def stdout(self) -> str:
        return self.process.stdout

    @property
    def stderr(self) -> str:
        return self.process.stderr

    @property
    def requests(self) -> int:
        return len(self.graph)

    @property
    def paths(self) -> list[str]:
        return sorted(path for _, path, _ in self.graph)

    def __repr__(self) -> str:  # what an assertion message shows
        return (
            f"syncctl {' '.join(self.args)} -> exit {self.code}, {self.requests} Graph "
            f"requests {self.paths}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n"
            f"{self.stderr[-3000:]}"
        )


def base_policy(emu: Emulator, name: str, vault_admins_id: str) -> dict[str, Any]:
    """Scope: the nested scope group; provisioned: Vault Admins by object id and ``^PM-``."""
    return {
        "version": 1,
        "name": name,
        "tenant": {
            "id": emu.tenant_id,
            "client_id": emu.client_id,
            "credential": {"client_secret": {"env": SECRET_ENV}},
            "endpoints": {"authority": emu.authority, "graph": emu.graph},
            "ca_bundle": str(emu.ca_bundle),
        },
        "source": {
            "scope_groups": [SCOPE],
            "groups": [vault_admins_id, {"match": "^PM-"}],
        },
        "target": {"type": "sqlite", "path": f"{name}.db"},
    }


@dataclass
class Workspace:
    """A policy directory: ``NAME.yaml``, its SQLite target ``NAME.db`` and local state in
    ``.syncctl/`` (unless the policy names another backend). Runs use relative paths, so a
    copy of the directory (``copy``) plans the same as the original."""

    emu: Emulator
    root: Path
    name: str = "emu"
    env: dict[str, str] = field(default_factory=dict)
    masked: tuple[Path, ...] = ()  # other directories' paths a plan may name (``comparable``)

    @classmethod
    def create(cls, emu: Emulator, root: Path, name: str = "emu", **changes: Any) -> Workspace:
        root.mkdir(parents=True, exist_ok=True)
        vault = emu.tenant.group_by_name("Vault Admins")
        assert vault is not None
        space = cls(emu, root, name)
        document = base_policy(emu, name, str(vault["id"]))
        for key, value in changes.items():
            section, _, item = key.partition("__")
            document[section][item] = value
        space.write_policy(document)
        return space

    # -- files -----------------------------------------------------------------------------

    @property
    def policy_file(self) -> Path:
        return self.root / f"{self.name}.yaml"

    @property
    def database(self) -> Path:
        return self.root / f"{self.name}.db"

    @property
    def state_file(self) -> Path:
        return self.root / ".syncctl" / f"{self.name}.state.json"

    @property
    def blobs(self) -> Path:
        return self.root / ".syncctl" / f"{self.name}.blobs"

    def policy(self) -> dict[str, Any]:
        document: dict[str, Any] = yaml.safe_load(self.policy_file.read_text(encoding="utf-8"))
        return document

    def write_policy(self, document: dict[str, Any]) -> None:
        text = yaml.safe_dump(document, sort_keys=False)
        self.policy_file.write_text(text, encoding="utf-8")

    def state(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        return document

    def write_state(self, document: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(document, indent=2), encoding="utf-8")

    def slice_blob(self) -> Path:
        """The slice blob the local state names (it must exist)."""
        name = str(self.state()["source_cache"]["blob"])
        assert name.startswith("slice-"), name
        path = self.blobs / name
        assert path.is_file(), sorted(p.name for p in self.blobs.iterdir())
        return path

    def copy(self, root: Path) -> Workspace:
        """The directory copied as it is now (policy, target, state and blobs)."""
        shutil.copytree(self.root, root)
        return Workspace(self.emu, root, self.name, dict(self.env), (*self.masked, self.root))

    def target_rows(self) -> list[str]:
        """Everything the SQLite target holds, as SQL text (to prove nothing was written)."""
        with sqlite3.connect(self.database) as conn:
            return list(conn.iterdump())

    def sql(self, statement: str, *params: object) -> int:
        """An application writing to the target directly; returns the rows changed."""
        conn = sqlite3.connect(self.database)
        try:
            with conn:
                return conn.execute(statement, params).rowcount
        finally:
            conn.close()

    def managed(self) -> set[str]:
        return set(self.state()["managed"])

    # -- runs ------------------------------------------------------------------------------

    def run(self, *args: str) -> Run:
        self.emu.reset_requests()
        process = run_syncctl(
            *args,
            self.policy_file.name,
            cwd=self.root,
            **{SECRET_ENV: self.emu.client_secret, **self.env},
        )
        graph = [r for r in self.emu.requests if r[1].startswith("/v1.0/")]
        return Run(tuple(args), process, graph)

    def plan_json(self, *args: str, masked: tuple[Path, ...] = ()) -> tuple[Run, dict[str, Any]]:
        """``plan --format json ARGS`` (which must exit 0) and its ``comparable`` document."""
        run = self.run("plan", "--format", "json", *args)
        assert run.code == 0, run
        return run, comparable(run.stdout, self.root, *self.masked, *masked)

    def converge(self) -> Run:
        """``apply --auto-approve`` until the target matches (one apply must do it)."""
        applied = self.run("apply", "--auto-approve")
        assert applied.code == 0, applied
        return applied

    def assert_quiet(
        self, runs: int = 2, *, command: tuple[str, ...] = ("plan",), stderr: str = ""
    ) -> None:
        """``runs`` no-change runs of ``command``: each exits 0, says "No changes" and sends
        exactly the two delta requests, with nothing (but ``stderr``) to say on stderr."""
        for _ in range(runs):
            run = self.run(*command)
            assert run.code == 0, run
            assert NO_CHANGES in run.stdout, run
            assert run.paths == ["/v1.0/groups/delta", "/v1.0/users/delta"], run
            assert run.stderr == stderr, run


def comparable(plan_text: str, *roots: Path) -> dict[str, Any]:
    """A JSON plan without what differs between equal plans made at other times or in a copy
    of the directory: ``created_at``, the ``digest`` over it, and the directories' paths."""
    for root in roots:
        plan_text = plan_text.replace(str(root), "<workspace>")
    document: dict[str, Any] = json.loads(plan_text)
    document.pop("created_at")
    document.pop("digest")
    return document


def canonical_text(plan_text: str, root: Path) -> str:
    """The plan's text with only ``created_at`` and ``digest`` lines (and the path) masked."""
    masked = ('  "created_at": ', '  "digest": ')
    return "\n".join(
        line.split(":", 1)[0] + ": <masked>" if line.startswith(masked) else line
        for line in plan_text.replace(str(root), "<workspace>").splitlines()
    )


def changes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for p in plan["policies"] for c in p["changes"]]


def actions(plan: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for change in changes(plan):
        counts[change["action"]] = counts.get(change["action"], 0) + 1
    return counts


def scope_user(emu: Emulator, managed: set[str], group: str = SCOPE, index: int = 0) -> str:
    """A managed, enabled member user directly in ``group`` (sorted, the ``index``-th)."""
    tenant = emu.tenant
    found = tenant.group_by_name(group)
    assert found is not None, group
    users = [
        m
        for m in tenant.live_members(str(found["id"]))
        if m in managed and tenant.users[m].get("accountEnabled", True)
    ]
    assert len(users) > index, (group, users)
    return users[index]


def group_id(emu: Emulator, name: str) -> str:
    found = emu.tenant.group_by_name(name)
    assert found is not None, name
    return str(found["id"])
