"""What the framework callbacks share: a run they start or are given, and phases opened and closed
from separate hooks (which cannot use ``with run.phase(...)``)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

from greentrack.errors import GreentrackError

__all__ = ["CallbackRun", "FrameworkCallback", "scalars"]


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite scalar values of a metrics mapping (numbers, 0-d / 1-element tensors)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        try:
            if hasattr(value, "numel"):
                if value.numel() != 1:
                    continue
                value = value.item()
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            continue
        if math.isfinite(number):
            out[str(key)] = number
    return out


class CallbackRun:
    """The run a callback reports to, and its open phases.

    Args:
        name: run name for a run the callback starts (default: the framework's model name).
        run: an already started run to report to (the callback then never stops it).
        track_kwargs: keyword arguments of :func:`greentrack.track` for a run it starts.
    """

    def __init__(self, name: str | None, run: Any | None, track_kwargs: dict[str, Any]) -> None:
        self.name = name
        self.run = run
        self.owned = False
        self.started_by: str | None = None
        self.track_kwargs = track_kwargs
        self._phases: dict[str, contextlib.AbstractContextManager[None]] = {}

    @property
    def active(self) -> bool:
        return self.run is not None and self.run.status == "running"

    def ensure(self, stage: str, default_name: str, params: Mapping[str, Any]) -> None:
        """Start a run for ``stage`` unless one is active (a given run, or ours)."""
        if self.active:
            return
        if self.run is not None and not self.owned:
            return  # the user's run already ended: report nothing rather than start another
        from greentrack.run import Run

        kwargs = dict(self.track_kwargs)
        kwargs["params"] = {**params, **(kwargs.get("params") or {})}
        self.run = Run(self.name or default_name, **kwargs).start()
        self.owned, self.started_by = True, stage

    def finish(self, stage: str, status: str = "finished", error: str | None = None) -> None:
        """Close the phases; stop the run if this callback started it for ``stage``."""
        self.close_all()
        if self.owned and self.active and (stage == self.started_by or status != "finished"):
            self.run.stop(status, error)

    # -- phases ------------------------------------------------------------------------------
    def open(self, name: str) -> None:
        if not self.active or name in self._phases:
            return
        cm = self.run.phase(name)
        cm.__enter__()
        self._phases[name] = cm

    def close(self, name: str) -> None:
        cm = self._phases.pop(name, None)
        if cm is not None:
            cm.__exit__(None, None, None)

    def is_open(self, name: str) -> bool:
        return name in self._phases

    def close_all(self) -> None:
        for name in reversed(list(self._phases)):
            self.close(name)

    # -- metrics and progress ------------------------------------------------------------------
    def log(self, step: int | None, metrics: Mapping[str, Any]) -> None:
        values = scalars(metrics)
        values.pop("step", None)  # the step is the step argument
        if self.active and values:
            try:
                self.run.log(step=step, **values)
            except (GreentrackError, TypeError, ValueError) as e:  # a callback never stops training
                import logging

                logging.getLogger("greentrack").warning("greentrack: metrics not logged: %s", e)

    def progress(self, step: float, total: float | None) -> None:
        if self.active and total and math.isfinite(total) and total > 0:
            self.run.progress(step, total)


class FrameworkCallback:
    """What the framework callbacks show the user: the constructor ``(name=None, *, run=None,
    **track_kwargs)`` and :attr:`run`; their hooks report through :attr:`gt`, a
    :class:`CallbackRun`. Listed before the framework's base class (``class
    GreentrackCallback(FrameworkCallback, TrainerCallback)``), whose ``__init__`` it calls.
    """

    def __init__(self, name: str | None = None, *, run: Any = None, **track_kwargs: Any) -> None:
        super().__init__()
        self.gt = CallbackRun(name, run, track_kwargs)

    @property
    def run(self) -> Any:
        """The run being measured (None until a hook starts one, unless given as ``run=``)."""
        return self.gt.run
