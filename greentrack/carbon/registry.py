"""Every carbon-intensity source greentrack knows, one line each, and the factory that builds one.

``--source NAME`` on the command line, ``provider`` in ``config.toml`` (``GREENTRACK_PROVIDER``)
and :func:`get_source` all read :data:`SOURCES`: names, aliases, whether the source is live
(asks a server; wrapped in a :class:`~greentrack.carbon.base.FallbackSource`), whether it reads
CSV files, and a one-line description. A line names its class as ``"module:Class"``; the module
is imported only when that source is built, so reading the names (``--help``, a typo's "did you
mean") imports nothing else.

Adding a source is one module plus one line here:

1. ``greentrack/carbon/<name>.py``: a subclass of :class:`~greentrack.carbon.base.IntensitySource`
   (a live provider: of :class:`~greentrack.carbon.http.LiveSource`, which gives it the HTTP
   client, retries and cache). How it is built follows from its line: a live source as
   ``cls(config)``, a file source as ``cls(files, **csv_options)``, any other as ``cls()``.
2. A :class:`SourceEntry` in :data:`SOURCES`. Its settings section ``[providers.<name>]`` of
   ``config.toml`` takes the common keys (``url``, ``timeout_s``, ``retries``...); keys of its
   own (a token) go in :data:`greentrack.config.KNOWN_PROVIDER_KEYS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greentrack.errors import ConfigError

if TYPE_CHECKING:
    from greentrack.carbon.base import IntensitySource
    from greentrack.config import Config

__all__ = ["SOURCES", "SourceEntry", "all_names", "get_source", "lookup", "names"]


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One intensity source of :data:`SOURCES`.

    Attributes:
        name: the canonical name (``--source``, ``provider``).
        aliases: other names accepted for it (``em`` for ``electricitymaps``).
        live: it asks a server: built as ``cls(config)`` and, by default, wrapped so that a
            failure falls back to the static source (recorded in provenance and warnings).
        files: it reads the ``--csv`` files: built as ``cls(files, **csv_options)``.
        description: what it is, in one line.
        cls: ``"module:Class"`` of its :class:`~greentrack.carbon.base.IntensitySource`.
    """

    name: str
    aliases: tuple[str, ...]
    live: bool
    files: bool
    description: str
    cls: str

    def load(self) -> type[IntensitySource]:
        """The source's class (imports its module)."""
        module, _, attr = self.cls.partition(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


#: The intensity sources, in the order ``--help`` and error messages list them.
SOURCES: tuple[SourceEntry, ...] = (
    SourceEntry(
        "static", ("codecarbon", "codecarbon-static"), False, False,
        "codecarbon's annual averages per zone, offline (the default)",
        "greentrack.carbon.static:StaticSource",
    ),
    SourceEntry(
        "csv", (), False, True,
        "hourly-or-finer series from CSV files (--csv FILE)",
        "greentrack.carbon.csvsource:CsvSource",
    ),
    SourceEntry(
        "electricitymaps", ("electricity-maps", "em"), True, False,
        "Electricity Maps API v3, average intensity (ELECTRICITYMAPS_TOKEN)",
        "greentrack.carbon.electricitymaps:ElectricityMapsSource",
    ),
    SourceEntry(
        "watttime", (), True, False,
        "WattTime API v3, marginal intensity (WATTTIME_USERNAME / WATTTIME_PASSWORD)",
        "greentrack.carbon.watttime:WattTimeSource",
    ),
    SourceEntry(
        "uk", ("uk-carbon-intensity", "carbonintensity"), True, False,
        "GB Carbon Intensity API, Great Britain only, no key",
        "greentrack.carbon.uk:UKCarbonIntensitySource",
    ),
)  # fmt: skip


def names() -> list[str]:
    """The canonical source names, e.g. ``["static", "csv", "electricitymaps", ...]``."""
    return [e.name for e in SOURCES]


def all_names() -> list[str]:
    """Every accepted name: each source's name, then its aliases."""
    return [n for e in SOURCES for n in (e.name, *e.aliases)]


def lookup(name: str, *, origin: str = "") -> SourceEntry:
    """The source called ``name`` (or one of its aliases; case and surrounding spaces ignored).

    Raises:
        ConfigError: no such source; the message names the closest one and lists them all.
            ``origin`` says where the name came from, e.g. ``" (provider in config.toml)"``.
    """
    key = str(name).strip().lower()
    for e in SOURCES:
        if key == e.name or key in e.aliases:
            return e
    import difflib  # only for the message

    close = difflib.get_close_matches(str(name).lower(), all_names(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(
        f"unknown intensity source {name!r}{origin}{hint}; choose one of: {', '.join(names())}"
    )


def get_source(
    name: str | None,
    config: Config | None = None,
    *,
    csv: Sequence[str | Path] | None = None,
    fallback: bool = True,
    **csv_options: Any,
) -> IntensitySource:
    """The intensity source called ``name``.

    Args:
        name: a name of :data:`SOURCES` (``static``: codecarbon's annual averages, offline;
            ``csv``, ``electricitymaps``, ``watttime``, ``uk``) or an alias; None means ``csv``
            when CSV files are given, else ``config.provider``.
        config: settings (``load_config()`` when None): provider URLs, tokens, cache directory.
        csv: CSV files for the ``csv`` source (see :func:`greentrack.carbon.csvsource.load_csv`).
        fallback: wrap live providers so that a failure falls back to the static source
            (recorded in provenance and warnings). False: provider errors propagate.
        **csv_options: passed to ``load_csv`` (``zone``, ``time_column``, ``max_gap_steps``...).

    Raises:
        ConfigError: unknown name (the configured ``provider`` is checked here too, and the
            message says it came from the configuration), or ``csv`` without files, or files
            with another source.
    """
    if config is None:
        from greentrack.config import load_config

        config = load_config()
    if name is not None or csv:
        raw, origin = (name if name is not None else "csv"), ""
    else:  # the configured provider is checked here, where it is used
        raw, origin = config.provider, " (provider in config.toml, or GREENTRACK_PROVIDER)"
    entry = lookup(raw, origin=origin)
    if csv and not entry.files:
        raise ConfigError(f"CSV files were given with source {raw!r}; drop --source or use csv")
    cls = entry.load()
    if entry.files:
        if not csv:
            raise ConfigError(
                f"the {entry.name} source needs files: pass --csv FILE (several allowed)"
            )
        return cls(list(csv), **csv_options)  # type: ignore[call-arg]
    if not entry.live:
        return cls()
    live = cls(config)  # type: ignore[call-arg]
    if not fallback:
        return live
    from greentrack.carbon.base import FallbackSource
    from greentrack.carbon.static import StaticSource

    return FallbackSource(live, StaticSource())
