"""The Entra users ``writeback.passwords`` names, read one by one (by object id or UPN): their
id, UPN and when their password last changed, for the writeback planner."""

from __future__ import annotations

from urllib.parse import quote

from syncctl.errors import GraphError
from syncctl.plan.writeback import EntraAccount
from syncctl.policy.model import Policy
from syncctl.source.graph import GraphClient
from syncctl.source.graph_request import Request

ACCOUNT_SELECT = "id,userPrincipalName,lastPasswordChangeDateTime"


def read_accounts(graph: GraphClient, policy: Policy) -> list[EntraAccount]:
    """One answer per entry, in policy order; a 404 is an account that does not exist (the
    planner reports it), any other failure fails the read."""
    entries = () if policy.writeback is None else policy.writeback.passwords
    if not entries:
        return []
    requests = [
        Request(f"/users/{quote(entry.user, safe='@')}", {"$select": ACCOUNT_SELECT})
        for entry in entries
    ]
    accounts = []
    for entry, answer in zip(entries, graph.get_each(requests), strict=True):
        if answer.status == 404 or answer.body is None:
            accounts.append(EntraAccount(entry, None))
            continue
        body = answer.body
        if not isinstance(body.get("id"), str):
            raise GraphError(f"GET /users/{entry.user}: the answer has no id")
        changed = body.get("lastPasswordChangeDateTime")
        accounts.append(
            EntraAccount(
                entry,
                body["id"],
                str(body.get("userPrincipalName") or entry.user),
                None if changed is None else str(changed),
            )
        )
    return accounts
