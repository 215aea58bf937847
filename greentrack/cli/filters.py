"""What users type on the command line for run filters and run fields, parsed.

``--since`` text is parsed by :func:`greentrack.timefmt.parse_since` (the library takes it too).
"""

from __future__ import annotations

from collections.abc import Iterable

from greentrack.errors import ConfigError

__all__ = ["parse_tags"]


def parse_tags(pairs: Iterable[str]) -> list[tuple[str, str]]:
    """``["k=v", ...]`` -> ``[("k", "v"), ...]`` with a clear error for a missing ``=``."""
    out = []
    for p in pairs:
        if "=" not in p:
            raise ConfigError(f"--tag {p!r} must be KEY=VALUE")
        k, v = p.split("=", 1)
        out.append((k, v))
    return out
