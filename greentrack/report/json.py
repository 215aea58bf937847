"""The report as JSON (``greentrack report --format json``): the ``greentrack.report/1`` schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render", "render_json"]


def render_json(report: Mapping[str, Any]) -> str:
    """The report as JSON (schema ``greentrack.report/1``, see the README)."""
    from greentrack.jsonout import dumps

    return dumps(report, indent=2, ensure_ascii=False) + "\n"


def render(report: Mapping[str, Any], **_options: Any) -> str:
    """The format's entry point (:mod:`greentrack.report.render`): :func:`render_json`."""
    return render_json(report)
