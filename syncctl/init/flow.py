"""The order of ``syncctl init``'s questions, the same for a person at a terminal
(``TerminalAsker``: explains, shows defaults, asks again after a bad answer) and for an
answers file (``FileAsker``: asks nothing, the first bad or missing answer is the error).

Half-way, after the tenant and credential, it signs in (``sign_in``) so that groups can be
searched and picked; everything after that is local.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from syncctl.init import questions as q
from syncctl.init.directory import GroupChoice, Search, numbered_table, pick_groups
from syncctl.init.questions import AnswerError, Question
from syncctl.source.search import DirectoryEntry

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answers:
    """Everything a first policy needs, as the person chose it (paths as typed)."""

    tenant: str
    cloud: str
    credential: dict[str, Any]  # the policy's tenant.credential mapping (names, never secrets)
    client_id: str | None
    scope_groups: tuple[GroupChoice, ...]
    nested: bool
    groups: tuple[GroupChoice, ...]
    deletion: dict[str, str]  # reason -> ignore | disable | delete, in q.REASONS order
    delete_after: str | None
    max_deletes: int | str
    max_disables: int | str
    target: dict[str, Any]  # the policy's target mapping
    name: str
    output: Path
    endpoints: dict[str, str] | None = None  # {authority, graph}: a proxy or the emulator
    ca_bundle: str | None = None
    credential_kind: str = field(default="interactive")


@dataclass(frozen=True, slots=True)
class Connection:
    """What signing in needs, known after the first questions."""

    tenant: str
    cloud: str
    credential_kind: str
    credential: dict[str, Any]
    client_id: str | None
    endpoints: dict[str, str] | None
    ca_bundle: str | None


class Asker(Protocol):
    interactive: bool

    def ask(self, question: Question[T]) -> T: ...

    def pick(
        self, question: Question[str], search: Search, *, required: bool
    ) -> tuple[GroupChoice, ...]: ...

    def say(self, message: str) -> None: ...


SignIn = Callable[[Connection], AbstractContextManager[Search]]
OutputCheck = Callable[[str], Path]  # raises ValueError (exists, no --force)


def collect(
    asker: Asker,
    sign_in: SignIn,
    *,
    output_check: OutputCheck,
    output_default: str | None = None,
    endpoints: dict[str, str] | None = None,
    ca_bundle: str | None = None,
) -> Answers:
    connection = _connection(asker, endpoints, ca_bundle)
    with sign_in(connection) as search:
        asker.say("Signed in. Pick the groups whose members get an account.")
        scope = asker.pick(q.SCOPE_GROUPS, search, required=True)
        nested = asker.ask(q.NESTED)
        groups = asker.pick(q.GROUPS, search, required=False)
    asker.say("What happens to an account whose user goes away, per reason:")
    for line in q.ACTION_HELP:
        asker.say(f"  {line}")
    deletion = {reason: asker.ask(question) for reason, question in q.DELETION.items()}
    delete_after = asker.ask(q.DELETE_AFTER)
    max_deletes = asker.ask(q.MAX_DELETES)
    max_disables = asker.ask(q.MAX_DISABLES)
    target, suggested = _target(asker)
    name = asker.ask(_with_default(q.NAME, suggested))
    output_question = _with_default(q.OUTPUT, output_default or f"{name}.yaml")
    output = asker.ask(
        Question(
            output_question.id,
            output_question.prompt,
            output_question.help,
            lambda raw: output_check(q.policy_file(raw)),
            output_question.default,
        )
    )
    return Answers(
        tenant=connection.tenant,
        cloud=connection.cloud,
        credential=connection.credential,
        credential_kind=connection.credential_kind,
        client_id=connection.client_id,
        scope_groups=scope,
        nested=nested,
        groups=groups,
        deletion=deletion,
        delete_after=delete_after,
        max_deletes=max_deletes,
        max_disables=max_disables,
        target=target,
        name=name,
        output=output,
        endpoints=connection.endpoints,
        ca_bundle=connection.ca_bundle,
    )


def _connection(
    asker: Asker, endpoints: dict[str, str] | None, ca_bundle: str | None
) -> Connection:
    tenant = asker.ask(q.TENANT)
    cloud = asker.ask(q.CLOUD)
    kind = asker.ask(q.CREDENTIAL)
    client_id = None if kind == "managed_identity" else asker.ask(q.CLIENT_ID)
    credential: dict[str, Any]
    if kind == "interactive":
        credential = {"interactive": {}}
    elif kind == "client_secret":
        credential = {"client_secret": {"env": asker.ask(q.CLIENT_SECRET_ENV)}}
    elif kind == "certificate":
        certificate: dict[str, Any] = {"path": asker.ask(q.CERTIFICATE_PATH)}
        password = asker.ask(q.CERTIFICATE_PASSWORD_ENV)
        if password is not None:
            certificate["password"] = {"env": password}
        credential = {"certificate": certificate}
    elif kind == "federated_token":
        credential = {"federated_token": asker.ask(q.FEDERATED_TOKEN)}
    else:
        identity = asker.ask(q.MANAGED_IDENTITY_CLIENT_ID)
        credential = {"managed_identity": {"client_id": identity} if identity else {}}
    return Connection(tenant, cloud, kind, credential, client_id, endpoints, ca_bundle)


def _target(asker: Asker) -> tuple[dict[str, Any], str]:
    """The target mapping and a policy name suggested from it."""
    kind = asker.ask(q.TARGET)
    if kind == "sqlite":
        database = asker.ask(q.SQLITE_PATH)
        return {"type": "sqlite", "path": database}, q.slug(Path(database).stem)
    address = asker.ask(q.SCIM_URL)
    token = asker.ask(q.SCIM_TOKEN_ENV)
    host = (address.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]).split(".")[0]
    return {"type": "scim", "url": address, "token": {"env": token}}, q.slug(host)


def _with_default(question: Question[T], default: str) -> Question[T]:
    return Question(
        question.id, question.prompt, question.help, question.parse, default, question.optional
    )


# -- answers file ----------------------------------------------------------------------------


class FileAsker:
    """Answers from a mapping (the ``--answers`` file): asks nothing, explains nothing."""

    interactive = False

    def __init__(self, answers: Mapping[str, Any], *, where: str) -> None:
        unknown = [key for key in answers if key not in q.ANSWER_KEYS]
        if unknown:
            key = str(unknown[0])
            close = difflib.get_close_matches(key, q.ANSWER_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise AnswerError(key, f"unknown question in {where}{hint}")
        self._answers = dict(answers)
        self._where = where

    def ask(self, question: Question[T]) -> T:
        raw = self._answers.get(question.id)
        if raw is None or raw == "":
            if question.default is not None:
                raw = question.default
            elif question.optional:
                raw = ""
            else:
                raise AnswerError(question.id, f"missing from {self._where} (it has no default)")
        return question.answer(raw)

    def pick(
        self, question: Question[str], search: Search, *, required: bool
    ) -> tuple[GroupChoice, ...]:
        raw = self._answers.get(question.id)
        items = _listed(question.id, raw)
        if not items and required:
            raise AnswerError(question.id, f"missing from {self._where}: name at least one group")
        return pick_groups(question.id, items, (), search)

    def say(self, message: str) -> None:
        pass  # the flow's explanations are for people; the run's output is the plan


def _listed(key: str, raw: Any) -> list[str]:
    if raw is None or raw == "":
        return []
    items = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(item, str) for item in items):
        raise AnswerError(key, "must be a list of group names or object ids")
    return [str(item) for item in items]


# -- terminal --------------------------------------------------------------------------------


class TerminalAsker:
    """A person at a terminal: each question explained in one line, its default in brackets
    (Enter takes it), and a bad answer's one-line error followed by the question again."""

    interactive = True

    def __init__(
        self, prompt: Callable[[str, str | None], str], say: Callable[[str], None]
    ) -> None:
        self._prompt = prompt  # (text, default) -> typed answer (the default on Enter)
        self._say = say
        self._shown: list[DirectoryEntry] = []
        self._searched = False  # the first pick searches first; later picks reuse the table

    def say(self, message: str) -> None:
        self._say(message)

    def ask(self, question: Question[T]) -> T:
        self._say(f"{question.help}")
        while True:
            # An optional question takes Enter as "none" ("" as the default shows nothing).
            default = "" if question.default is None and question.optional else question.default
            raw = self._prompt(question.prompt, default)
            try:
                if not raw.strip() and question.default is None and not question.optional:
                    raise AnswerError(question.id, "an answer is required")
                return question.answer(raw)
            except AnswerError as exc:
                self._say(f"Error: {exc}")

    def pick(
        self, question: Question[str], search: Search, *, required: bool
    ) -> tuple[GroupChoice, ...]:
        if not self._searched:
            self._search(self.ask(q.SEARCH), search)
        self._say(question.help)
        while True:
            raw = self._prompt(question.prompt, None if required else "")
            typed = raw.strip()
            if typed.startswith("/"):
                self._search(typed[1:].strip(), search)
                continue
            items = list(_split(typed))
            try:
                if not items and required:
                    raise AnswerError(question.id, "pick at least one group")
                return pick_groups(question.id, items, self._shown, search)
            except AnswerError as exc:
                self._say(f"Error: {exc}")

    def _search(self, term: str, search: Search) -> None:
        self._shown = search(term)
        self._searched = True
        self._say(numbered_table(self._shown))


def _split(typed: str) -> Iterator[str]:
    return (item.strip() for item in typed.split(",")) if typed else iter(())
