"""greentrack's command line. ``main`` is the console script; each module adds its commands."""

from greentrack.cli import bench as _bench  # noqa: F401
from greentrack.cli import carbon as _carbon  # noqa: F401
from greentrack.cli import integrations as _integrations  # noqa: F401
from greentrack.cli import report as _report  # noqa: F401

# Each module registers its commands on ``main`` when imported.
from greentrack.cli import runs as _runs  # noqa: F401
from greentrack.cli import schedule as _schedule  # noqa: F401
from greentrack.cli.app import main

__all__ = ["main"]
