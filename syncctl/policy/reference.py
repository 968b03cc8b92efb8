"""Render the key reference of docs/policy.md from the JSON Schema, so the two cannot drift.

``python -m syncctl.policy.reference docs/policy.md`` rewrites the generated block in place;
a test fails when the file and the schema disagree.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from syncctl.policy.schema import policy_schema

BEGIN = (
    "<!-- BEGIN GENERATED: key reference (python -m syncctl.policy.reference docs/policy.md) -->"
)
END = "<!-- END GENERATED: key reference -->"

_SECTIONS = ("version", "name", "tenant", "source", "target", "mappings", "state", "deletion")
_SPECIAL_TYPES = {
    "secret": "secret: `{env: NAME}` or `{file: PATH}`",
    "threshold": 'count (`20`) or percentage (`"5%"`)',
    "path": "path",
    "https_url": "URL",
    "guid": "GUID",
    "expression": "expression",
    "mapping": "expression or `{value, default, apply}`",
    "group_ref": "group name or object id",
}


def render_reference() -> str:
    schema = policy_schema()
    lines = [BEGIN, ""]
    top = schema["properties"]
    for name in (*_SECTIONS, "writeback"):
        lines += _section(schema, name, top[name])
    lines.append(END)
    return "\n".join(lines) + "\n"


def _section(schema: dict[str, Any], name: str, node: dict[str, Any]) -> list[str]:
    resolved = _resolve(schema, node)
    title = resolved.get("title", name)
    lines = [f"### `{name}` — {title}", ""]
    if "description" in resolved:
        lines += [_one_line(resolved["description"]), ""]
    rows = list(_rows(schema, name, node, required=True))[1:]  # the section row is the header
    if rows:
        lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        lines += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in rows]
        lines.append("")
    return lines


def _rows(
    schema: dict[str, Any], key: str, node: dict[str, Any], *, required: bool
) -> Iterator[tuple[str, str, str, str]]:
    resolved = _resolve(schema, node)
    if _ref_name(node) in _SPECIAL_TYPES:
        # The shared definition's long description belongs in the rules, not on every row.
        text = _one_line(node.get("description") or node.get("title", ""))
    else:
        text = _one_line(resolved.get("description") or resolved.get("title", ""))
    if not required:
        text = f"optional. {text}".rstrip(" .") + ("." if text else "")
    else:
        text = f"**required.** {text}".rstrip()
    yield key, _type(node, resolved), _default(node, resolved), _escape(text)
    if _ref_name(node) in _SPECIAL_TYPES:
        return
    needed = set(resolved.get("required", ()))
    for child, child_node in resolved.get("properties", {}).items():
        yield from _rows(schema, f"{key}.{child}", child_node, required=child in needed)
    for branch in resolved.get("allOf", ()):
        condition = branch["if"]["properties"]["type"]["const"]
        then = branch["then"]
        branch_needed = set(then.get("required", ()))
        for child, child_node in then.get("properties", {}).items():
            if child_node is True:
                continue
            for row_key, kind, default, row_text in _rows(
                schema, f"{key}.{child}", child_node, required=child in branch_needed
            ):
                yield row_key, kind, default, f"({condition}) {row_text}"
    extra = resolved.get("additionalProperties")
    if isinstance(extra, dict):
        yield from (
            (f"{key}.<name>", kind, default, text)
            for _, kind, default, text in _rows(schema, key, extra, required=False)
        )
    items, prefix = resolved.get("items"), f"{key}[]"
    while isinstance(items, dict) and isinstance(items.get("items"), dict):  # lists of lists
        items, prefix = items["items"], f"{prefix}[]"
    if isinstance(items, dict):
        item = _resolve(schema, items)
        needed_items = set(item.get("required", ()))
        for child, child_node in item.get("properties", {}).items():
            yield from _rows(
                schema, f"{prefix}.{child}", child_node, required=child in needed_items
            )


def _ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    name = _ref_name(node)
    if name is None:
        return node
    merged = dict(schema["$defs"][name])
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _type(node: dict[str, Any], resolved: dict[str, Any]) -> str:
    name = _ref_name(node)
    if name in _SPECIAL_TYPES:
        return _SPECIAL_TYPES[name]
    if "const" in resolved:
        return f"`{json.dumps(resolved['const'])}`"
    if "enum" in resolved:
        return " \\| ".join(f"`{choice}`" for choice in resolved["enum"])
    kinds = resolved.get("type", "any")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if "array" in kinds and isinstance(resolved.get("items"), dict):
        item = resolved["items"]
        inner = _type(item, _resolve(policy_schema(), item))
        kinds = [f"list of ({inner})" if k == "array" else k for k in kinds]
    names = {"object": "mapping", "boolean": "bool", "integer": "int", "null": "null"}
    return " or ".join(names.get(k, k) for k in kinds)


def _default(node: dict[str, Any], resolved: dict[str, Any]) -> str:
    default = node.get("default", resolved.get("default"))
    return "" if default is None else f"`{json.dumps(default)}`"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def update_file(path: Path) -> bool:
    """Rewrite the generated block of ``path``; True if it changed."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    updated = text[:start] + render_reference() + text[end:]
    if updated == text:
        return False
    path.write_text(updated, encoding="utf-8")
    return True


def generated_block(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    return text[start:end]


if __name__ == "__main__":  # pragma: no cover - developer tool
    changed = update_file(Path(sys.argv[1]))
    sys.stdout.write("updated\n" if changed else "up to date\n")
