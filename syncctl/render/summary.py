"""The per-policy summary that ends a run of several policies: text and markdown tables of
the rows ``syncctl.outcomes.summary_row`` builds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ERROR_WIDTH = 100
HEADERS = ("policy", "outcome", "changes", "errors", "error")


# Summary keys whose spelling with spaces would not say what they count.
LABELS = {"entra_update": "Entra update", "entra_report": "Entra difference reported"}


def counts_text(counts: Mapping[str, int]) -> str:
    return (
        ", ".join(
            f"{n} {LABELS.get(key, key.replace('_', ' '))}" for key, n in sorted(counts.items())
        )
        or "-"
    )


def _cells(row: Mapping[str, Any]) -> tuple[str, ...]:
    error = str(row["error"] or "")
    if len(error) > ERROR_WIDTH:
        error = error[: ERROR_WIDTH - 1] + "…"
    return (
        str(row["policy"]),
        str(row["outcome"]),
        counts_text(row["counts"]),
        str(row["errors"]),
        error or "-",
    )


def text(rows: Sequence[Mapping[str, Any]]) -> str:
    """An aligned plain-text table, one line per policy."""
    table = [HEADERS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    return "\n".join(["Summary:", *lines]) + "\n"


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A GitHub-flavoured markdown table (pipes escaped)."""

    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join("---" for _ in HEADERS) + " |",
        *("| " + " | ".join(cell(c) for c in _cells(r)) + " |" for r in rows),
    ]
    return "\n".join(["### Summary", "", *lines]) + "\n"
