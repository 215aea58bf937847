"""TensorBoard: a run's energy, power and CO2e as scalars.

``pip install 'greentrack[tensorboard]'`` (or use the ``SummaryWriter`` you already have)::

    gt.track("train", tensorboard=writer)        # torch.utils.tensorboard / tensorboardX writer
    gt.track("train", tensorboard="runs/exp1")   # a log dir: greentrack writes its own event file

Scalars (the same keys as the MLflow integration), at every checkpoint and at stop, with
``step`` = milliseconds since the run's start and the checkpoint's wall time:
``greentrack/energy_kwh``, ``greentrack/co2e_g`` (live estimate, then the accounted figure at
stop: :mod:`greentrack.integrations._live`), ``greentrack/energy_kwh/<device>`` and
``greentrack/power_w/<device>``. The writes happen on a worker thread (:mod:`._worker`), never on
the training or checkpoint thread; a failing writer is a warning on the run. A given writer is
flushed at stop, not closed (it is yours); a log dir's writer is closed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from greentrack.errors import ConfigError
from greentrack.integrations._live import LiveFigures, metric_values
from greentrack.integrations._worker import WorkerListener

__all__ = ["STOP_DEADLINE_S", "TensorBoardListener", "listener"]

STOP_DEADLINE_S = 10.0
"""Longest wait at stop for the last scalars to be written. Units: s."""


class _EventFile:
    """A minimal writer of scalar events into ``logdir`` (tensorboard's own event-file writer;
    no torch needed)."""

    def __init__(self, logdir: str) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._writer = EventFileWriter(logdir)

    def add_scalar(self, tag: str, value: float, global_step: int, walltime: float) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self._writer.add_event(Event(wall_time=walltime, step=global_step, summary=summary))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class TensorBoardListener(WorkerListener):
    """Writes one run's figures as TensorBoard scalars (a run listener; writes on a worker thread).

    Args:
        writer: an object with ``add_scalar(tag, value, global_step, walltime)`` (a
            ``SummaryWriter``), or None with ``logdir``.
        logdir: a log directory greentrack writes its own event file into.
    """

    name = "tensorboard"
    stop_deadline_s = STOP_DEADLINE_S

    def __init__(self, writer: Any = None, logdir: str | None = None) -> None:
        super().__init__()
        self._given = writer
        self._logdir = logdir
        self._writer: Any = writer

    # -- on the worker thread --------------------------------------------------------------------
    def _write(self, values: dict[str, float], step: int, wall: float) -> None:
        if self._writer is None:
            assert self._logdir is not None
            self._writer = _EventFile(self._logdir)
        for tag, value in values.items():
            self._writer.add_scalar(tag, value, global_step=step, walltime=wall)

    def _finish(self, values: dict[str, float], step: int, wall: float) -> None:
        self._write(values, step, wall)
        if self._given is None:
            self._writer.close()
        elif hasattr(self._writer, "flush"):
            self._writer.flush()

    # -- the listener (on the checkpoint thread): the tasks --------------------------------------
    def checkpoint_task(self, run: Any, figures: LiveFigures) -> Callable[[], None]:
        values, step, wall = metric_values(figures), int(figures.duration_s * 1000), time.time()
        return lambda: self._write(values, step, wall)

    def stop_task(self, run: Any, summary: Any, figures: LiveFigures) -> Callable[[], None]:
        values, step, wall = metric_values(figures), int(figures.duration_s * 1000), time.time()
        return lambda: self._finish(values, step, wall)


def listener(run: Any, options: Mapping[str, Any]) -> TensorBoardListener | None:
    """The registry's factory for ``track(tensorboard=<SummaryWriter | log dir>)``."""
    target = options.get("tensorboard")
    if target is None or target is False:
        return None
    if isinstance(target, str | os.PathLike):
        try:
            import tensorboard  # noqa: F401
        except ImportError as e:
            raise ConfigError(
                f"tensorboard={str(target)!r} needs tensorboard ({e}): "
                "pip install 'greentrack[tensorboard]'"
            ) from None
        return TensorBoardListener(logdir=os.fspath(target))
    if not callable(getattr(target, "add_scalar", None)):
        raise ConfigError(
            f"tensorboard={type(target).__name__}: give a SummaryWriter (anything with "
            "add_scalar) or a log directory"
        )
    return TensorBoardListener(writer=target)
