"""The engine's writeback steps: which Entra users a run reads for ``writeback.passwords``,
and the Graph session that writes a run's ``entra_user`` changes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from syncctl.plan.model import Change, ChangeKind
from syncctl.plan.writeback import EntraAccount
from syncctl.policy.model import Policy

if TYPE_CHECKING:
    from syncctl.source.entra_writer import EntraWriter
    from syncctl.source.graph import GraphClient


def sets_passwords(policy: Policy) -> bool:
    """A password secret can change without any input of the quiet plan changing: such a
    policy is always planned in full."""
    return policy.writeback is not None and bool(policy.writeback.passwords)


def read_password_accounts(policy: Policy, graph: GraphClient) -> list[EntraAccount]:
    if not sets_passwords(policy):
        return []
    from syncctl.source.accounts import read_accounts

    return read_accounts(graph, policy)


@contextmanager
def entra_writer(
    policy: Policy, accounts: Sequence[EntraAccount], changes: Sequence[Change]
) -> Iterator[EntraWriter | None]:
    """A signed-in writer for the run's ``entra_user`` changes; None when it has none."""
    if not any(c.kind is ChangeKind.ENTRA_USER for c in changes):
        yield None
        return
    from syncctl.source.entra_writer import EntraWriter, PasswordWrite
    from syncctl.source.reader import graph_session

    passwords = {
        a.id: PasswordWrite(a.entry.secret, a.entry.force_change_next_sign_in)
        for a in accounts
        if a.id is not None
    }
    with graph_session(policy.tenant) as graph:
        yield EntraWriter(graph, passwords)
