"""What the state contract suite needs from each backend's test server.

Each backend's fixture (``local_state_store``, ``postgres_state_store``,
``azure_blob_state_store``) yields a fresh, empty ``StateStore``: a policy ``state:`` section
pointing at it, the environment its secret references need, and a way to plant a raw
document (corrupt, newer-version) where the backend would read it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syncctl.policy import load_policy
from syncctl.policy.model import Policy


@dataclass
class StateStore:
    kind: str
    section: dict[str, Any]  # the policy's `state:` section
    env: dict[str, str] = field(default_factory=dict)  # what its {env: NAME} refs read
    # (policy name, tenant id, document text): store it as the backend would
    write_raw: Callable[[str, str, str], None] = lambda policy, tenant, text: None

    @contextmanager
    def environment(self) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def write_policy(
    directory: Path, name: str, store: StateStore, *, tenant: str = "contoso.onmicrosoft.com"
) -> Path:
    """A minimal offline policy (snapshot tenant, SQLite target) using ``store``."""
    directory.mkdir(parents=True, exist_ok=True)
    snapshot = directory / "snapshot.json"
    if not snapshot.exists():
        snapshot.write_text("{}", encoding="utf-8")
    document = {
        "version": 1,
        "name": name,
        "tenant": {"id": tenant, "snapshot": "snapshot.json"},
        "source": {"scope_groups": ["Users"]},
        "target": {"type": "sqlite", "path": "directory.db"},
        "state": store.section,
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def policy_for(directory: Path, name: str, store: StateStore, **kwargs: Any) -> Policy:
    return load_policy(write_policy(directory, name, store, **kwargs))
