"""The price tag as GitHub-flavoured Markdown (``greentrack report --format markdown``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from greentrack.report.table import (
    assumption_lines,
    cell_text,
    groups_table,
    runs_table,
    summary_sentence,
    table_rows,
)

__all__ = ["render", "render_markdown"]


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    align = align or "l" * len(headers)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The price tag as GitHub-flavoured Markdown."""
    cols, rows = table_rows(report)
    out = [f"# Price tag: {report['title']}", "", summary_sentence(report), ""]
    out.append(
        _md_table(
            ["Item", *cols, "How it was obtained"],
            [[r.label, *(cell_text(r, v) for v in r.values), r.how] for r in rows],
            "l" + "r" * len(cols) + "l",
        )
    )
    if len(report["runs"]) > 1:
        headers, body, align = runs_table(report)
        out += ["", "## Runs", "", _md_table(headers, body, align)]
    if report["groups"]:
        headers, body, align = groups_table(report)
        out += ["", "## Mean ± std over seeds", "", _md_table(headers, body, align)]
    if report.get("assumptions"):
        out += ["", "## Assumptions", ""]
        out += [f"- {_md_escape(text)}" for text in assumption_lines(report)]
    out += ["", "## Method notes", ""]
    out += [f"{i}. {n}" for i, n in enumerate(report["method_notes"], 1)]
    return "\n".join(out) + "\n"


def render(report: Mapping[str, Any], **_options: Any) -> str:
    """The format's entry point (:mod:`greentrack.report.render`): :func:`render_markdown`."""
    return render_markdown(report)
