"""The registry of report formats: one line per format, one module per format.

Every format of ``greentrack report --format`` is a line in :data:`FORMATS` — its name, the
module that renders it, the suffix of its file and a one-line description — and the CLI reads
its choices from here. Nothing else in greentrack names a format.

**Adding a format** is one new module plus one line here:

1. ``greentrack/report/<name>.py`` defines ``render(report, **options) -> str``. ``report`` is
   the ``greentrack.report/1`` object of :func:`greentrack.report.pricetag.build_report`;
   ``options`` are always ``output`` (the :class:`~pathlib.Path` the text will be written to,
   or None for standard output), ``standalone`` (bool), ``db_url`` (the store's URL, for
   formats that read more, e.g. figures) and ``plots`` (bool); take the ones you use as
   keyword arguments and end with ``**_options: Any`` so new options never break a format.
   Reuse :mod:`greentrack.report.model` (names, constants, per-run figures) and, for a table,
   :mod:`greentrack.report.table`; never import another format module.
   Optionally it defines ``companions(output: Path) -> list[tuple[Path, str]]``: further files
   written beside ``output`` (LaTeX: its BibTeX).
2. Add ``ReportFormat("<name>", "greentrack.report.<name>", ".<suffix>", "<description>")``
   to :data:`FORMATS`.

The module is imported only when its format is rendered, so importing this registry (the CLI
does, for its choices) costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from greentrack.errors import ConfigError

__all__ = ["FORMATS", "ReportFormat", "companions", "get_format", "names", "render"]


@dataclass(frozen=True)
class ReportFormat:
    """One report format: ``name`` (``--format NAME``), ``module`` (the dotted path of the
    module whose ``render`` prints it), ``suffix`` (of its file, with the dot) and
    ``description`` (one line, for help texts)."""

    name: str
    module: str
    suffix: str
    description: str

    def load(self) -> ModuleType:
        """The format's module (imported on first use)."""
        return importlib.import_module(self.module)


FORMATS: dict[str, ReportFormat] = {
    f.name: f
    for f in (
        ReportFormat("markdown", "greentrack.report.markdown", ".md", "GitHub-flavoured Markdown"),
        ReportFormat("latex", "greentrack.report.latex", ".tex", "booktabs table, BibTeX beside"),
        ReportFormat("html", "greentrack.report.html", ".html", "self-contained page, figures"),
        ReportFormat("json", "greentrack.report.json", ".json", "the greentrack.report/1 object"),
        ReportFormat("csv", "greentrack.report.csv", ".csv", "one row per run, then totals"),
        ReportFormat("boamps", "greentrack.report.boamps", ".json", "Boavizta's BoAmps JSON"),
    )
}
"""Every report format, by name, in the order the CLI lists them."""


def names() -> list[str]:
    """The format names, in registry order (the choices of ``greentrack report --format``)."""
    return list(FORMATS)


def get_format(name: str) -> ReportFormat:
    """The registered format ``name``.

    Raises:
        ConfigError: no format of that name.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(
            f"unknown report format {name!r}; choose one of {', '.join(FORMATS)}"
        ) from None


def render(report: Mapping[str, Any], fmt: str, **options: Any) -> str:
    """``report`` in the format ``fmt`` (options as in the module docstring)."""
    return get_format(fmt).load().render(report, **options)


def companions(fmt: str, output: Path) -> list[tuple[Path, str]]:
    """The further files (path, text) the format ``fmt`` writes beside ``output``; [] for most."""
    module = get_format(fmt).load()
    make = getattr(module, "companions", None)
    return list(make(output)) if make is not None else []
