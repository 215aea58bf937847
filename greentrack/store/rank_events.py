"""The event each rank of a shared distributed run writes when it joins: its source and text.

:func:`greentrack.distributed.joined_event` writes it; the run object's ``processes`` are read
back from it (:mod:`greentrack.store.queries`). Both sides use this one definition, so the
store reads what the tracker wrote without importing the layer above it.
"""

from __future__ import annotations

import re

__all__ = ["JOINED_SOURCE", "joined_message", "parse_joined"]

JOINED_SOURCE = "rank"
"""``events.source`` of the event each rank of a shared distributed run writes when it joins."""

_JOINED = re.compile(r"rank (\d+) on (\S+) joined(?:; (.*))?", re.S)


def joined_message(rank: int, host: str, note: str | None) -> str:
    """``rank 1 on node-a joined[; <note>]``: the text :func:`parse_joined` reads back."""
    return f"rank {rank} on {host} joined" + (f"; {note}" if note else "")


def parse_joined(message: str) -> tuple[int, str, str | None] | None:
    """(rank, host, note) of a :func:`joined_message`, or None for another message."""
    m = _JOINED.fullmatch(message.strip())
    if m is None:
        return None
    return int(m.group(1)), m.group(2), m.group(3) or None
