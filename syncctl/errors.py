"""Every exception syncctl raises on purpose.

Library code raises these; only ``syncctl.cli.main`` turns them into messages and exit codes.
Messages are one line, name the place at fault, and never contain a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_REFUSED = 3


class SyncctlError(Exception):
    """Base of all expected failures; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_ERROR


@dataclass(frozen=True, slots=True)
class Location:
    """Where a problem is: ``file:line:column`` (1-based), column optional."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    location: Location
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"


class PolicyError(SyncctlError):
    """One or more problems in policy files; every diagnostic is reported at once."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class ExpressionSyntaxError(SyncctlError):
    """A mapping expression that does not parse; ``column`` is 1-based inside the expression."""

    def __init__(self, message: str, column: int) -> None:
        self.message = message
        self.column = column
        super().__init__(f"column {column}: {message}")


class MappingError(SyncctlError):
    """Evaluating a mapping failed for one object (reported per object, not fatal)."""

    def __init__(self, policy: str, mapping: str, obj: str, function: str | None, message: str):
        self.policy, self.mapping, self.obj, self.function = policy, mapping, obj, function
        where = f" in {function}()" if function else ""
        super().__init__(f'policy "{policy}", mapping "{mapping}", object {obj}{where}: {message}')


class SecretError(SyncctlError):
    """A secret reference ({env}/{file}) that cannot be resolved. Never includes the value."""


class AuthError(SyncctlError):
    """Signing in to Entra ID failed. Raised as is when the credential cannot be used at all
    (a certificate file that does not load, a federated token source that is not set up);
    the subclasses say whether Entra refused it or could not be asked."""


class SignInRefused(AuthError):
    """Entra answered the sign-in with an error: the secret, certificate, app or tenant was
    refused. ``code`` is Entra's error code as it documents them (``AADSTS7000215``) when the
    answer carried one; ``error`` is the OAuth error (``invalid_client``)."""

    def __init__(self, message: str, *, code: str | None = None, error: str | None = None):
        super().__init__(message)
        self.code = code
        self.error = error


class SignInUnreachable(AuthError):
    """The sign-in service could not be asked: no connection, TLS, a timeout, a 5xx after
    the retries, or an answer that is not the identity platform's (a proxy's page)."""


class SignInRequired(AuthError):
    """An interactive credential (``tenant.credential.interactive``) has no usable sign-in:
    nobody ran ``syncctl login``, the sign-in was revoked or expired, or the token cache
    cannot be used. ``problem`` says which; the message ends with the commands that fix it,
    naming the policy file when the caller knows it (``for_policy``). Never prompts: only
    ``syncctl login`` signs anyone in."""

    def __init__(self, problem: str, *, logout_first: bool = False, policy: str | None = None):
        self.problem = problem
        self.logout_first = logout_first
        self.policy = policy
        # A path with spaces must survive being pasted into a shell.
        target = policy if policy is not None else "POLICY"
        if " " in target:
            target = f"'{target}'"
        fix = (
            f'run "syncctl logout {target}" and then "syncctl login {target}"'
            if logout_first
            else f'run "syncctl login {target}" first'
        )
        super().__init__(f"{problem}; {fix}")

    def for_policy(self, policy: str) -> SignInRequired:
        """The same error, its fix naming ``policy`` (a policy file) instead of POLICY."""
        return SignInRequired(self.problem, logout_first=self.logout_first, policy=policy)


class PermissionsMissing(AuthError):
    """The app registration lacks application permissions the policy needs; ``lines`` has
    one per permission (str() joins them, for callers that print one line) and
    ``permissions`` their names (``GroupMember.Read.All``), in the same order."""

    def __init__(self, lines: list[str], permissions: Sequence[str] = ()) -> None:
        super().__init__("; ".join(lines))
        self.lines = tuple(lines)
        self.permissions = tuple(permissions)


class GraphError(SyncctlError):
    """Microsoft Graph answered with an error or could not be read completely."""

    def __init__(
        self,
        message: str,
        *,
        request: str | None = None,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        # Empty codes and ids count as absent: never "code ," in a message.
        code, request_id = (v.strip() if v and v.strip() else None for v in (code, request_id))
        self.request, self.status, self.code, self.request_id = request, status, code, request_id
        # The id syncctl sent, next to the one Graph assigned: Microsoft support asks for both.
        self.client_request_id = client_request_id or None
        details = [
            f"{label} {value}"
            for label, value in (
                ("status", status),
                ("code", code),
                ("request-id", request_id),
                ("client-request-id", self.client_request_id),
            )
            if value is not None
        ]
        prefix = f"{request}: " if request else ""
        suffix = f" ({', '.join(details)})" if details else ""
        super().__init__(f"{prefix}{message}{suffix}")


class SnapshotError(SyncctlError):
    """A snapshot file that cannot be read or does not match schemas/snapshot.schema.json."""


class TargetError(SyncctlError):
    """The target directory refused, failed or could not be reached."""


class TargetRefused(TargetError):
    """The target answered, and refused its credentials: ``status`` is the HTTP status, 403
    when they were accepted but do not allow the request, else (401, an OAuth token
    endpoint's 400) they were not accepted."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class TransientTargetError(TargetError):
    """A target failure worth retrying (throttling, 5xx, dropped connection)."""


class StaleObjectError(TargetError):
    """The target object changed since planning (SQLite version or SCIM ETag mismatch)."""

    exit_code = EXIT_REFUSED


class StalePlanError(SyncctlError):
    """A saved plan no longer matches the policy, source or target."""

    exit_code = EXIT_REFUSED


class PlanFileError(SyncctlError):
    """A saved plan file that is not valid JSON or does not match schemas/plan.schema.json."""


class LockHeldError(SyncctlError):
    """Another run holds the policy's lock."""

    exit_code = EXIT_REFUSED


class LostStateError(SyncctlError):
    """The state is missing or empty, yet the target holds objects this policy owns."""

    exit_code = EXIT_REFUSED
