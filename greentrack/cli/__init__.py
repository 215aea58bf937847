"""greentrack's command line. ``main`` is the console script; each module adds its commands."""

from greentrack.cli.app import main

# Each module registers its commands on ``main`` when imported.
from greentrack.cli import runs as _runs  # noqa: E402,F401
from greentrack.cli import carbon as _carbon  # noqa: E402,F401
from greentrack.cli import schedule as _schedule  # noqa: E402,F401
from greentrack.cli import report as _report  # noqa: E402,F401
from greentrack.cli import bench as _bench  # noqa: E402,F401

__all__ = ["main"]
