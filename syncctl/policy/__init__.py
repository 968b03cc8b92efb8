"""The policy language: load YAML policies, check them completely, build the frozen model."""

from __future__ import annotations

from syncctl.policy.explain import explain
from syncctl.policy.load import (
    CheckResult,
    LoadedPolicy,
    check_policies,
    load_policies,
    load_policy,
)
from syncctl.policy.model import Policy

__all__ = [
    "CheckResult",
    "LoadedPolicy",
    "Policy",
    "check_policies",
    "explain",
    "load_policies",
    "load_policy",
]
