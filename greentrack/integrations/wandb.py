"""Weights & Biases: a run's energy and CO2e into the active ``wandb.run``.

``pip install 'greentrack[wandb]'``. Enabled when a W&B run is active (``wandb.init()`` before
``gt.track``), or with ``track(wandb=run)``; ``track(wandb=False)`` turns it off.

The same keys as the MLflow integration (``greentrack/energy_kwh``, ``greentrack/co2e_g``,
``greentrack/energy_kwh/<device>``, ``greentrack/power_w/<device>``), plus ``greentrack/t_s``
(seconds since the run's start), defined as their x-axis (``define_metric``). Where they go:

* the history, with ``commit=False``: they join *your* current step and never advance W&B's step
  counter, so your own ``wandb.log(..., step=...)`` calls are never refused as out of order and
  your steps stay yours. (Rows of greentrack's own would break both: W&B's step must increase,
  so each would move the counter past your next ``step=``, and that log would be dropped; without
  ``step=`` your steps would be renumbered.) A history row holds one value per key, so between
  two of your steps it keeps the latest checkpoint's values: cumulative energy and CO2e, exact at
  that row's ``greentrack/t_s``; ``power_w`` there is the mean over that checkpoint's interval.
  Without ``step=``, what comes after your last log (the final figures) makes one row more,
  written by ``wandb.finish()``.
* every checkpoint, the final one included, in the run file :data:`SERIES_FILE`
  (``greentrack/checkpoints.jsonl``: one JSON object a line, the same keys plus
  ``greentrack/run_id``), saved with ``policy="end"``: uploaded once, whole, when the W&B run
  ends (``wandb sync`` for an offline run);
* at stop, the run's summary.

Every call is made from a worker thread (:mod:`._worker`); a failure is a warning on the run. At
stop greentrack waits at most :data:`STOP_DEADLINE_S`.
"""

from __future__ import annotations

import collections
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from greentrack.errors import ConfigError
from greentrack.integrations._live import LiveFigures, metric_values
from greentrack.integrations._worker import WorkerListener
from greentrack.jsonout import dumps

__all__ = ["MAX_PENDING_ROWS", "SERIES_FILE", "STOP_DEADLINE_S", "WandbListener", "listener"]

STOP_DEADLINE_S = 10.0
"""Longest wait at stop for the last values to be handed to wandb. Units: s."""

SERIES_FILE = "greentrack/checkpoints.jsonl"
"""Every checkpoint's figures, one JSON object a line, in the W&B run's files (its ``dir``)."""

MAX_PENDING_ROWS = 10_000
"""Most checkpoints waiting for the worker (about 28 h at ``checkpoint_s=10`` with W&B stuck);
beyond it the oldest is left out of :data:`SERIES_FILE`, with one warning."""


class WandbListener(WorkerListener):
    """Logs one greentrack run into one W&B run (a run listener; calls on a worker thread).

    Args:
        wandb_run: the ``wandb`` run object (``wandb.run``).
    """

    name = "wandb"
    stop_deadline_s = STOP_DEADLINE_S

    def __init__(self, wandb_run: Any) -> None:
        super().__init__()
        self.wandb_run = wandb_run
        self._defined = False
        self._rows: collections.deque[dict[str, Any]] = collections.deque()
        self._lost = 0
        self._series: Path | None = None

    # -- on the worker thread --------------------------------------------------------------------
    def _series_file(self) -> Path | None:
        """``<run dir>/greentrack/checkpoints.jsonl``, saved for upload at the run's end on first
        use (None for an object without a ``dir``: not a wandb run)."""
        if self._series is None:
            folder = getattr(self.wandb_run, "dir", None)
            if not isinstance(folder, str | os.PathLike):
                return None
            path = Path(folder) / SERIES_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            save = getattr(self.wandb_run, "save", None)
            if callable(save):
                save(str(path), base_path=str(folder), policy="end")  # once, whole
            self._series = path
        return self._series

    def _flush(self) -> None:
        """Every row made since the last flush into the series file; the latest into the history
        (``commit=False``: it joins the user's current step)."""
        rows = []
        while True:
            try:
                rows.append(self._rows.popleft())
            except IndexError:  # all taken (or the last one dropped as too old meanwhile)
                break
        if not rows:
            return
        latest = {k: v for k, v in rows[-1].items() if k != "greentrack/run_id"}
        try:
            path = self._series_file()
            if path is not None:
                with path.open("a", encoding="utf-8") as out:
                    out.write("".join(dumps(row) + "\n" for row in rows))
        finally:  # the history gets its row even when the file cannot be written
            if not self._defined:
                self.wandb_run.define_metric("greentrack/t_s")
                self.wandb_run.define_metric("greentrack/*", step_metric="greentrack/t_s")
                self._defined = True
            self.wandb_run.log(latest, commit=False)

    def _final(self, row: dict[str, Any]) -> None:
        self._flush()  # the final row too, unless a flush already queued took it
        for key, value in row.items():
            if key != "greentrack/run_id":
                self.wandb_run.summary[key] = value

    # -- the listener (on the checkpoint thread): the tasks --------------------------------------
    def _row(self, run: Any, figures: LiveFigures) -> dict[str, Any]:
        if len(self._rows) >= MAX_PENDING_ROWS:
            self._rows.popleft()
            self._lost += 1
            if self._lost == 1:
                run.warn(
                    f"wandb: W&B is not keeping up; checkpoints beyond {MAX_PENDING_ROWS} pending "
                    f"are left out of {SERIES_FILE} (the store has them all)",
                    source="wandb",
                )
        row = {
            "greentrack/run_id": figures.run_id,
            "greentrack/t_s": figures.duration_s,
            **metric_values(figures),
        }
        self._rows.append(row)
        return row

    def checkpoint_task(self, run: Any, figures: LiveFigures) -> Callable[[], Any]:
        self._row(run, figures)
        return self._flush

    def stop_task(self, run: Any, summary: Any, figures: LiveFigures) -> Callable[[], Any]:
        row = self._row(run, figures)
        return lambda: self._final(row)


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
