"""Weights & Biases: a run's energy and CO2e into the active ``wandb.run``.

``pip install 'greentrack[wandb]'``. Enabled when a W&B run is active (``wandb.init()`` before
``gt.track``), or with ``track(wandb=run)``; ``track(wandb=False)`` turns it off.

The same keys as the MLflow integration (``greentrack/energy_kwh``, ``greentrack/co2e_g``,
``greentrack/energy_kwh/<device>``, ``greentrack/power_w/<device>``), plus ``greentrack/t_s``
(seconds since the run's start), defined as their x-axis (``define_metric``). They go into the
history with ``commit=False``: they join *your* next logged step and never advance W&B's step
counter, so your own ``wandb.log(..., step=...)`` calls are never refused as out of order (the
price: between two of your steps only the latest checkpoint's values are kept). At stop they
also go into the run's summary. Every call is made from a worker thread (:mod:`._worker`); a
failure is a warning on the run. At stop greentrack waits at most :data:`STOP_DEADLINE_S`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from greentrack.errors import ConfigError
from greentrack.integrations._live import FigureTracker, metric_values
from greentrack.integrations._worker import Worker

__all__ = ["STOP_DEADLINE_S", "WandbListener", "listener"]

STOP_DEADLINE_S = 10.0
"""Longest wait at stop for the last values to be handed to wandb. Units: s."""


class WandbListener:
    """Logs one greentrack run into one W&B run (a run listener).

    Args:
        wandb_run: the ``wandb`` run object (``wandb.run``).
    """

    def __init__(self, wandb_run: Any) -> None:
        self.wandb_run = wandb_run
        self._figures = FigureTracker()
        self._worker: Worker | None = None
        self._defined = False

    def _log(self, values: dict[str, float], t_s: float) -> None:
        if not self._defined:
            self.wandb_run.define_metric("greentrack/t_s")
            self.wandb_run.define_metric("greentrack/*", step_metric="greentrack/t_s")
            self._defined = True
        self.wandb_run.log({**values, "greentrack/t_s": t_s}, commit=False)

    def _final(self, values: dict[str, float], t_s: float) -> None:
        self._log(values, t_s)
        for key, value in {**values, "greentrack/t_s": t_s}.items():
            self.wandb_run.summary[key] = value

    def _submit(self, run: Any, task: Any) -> None:
        if self._worker is None:
            self._worker = Worker("wandb", lambda m: run.warn(m, source="wandb"))
        self._worker.submit(task)

    def on_checkpoint(self, run: Any, checkpoint: Any) -> None:
        fields = getattr(checkpoint, "run", None) or {}
        if fields.get("ended_at") is not None:
            return  # the final checkpoint: on_stop logs the final figures
        f = self._figures.from_checkpoint(run, checkpoint)
        values, t_s = metric_values(f), f.duration_s
        self._submit(run, lambda: self._log(values, t_s))

    def on_stop(self, run: Any, summary: Any) -> None:
        f = self._figures.from_summary(run, summary)
        values, t_s = metric_values(f), f.duration_s
        self._submit(run, lambda: self._final(values, t_s))
        assert self._worker is not None
        self._worker.close(STOP_DEADLINE_S)


def listener(run: Any, options: Mapping[str, Any]) -> WandbListener | None:
    """The registry's factory: the active ``wandb.run`` (looked for only when the program
    imported wandb itself), or the run given as ``track(wandb=run)``; None otherwise."""
    given = options.get("wandb")
    if given is False:
        return None
    if given is not None and given is not True:
        if not callable(getattr(given, "log", None)):
            raise ConfigError(f"wandb={type(given).__name__}: give a wandb run (wandb.init())")
        return WandbListener(given)
    module = sys.modules.get("wandb")
    active = getattr(module, "run", None) if module is not None else None
    if active is None:
        if given is True:
            raise ConfigError("wandb=True needs an active W&B run: call wandb.init() first")
        return None
    return WandbListener(active)
