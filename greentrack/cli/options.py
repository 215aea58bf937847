"""Option groups shared by several commands: one definition, the same spelling everywhere.

:func:`intensity_options` is the one place where ``--csv``, ``--source`` and the CSV layout
options (``--time-column``, ``--value-column``, ``--tz``, ``--signal``, ``--max-gap``) are
defined. Every command that reads intensity (``intensity``, ``whatif``, ``run``, ``schedule``,
``schedule study``) takes them from here; the command receives them bundled as one
:class:`IntensityInput` keyword argument ``intensity``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from greentrack.carbon import registry as sources

__all__ = ["IntensityInput", "intensity_options"]

CSV_HELP = (
    "CSV file(s) with hourly-or-finer intensity (Electricity Maps export, EIA-930, or any layout "
    "with --time-column/--value-column). Repeat for several files (e.g. one per year)."
)
SOURCE_HELP = (
    f"Intensity source: {' | '.join(sources.names())} (default: csv with --csv, "
    "else the configured provider)."
)
TZ_HELP = "IANA time zone of naive CSV timestamps (e.g. Europe/Madrid) [UTC]."


@dataclass(frozen=True)
class IntensityInput:
    """Where a command's intensity comes from, as given on the command line.

    Attributes:
        csv: CSV files (empty: none given).
        source: source name or None (csv with files, else the configured provider).
        tz: IANA time zone of naive timestamps, or None (UTC).
        time_column, value_column: CSV column names (None: detected from the header).
        signal: Electricity Maps column, ``direct`` or ``lca``.
        max_gap_steps: longest run of missing CSV steps filled by interpolation.
    """

    csv: tuple[str, ...]
    source: str | None
    tz: str | None
    time_column: str | None
    value_column: str | None
    signal: str
    max_gap_steps: int

    @property
    def csv_files(self) -> list[str] | None:
        """The CSV files as a list, or None when none were given."""
        return list(self.csv) or None

    def csv_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`greentrack.carbon.csvsource.load_csv` (``{}`` without
        CSV files, so a command without --csv passes nothing the live sources do not take)."""
        if not self.csv:
            return {}
        opts: dict[str, Any] = {
            "tz": self.tz or "UTC",
            "signal": self.signal,
            "max_gap_steps": self.max_gap_steps,
        }
        if self.time_column:
            opts["time_column"] = self.time_column
        if self.value_column:
            opts["value_column"] = self.value_column
        return opts


def _complete_source(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of ``--source``: the registry's names and aliases."""
    return [n for n in sources.all_names() if n.startswith(incomplete.lower())]


def intensity_options(
    *,
    csv_required: bool = False,
    source: bool = True,
    csv_help: str = CSV_HELP,
    tz_help: str = TZ_HELP,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--csv`` (repeatable), ``--source`` and the CSV layout options to a command.

    The command gets one keyword argument ``intensity`` (:class:`IntensityInput`).

    Args:
        csv_required: ``--csv`` must be given (``schedule study``).
        source: offer ``--source`` (commands that read CSV files only leave it out).
        csv_help, tz_help: the command's wording for ``--csv`` and ``--tz``.
    """
    names = ("csv_files", "source", "tz", "time_column", "value_column", "signal", "max_gap")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            got = {n: kwargs.pop(n, None) for n in names}
            kwargs["intensity"] = IntensityInput(
                csv=tuple(got["csv_files"] or ()),
                source=got["source"],
                tz=got["tz"],
                time_column=got["time_column"],
                value_column=got["value_column"],
                signal=got["signal"] or "direct",
                max_gap_steps=3 if got["max_gap"] is None else int(got["max_gap"]),
            )
            return fn(*args, **kwargs)

        options = [
            click.option(
                "--csv",
                "csv_files",
                multiple=True,
                required=csv_required,
                metavar="FILE",
                type=click.Path(dir_okay=False),
                help=csv_help,
            ),
            *(
                [
                    click.option(
                        "--source",
                        metavar="NAME",
                        help=SOURCE_HELP,
                        shell_complete=_complete_source,
                    )
                ]
                if source
                else []
            ),
            click.option("--tz", metavar="ZONE", help=tz_help),
            click.option("--time-column", metavar="NAME", help="CSV timestamp column."),
            click.option("--value-column", metavar="NAME", help="CSV intensity column, g/kWh."),
            click.option(
                "--signal",
                type=click.Choice(["direct", "lca"]),
                default="direct",
                show_default=True,
                help="Electricity Maps CSV column: direct (combustion) or lca (life cycle).",
            ),
            click.option(
                "--max-gap",
                type=click.IntRange(min=0),
                default=3,
                show_default=True,
                help="Longest run of missing CSV steps to fill by linear interpolation.",
            ),
        ]
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return deco
