"""greentrack: energy and carbon accounting for machine-learning runs.

Public API (imported lazily so that ``import greentrack`` stays cheap)::

    track, Run, RunSummary, ComponentEnergy, PhaseSummary   measuring
    current_run, active_runs                                the run of this context; all runs
    plan, study                                             carbon-aware scheduling
    runs_frame, samples_frame                               pandas access
    count_flops                                             FLOPs of a model call
    errors                                                  the exception tree
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from greentrack import errors
from greentrack.errors import GreentrackError

__version__ = "0.1.0"

_LAZY = {
    "track": "greentrack.tracker",
    "Run": "greentrack.run",
    "RunSummary": "greentrack.summary",
    "ComponentEnergy": "greentrack.summary",
    "PhaseSummary": "greentrack.summary",
    "current_run": "greentrack.lifecycle",
    "active_runs": "greentrack.lifecycle",
    "plan": "greentrack.scheduling.planner",
    "study": "greentrack.scheduling.study",
    "runs_frame": "greentrack.report.frames",
    "samples_frame": "greentrack.report.frames",
    "count_flops": "greentrack.workloads.flops",
}

__all__ = ["GreentrackError", "errors", *sorted(_LAZY)]

if TYPE_CHECKING:
    from greentrack.lifecycle import active_runs, current_run  # noqa: F401
    from greentrack.run import Run  # noqa: F401
    from greentrack.summary import ComponentEnergy, PhaseSummary, RunSummary  # noqa: F401
    from greentrack.tracker import track  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greentrack' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext greentrack``: registers the ``%%greentrack`` cell magic."""
    from greentrack.integrations.notebook import load_ipython_extension as load

    load(ipython)
