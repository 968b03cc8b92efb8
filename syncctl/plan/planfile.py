"""The plan document (CLI.md "Plan JSON", format_version 1): the one marshaller.

``plan_to_dict`` is the only place a Plan becomes data for people or machines: the JSON
output, saved plan files and the text/markdown renderers all read its result, so a saved plan
and a live one render identically. Values of redacted attributes become ``"(redacted)"`` and
apply-time values ``"(known after apply)"`` here, so no renderer can leak them.

A written plan carries ``"digest": "sha256:<hex>"``: SHA-256 of the UTF-8 bytes of the rest
of the document in canonical JSON (``syncctl.model.canonical_json``: keys sorted, no
whitespace, non-ASCII unescaped). ``loads`` refuses a file whose content no longer matches
it, so an edited plan (say, ``"refused"`` set to null) is never applied. The digest is over
the parsed content, not the bytes: re-indenting a file does not break it. It guards against
edits, not against someone who recomputes it (that needs a signature).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from syncctl.errors import EXIT_REFUSED, PlanFileError
from syncctl.model import canonical_json
from syncctl.plan.model import (
    KNOWN_AFTER_APPLY,
    REDACTED,
    AttributeChange,
    Change,
    ChangeKind,
    Plan,
    PolicyPlan,
)
from syncctl.plan.unicode import printable
from syncctl.plan.values import is_deferred
from syncctl.schemafiles import first_error, load_schema

FORMAT_VERSION = "1"
DOCUMENT_KIND = "syncctl-plan"
DIGEST_KEY = "digest"
DIGEST_PREFIX = "sha256:"
MODIFIED = "the plan file was modified after it was made (digest mismatch); run plan again"


class ModifiedPlanError(PlanFileError):
    """A saved plan whose content does not match its digest (or that has none): refused."""

    exit_code = EXIT_REFUSED


def document_digest(document: dict[str, Any]) -> str:
    """``sha256:<hex>`` of ``document`` without its ``digest`` key, in canonical JSON."""
    body = {k: v for k, v in document.items() if k != DIGEST_KEY}
    # surrogatepass: a tampered file may hold "\ud800" escapes; it must mismatch, not crash.
    data = canonical_json(body).encode("utf-8", "surrogatepass")
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan document without its digest (``dumps_dict`` adds it when writing)."""
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": DOCUMENT_KIND,
        "syncctl_version": plan.syncctl_version,
        "created_at": plan.created_at,
        "policies": [_policy(p) for p in plan.policies],
        "summary": plan.summary,
    }
    if plan.meta:
        document["meta"] = _json_value(plan.meta)
    return document


def dumps(plan: Plan) -> str:
    return dumps_dict(plan_to_dict(plan))


def dumps_dict(document: dict[str, Any]) -> str:
    """Canonical text of a plan document: sorted keys, UTF-8, final newline; the outer levels
    indented by 2, each change (and anything else nested deeper) on one line. The digest is
    computed here, over the content written (any ``digest`` already in ``document`` is
    replaced), so every written plan carries one.

    One line per change keeps big plans reviewable in a diff and fast to write: ``json``
    only uses its C encoder without ``indent``, and a pure-Python pretty print of 400,000
    changes takes half a minute.
    """
    parts: list[str] = []
    _encode({**document, DIGEST_KEY: document_digest(document)}, 0, parts)
    parts.append("\n")
    return "".join(parts)


_ONE_LINE_FROM_DEPTH = 4  # document > policies > policy > changes > change
_one_line = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(", ", ": ")).encode


def _encode(value: Any, depth: int, parts: list[str]) -> None:
    if depth >= _ONE_LINE_FROM_DEPTH or not isinstance(value, dict | list) or not value:
        parts.append(_one_line(value))
        return
    inner = "\n" + "  " * (depth + 1)
    if isinstance(value, dict):
        parts.append("{")
        for index, key in enumerate(sorted(value)):
            parts.append(("," if index else "") + inner + _one_line(str(key)) + ": ")
            _encode(value[key], depth + 1, parts)
        parts.append("\n" + "  " * depth + "}")
    else:
        parts.append("[")
        for index, item in enumerate(value):
            parts.append(("," if index else "") + inner)
            _encode(item, depth + 1, parts)
        parts.append("\n" + "  " * depth + "]")


def loads(text: str) -> dict[str, Any]:
    """Parse, validate and verify a saved plan; PlanFileError names what is wrong and where,
    ModifiedPlanError (exit 3) refuses one whose content does not match its digest. Returns
    the document without ``digest``, as ``plan_to_dict`` makes it."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(
            f"not a syncctl plan: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(document, dict) or document.get("kind") != DOCUMENT_KIND:
        raise PlanFileError('not a syncctl plan: "kind" is not "syncctl-plan"')
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise PlanFileError(
            f"unsupported plan format_version {json.dumps(version)} "
            f'(this syncctl reads "{FORMAT_VERSION}")'
        )
    if DIGEST_KEY not in document:
        # Deleting the digest must not be a way around it.
        raise ModifiedPlanError(MODIFIED.replace("digest mismatch", "no digest"))
    error = first_error(document, "plan")
    if error is not None:
        path, message = error
        where = "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
        raise PlanFileError(f"invalid syncctl plan at {where}: {_short(message)}")
    if document[DIGEST_KEY] != document_digest(document):
        raise ModifiedPlanError(MODIFIED)
    del document[DIGEST_KEY]
    return document


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def plan_schema() -> dict[str, Any]:
    return load_schema("plan")


def _policy(plan: PolicyPlan) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": plan.name,
        "policy_sha256": plan.policy_sha256,
        "tenant": plan.tenant,
        "target": {k: str(v) for k, v in sorted(plan.target.items())},
        "fingerprints": dict(sorted(plan.fingerprints.items())),
        "changes": [_change(c) for c in plan.changes],
        "unmanaged": list(plan.unmanaged),  # addresses: already UTF-8 safe
        "summary": plan.summary,
        "refused": None,
    }
    if plan.refused is not None:
        r = plan.refused
        document["refused"] = {
            "check": r.check,
            "limit": r.limit,
            "planned": r.planned,
            "message": r.message,
        }
    if plan.errors:
        document["errors"] = [{"address": e.address, "message": e.message} for e in plan.errors]
    return document


def _change(change: Change) -> dict[str, Any]:
    common: dict[str, Any] = {
        "address": change.address,
        "kind": change.kind.value,
        "action": change.action.value,
        "reason": change.reason.value,
    }
    if change.kind is ChangeKind.MEMBERSHIP:
        return {**common, "group": change.group, "user": change.user}
    # Users, groups and entra_user (writeback) changes: the same fields, and the same
    # redaction of passwords and other secrets in _attribute.
    return {
        **common,
        "source_id": change.source_id,
        "target_id": change.target_id,
        "version": change.version,
        "attributes": [_attribute(a) for a in change.attributes],
    }


def _attribute(attribute: AttributeChange) -> dict[str, Any]:
    document: dict[str, Any] = {
        "path": attribute.path,
        "before": _shown(attribute.before, attribute.redacted),
        "after": _shown(attribute.after, attribute.redacted),
    }
    if attribute.redacted:
        document["redacted"] = True
    if is_deferred(attribute.after):
        document["known_after_apply"] = True
    return document


def _shown(value: Any, redacted: bool) -> Any:
    if value is None:
        return None
    if is_deferred(value):
        return KNOWN_AFTER_APPLY
    if redacted:
        return REDACTED
    return _json_value(value)


def _json_value(value: Any) -> Any:
    """Plain JSON: anything else (dates, Decimals) becomes its string form."""
    if isinstance(value, str):
        # A target may hold a lone surrogate (a SCIM server's "\ud800"): show it escaped.
        return value if value.isascii() else printable(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {printable(str(k)): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return str(value)
