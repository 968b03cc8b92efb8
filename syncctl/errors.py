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
    """Signing in to Entra ID failed."""


class PermissionsMissing(AuthError):
    """The app registration lacks application permissions the policy needs; ``lines`` has
    one per permission (str() joins them, for callers that print one line)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = tuple(lines)


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
