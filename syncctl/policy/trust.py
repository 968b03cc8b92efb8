"""``plan --trusted DIR``: use credentials only for policies the protected branch vouches for.

The threat: the documented GitOps job runs ``syncctl plan`` on every pull request with real
credentials in its environment, and the pull request edits the policy. A policy value that
says where a secret goes (``target.url``, ``tenant.endpoints.authority``, ``ca_bundle``) or
which secret is read (``{file: ~/.ssh/id_rsa}``, ``{env: OTHER_SECRET}``) hands that secret to
whoever wrote the pull request. The defence: DIR is a checkout of the protected base branch,
and a policy's credentials are used only when every credential-bearing field equals the field
of the trusted policy with the same name. Everything else (scope, mappings, deletion rules)
is what a pull request is for and may differ freely.

What is credential-bearing (decided here, once, for every field present and future):

* every ``SecretRef`` anywhere in the model: which secret is read;
* every ``Path`` anywhere in the model: secret files, certificates, federated token files and
  CA bundles decide what is read and whom TLS trusts; data files (snapshot, SQLite database,
  state) are included too, because a run that holds credentials should read and write only
  where the protected branch said. A false refusal costs a reviewer a look; a missed one
  costs a secret;
* every field whose name says it is an address: ``url``, ``*_url``, ``*_uri``, ``authority``,
  ``graph``, ``endpoint``, ``dsn``, ``connection_string`` (so a future ``state.account_url``
  or ``state.dsn`` is covered without editing this file);
* whole subtrees that decide who signs in and as whom: ``tenant.id``, ``tenant.client_id``,
  ``tenant.cloud`` (picks the authority), ``tenant.endpoints``, ``tenant.credential`` (kind
  and every option: a managed identity's client id selects which identity the host lends),
  ``target.type``, ``target.oauth`` (token URL, client id, secret, scope) and
  ``writeback.passwords`` (which user gets which secret);
* every option of a plugin target: syncctl cannot know which of them are addresses or
  secrets, so all of them are.

How values compare. Secret references compare as written (``env`` name; ``file`` path as
below). Paths are resolved per policy, so the two copies live in different directories: a
path written relative to its policy file compares by its location relative to that file,
after resolving symlinks (a pull request that turns ``secrets/token`` into a symlink to
``~/.ssh/id_rsa`` changes the location and is refused); a path written absolute (or with
``~``) compares as the absolute real path. A CA bundle also compares by content, because a
pull request can edit a bundle committed beside the policy without touching the policy.

A policy that uses no credential at all (a snapshot source, a SQLite target, no secret
reference) is never refused: there is nothing to steal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncctl.errors import SyncctlError
from syncctl.policy.model import (
    CertificateCredential,
    ClientSecretCredential,
    FederatedTokenCredential,
    ManagedIdentityCredential,
    PluginTarget,
    Policy,
    SecretRef,
    SqliteTarget,
)

NO_TRUSTED_COPY = "(no trusted copy of this policy)"

# Identity and bookkeeping of the file itself, not values the policy chooses.
_NOT_COMPARED = frozenset({"version", "name", "path", "sha256"})

# Subtrees compared leaf by leaf, whatever their type (dotted policy keys).
_CREDENTIAL_SUBTREES = (
    "tenant.id",
    "tenant.client_id",
    "tenant.cloud",
    "tenant.endpoints",
    "tenant.credential",
    "target.type",
    "target.oauth",
    "writeback.passwords",
)
_ADDRESS_NAMES = frozenset(
    {"url", "uri", "authority", "graph", "endpoint", "dsn", "connection_string"}
)
_ADDRESS_SUFFIXES = ("_url", "_uri", "_endpoint", "_dsn", "_connection_string")

_CREDENTIAL_KINDS: dict[type, str] = {
    ClientSecretCredential: "client_secret",
    CertificateCredential: "certificate",
    FederatedTokenCredential: "federated_token",
    ManagedIdentityCredential: "managed_identity",
}
# Model field -> policy key where the two are spelled differently.
_RENAMED: dict[tuple[type, str], str] = {
    (ClientSecretCredential, "secret"): "",  # client_secret: {env: ...} is the secret itself
    (
        FederatedTokenCredential,
        "azure_pipelines_service_connection_id",
    ): "azure_pipelines.service_connection_id",
}
_CA_BUNDLE_LIMIT = 16 * 1024 * 1024  # bigger than any real bundle; bounds a hostile path

_ABSENT = object()


def untrusted_fields(policy: Policy, trusted: Sequence[Policy]) -> list[str]:
    """Credential-bearing fields of ``policy`` (dotted policy keys, e.g.
    "tenant.endpoints.authority", "target.token") that differ from the trusted copy with the
    same name; ["(no trusted copy of this policy)"] when there is none. Empty: safe to use
    credentials."""
    mine = credential_fields(policy)
    if not _uses_credentials(policy, mine):
        return []
    copies = [candidate for candidate in trusted if candidate.name == policy.name]
    if not copies:
        return [NO_TRUSTED_COPY]
    best: list[str] | None = None
    for copy in copies:  # several same-named trusted copies: any one of them vouches
        differing = _differences(mine, credential_fields(copy))
        if not differing:
            return []
        if best is None or len(differing) < len(best):
            best = differing
    assert best is not None
    return best


def load_trusted(directory: Path) -> list[Policy]:
    """The valid policies in ``directory`` (a base-branch checkout's policy directory, or the
    checkout itself when its policies are in ``policies/``). A trusted policy that does not
    load is simply absent: it cannot vouch for anything."""
    from syncctl.policy.load import check_policies

    try:
        is_directory = directory.is_dir()
        nested = directory / "policies"
        use_nested = is_directory and not _has_policy_files(directory) and nested.is_dir()
    except OSError as exc:
        raise SyncctlError(f"--trusted {directory}: {exc.strerror}") from None
    if not is_directory:
        raise SyncctlError(
            f"--trusted {directory}: not a directory (expected a checkout of the protected "
            "base branch, or its policies directory)"
        )
    result = check_policies([nested if use_nested else directory])
    return [loaded.policy for loaded in result.policies]


def credential_fields(policy: Policy) -> dict[str, Any]:
    """Every credential-bearing leaf of ``policy``: dotted policy key -> comparable value."""
    leaves: dict[str, Any] = {}
    directory = policy.path.parent
    for field in dataclasses.fields(policy):
        if field.name not in _NOT_COMPARED:
            _walk(getattr(policy, field.name), field.name, directory, leaves, forced=False)
    return leaves


def _walk(value: Any, key: str, directory: Path, leaves: dict[str, Any], forced: bool) -> None:
    forced = forced or _in_credential_subtree(key)
    if isinstance(value, SecretRef):
        if value.env is not None:
            leaves[key] = ("secret env", value.env)
        else:
            assert value.file is not None
            leaves[key] = ("secret file", _path_form(value.file, directory))
    elif isinstance(value, Path):
        form: tuple[Any, ...] = ("path", _path_form(value, directory))
        if key.endswith("ca_bundle"):
            form += (_digest(value),)
        leaves[key] = form
    elif isinstance(value, PluginTarget):
        leaves[f"{key}.type"] = value.type
        for option, raw in value.options.items():
            _walk(raw, f"{key}.{option}", directory, leaves, forced=True)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = _CREDENTIAL_KINDS.get(type(value))
        if kind is not None:
            leaves[key] = kind  # the kind alone matters: managed_identity: {} has no fields
            key = f"{key}.{kind}"
        for field in dataclasses.fields(value):
            name = _RENAMED.get((type(value), field.name), field.name)
            child = f"{key}.{name}" if name else key
            _walk(getattr(value, field.name), child, directory, leaves, forced)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{key}[{index}]", directory, leaves, forced)
    elif isinstance(value, dict):
        for name, item in value.items():
            _walk(item, f"{key}.{name}", directory, leaves, forced)
    elif value is not None and (forced or _is_address(key)):
        leaves[key] = value
    elif value is None and forced:
        leaves[key] = None


def _in_credential_subtree(key: str) -> bool:
    return any(key == prefix or key.startswith(f"{prefix}.") for prefix in _CREDENTIAL_SUBTREES)


def _is_address(key: str) -> bool:
    name = key.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    return name in _ADDRESS_NAMES or name.endswith(_ADDRESS_SUFFIXES)


def _path_form(path: Path, directory: Path) -> tuple[str, str]:
    """A path as the policy means it, comparable across checkouts (see the module docstring)."""
    real = os.path.realpath(path)
    # The loader joins a relative path onto the policy's directory and keeps an absolute one
    # as it is, so "lexically under the directory" is exactly "written relative".
    if path.is_relative_to(directory):
        return ("relative", os.path.relpath(real, os.path.realpath(directory)))
    return ("absolute", real)


def _digest(path: Path) -> str:
    from syncctl.secretfile import read_small_file

    try:
        data = read_small_file(path, _CA_BUNDLE_LIMIT, what="CA bundle")
    except SyncctlError:
        return "(unreadable)"  # both copies unreadable compare equal; the run reports it
    return hashlib.sha256(data).hexdigest()


def _uses_credentials(policy: Policy, leaves: dict[str, Any]) -> bool:
    if policy.tenant.credential is not None or not isinstance(policy.target, SqliteTarget):
        return True
    return any(
        isinstance(value, tuple) and value[:1] in (("secret env",), ("secret file",))
        for value in leaves.values()
    )


def _differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    keys = sorted(set(mine) | set(theirs))
    return [key for key in keys if mine.get(key, _ABSENT) != theirs.get(key, _ABSENT)]


def _has_policy_files(directory: Path) -> bool:
    from syncctl.policy.load import POLICY_SUFFIXES

    try:
        return any(
            entry.suffix.lower() in POLICY_SUFFIXES and entry.is_file()
            for entry in directory.iterdir()
        )
    except OSError:
        return False
