"""Read policy files, check them completely, and build the model.

``check_policies`` never raises for a bad policy: it returns every diagnostic (errors and
warnings) of every file together with the policies that are valid, so ``syncctl validate`` can
report all of them at once. ``load_policies`` is the strict form the other commands use.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from syncctl.errors import Diagnostic, Location, PolicyError
from syncctl.policy.build import build_policy
from syncctl.policy.checks import semantic_problems
from syncctl.policy.model import Policy
from syncctl.policy.problems import Problem, without_typo_echoes
from syncctl.policy.schema import schema_problems
from syncctl.policy.yamlpos import Mark, Positions, YamlDocumentError, parse

POLICY_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    file: str  # as the user named it (for messages)
    policy: Policy


@dataclass(slots=True)
class CheckResult:
    policies: list[LoadedPolicy] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def check_policies(paths: Sequence[Path]) -> CheckResult:
    result = CheckResult()
    files: list[Path] = []
    for path in paths:
        found, problem = _policy_files(path)
        files += found
        if problem is not None:
            result.diagnostics.append(problem)
    seen: set[Path] = set()
    first_file_of: dict[str, str] = {}  # policy name -> file that defines it
    for file in files:
        identity = file.resolve()
        if identity in seen:
            continue
        seen.add(identity)
        loaded, diagnostics, name_location = _check_file(file)
        result.diagnostics += diagnostics
        if loaded is None:
            continue
        name = loaded.policy.name
        if name in first_file_of:
            message = f"name: policy name '{name}' is already used by {first_file_of[name]}"
            result.diagnostics.append(Diagnostic(name_location, message))
            continue
        first_file_of[name] = loaded.file
        result.policies.append(loaded)
    result.policies.sort(key=lambda loaded: loaded.policy.name)
    return result


def load_policies(paths: Sequence[Path]) -> list[Policy]:
    """All policies in ``paths`` (files, or directories of *.yaml/*.yml), sorted by name.

    Raises ``PolicyError`` with every error of every file; warnings are not errors.
    """
    result = check_policies(paths)
    if result.errors:
        raise PolicyError(result.errors)
    return [loaded.policy for loaded in result.policies]


def load_policy(path: Path) -> Policy:
    policies = load_policies([path])
    if len(policies) != 1:  # a directory was passed
        raise PolicyError([Diagnostic(Location(str(path)), "expected exactly one policy file")])
    return policies[0]


def _policy_files(path: Path) -> tuple[list[Path], Diagnostic | None]:
    # is_dir()/exists() raise for a name the OS refuses (a component over 255 bytes).
    try:
        return _listed_policy_files(path)
    except OSError as exc:
        return [], _file_error(path, f"cannot read: {os_reason(exc)}")


def os_reason(exc: OSError) -> str:
    """The OS's reason, said so a person knows what to change."""
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long (a path component over 255 bytes, or the whole path too long)"
    return exc.strerror or type(exc).__name__


def _listed_policy_files(path: Path) -> tuple[list[Path], Diagnostic | None]:
    if path.is_dir():
        try:
            found = sorted(
                entry
                for entry in path.iterdir()
                if entry.suffix.lower() in POLICY_SUFFIXES and entry.is_file()
            )
        except OSError as exc:
            return [], _file_error(path, f"cannot read directory: {os_reason(exc)}")
        if not found:
            return [], _file_error(path, "no policy files (*.yaml, *.yml) in this directory")
        return found, None
    if not path.exists():
        return [], _file_error(path, "no such file or directory")
    return [path], None


def _file_error(
    path: Path, message: str, line: int | None = None, column: int | None = None
) -> Diagnostic:
    return Diagnostic(Location(str(path), line, column), message)


def _check_file(path: Path) -> tuple[LoadedPolicy | None, list[Diagnostic], Location]:
    file = str(path)
    here = Location(file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [_file_error(path, f"cannot read file: {os_reason(exc)}")], here
    text, problem = _decode(path, data)
    if problem is not None:
        return None, [problem], here
    try:
        document, positions = parse(text)
    except YamlDocumentError as exc:
        errors = [_file_error(path, one_line(p.message), p.line, p.column) for p in exc.problems]
        return None, errors, here
    if not isinstance(document, dict):
        found = "a list" if isinstance(document, list) else "a single value"
        message = f"a policy must be a mapping of keys (version, name, tenant, ...), found {found}"
        root = positions.value(())
        return None, [_file_error(path, message, root.line, root.column)], here
    problems = schema_problems(document)
    problems += semantic_problems(document, path.parent.absolute())
    problems = without_typo_echoes(problems)
    diagnostics = sorted(
        {_locate(file, positions, problem) for problem in problems},
        key=lambda d: (d.location.line or 0, d.location.column or 0, d.message),
    )
    name_mark = positions.value(("name",))
    name_location = Location(file, name_mark.line, name_mark.column)
    if any(d.severity == "error" for d in diagnostics):
        return None, diagnostics, name_location
    absolute = path.absolute()
    policy = build_policy(document, absolute, hashlib.sha256(data).hexdigest())
    return LoadedPolicy(file, policy), diagnostics, name_location


def _decode(path: Path, data: bytes) -> tuple[str, Diagnostic | None]:
    if b"\x00" in data:
        return "", _file_error(path, "not a text file (contains NUL bytes); expected a YAML policy")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return "", _file_error(path, "not UTF-8 text; expected a YAML policy", line, column)


def _locate(file: str, positions: Positions, problem: Problem) -> Diagnostic:
    mark = positions.key(problem.path) if problem.at_key else positions.value(problem.path)
    column = mark.column
    if problem.expression_column is not None:
        column = expression_column(mark, problem.expression_column)
    return Diagnostic(
        Location(file, mark.line, column), one_line(problem.message), problem.severity
    )


def one_line(message: str) -> str:
    """Keys and values quoted in a message may hold control characters; a diagnostic is one
    printable line."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)


def expression_column(mark: Mark, offset: int) -> int:
    """File column of the ``offset``-th (1-based) character of a scalar's value.

    Exact for one-line plain and quoted scalars (escapes counted); block scalars and
    multi-line values point at the scalar itself.
    """
    if mark.raw is None or mark.style not in (None, "'", '"'):
        return mark.column
    if mark.style is None:
        return mark.column + offset - 1
    starts = _quoted_char_starts(mark.raw, mark.style)
    if offset - 1 < len(starts):
        return mark.column + starts[offset - 1]
    return mark.column + len(mark.raw) - 1


_ESCAPE_WIDTH = {"x": 2, "u": 4, "U": 8}


def _quoted_char_starts(raw: str, quote: str) -> list[int]:
    """Index in ``raw`` (which includes the quotes) where each value character starts."""
    starts: list[int] = []
    index = 1
    end = len(raw) - 1
    while index < end:
        starts.append(index)
        if quote == "'" and raw.startswith("''", index):
            index += 2
        elif quote == '"' and raw[index] == "\\" and index + 1 < end:
            index += 2 + _ESCAPE_WIDTH.get(raw[index + 1], 0)
        else:
            index += 1
    return starts
