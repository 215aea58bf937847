"""A background worker for integrations that talk to a server (MLflow, W&B).

A listener's ``on_checkpoint`` runs on the checkpoint thread, which also writes to the store: it
must never wait on another service. So the listener only *submits* a task (a closure over the
figures, made in microseconds) to a :class:`Worker`: one daemon thread per run and integration,
a bounded queue (when the other side is slow or down, the oldest pending tasks are dropped, with
one warning; the final task is always kept), every failure a warning on the run (once per kind
of error), and :meth:`Worker.close` waits at most a deadline at stop.

:class:`WorkerListener` is the run listener built on it: it turns each checkpoint (and the stop)
into figures (:mod:`._live`), asks its integration for the task that sends them, and submits it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

from greentrack.integrations._live import FigureTracker, LiveFigures

__all__ = ["Worker", "WorkerListener"]


class Worker:
    """Runs submitted tasks in order on one daemon thread.

    Args:
        name: the integration (``mlflow``), for the thread name and the warnings.
        warn: called with a one-line message (from the worker thread) for each new kind of
            failure, and once if tasks were dropped.
        max_pending: most tasks waiting; beyond it the oldest is dropped.
    """

    def __init__(self, name: str, warn: Callable[[str], None], max_pending: int = 32) -> None:
        self.name = name
        self._warn = warn
        self._tasks: collections.deque[Callable[[], Any]] = collections.deque()
        self._max = max_pending
        self._cond = threading.Condition()
        self._closed = False
        self._dropped = 0
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def submit(self, task: Callable[[], Any]) -> None:
        """Queue ``task`` (never blocks; starts the thread on first use)."""
        with self._cond:
            if self._closed:
                return
            if len(self._tasks) >= self._max:
                self._tasks.popleft()
                self._dropped += 1
            self._tasks.append(task)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"greentrack-{self.name}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        from greentrack.sampler import block_signals

        block_signals()  # signals go to the user's main thread, as for greentrack's own threads
        while True:
            with self._cond:
                while not self._tasks and not self._closed:
                    self._cond.wait()
                if not self._tasks:
                    return
                task = self._tasks.popleft()
                dropped, self._dropped = self._dropped, 0
            if dropped:
                self._once(
                    "dropped",
                    f"{self.name}: the server is slow or down; {dropped} updates dropped "
                    "(the final figures are still sent at stop)",
                )
            try:
                task()
            except Exception as e:  # the other side's failure never reaches the training
                self.failures += 1
                text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
                self._once(type(e).__name__, f"{self.name}: {type(e).__name__}: {text}")

    def _once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            try:
                self._warn(message)
            except Exception:
                pass

    def close(self, timeout_s: float) -> bool:
        """Let the queued tasks finish within ``timeout_s``; True if they all did."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            self._once(
                "deadline",
                f"{self.name}: not done within {timeout_s:g} s at stop; the rest is dropped",
            )
            return False
        return True


class WorkerListener:
    """A run listener whose every call to the other side goes through one :class:`Worker`.

    On the checkpoint thread it only makes the figures and the task that sends them
    (:meth:`checkpoint_task`, :meth:`stop_task`, which a subclass defines); the task runs on the
    worker. The final checkpoint is skipped: :meth:`on_stop` sends the final figures, then waits
    at most :attr:`stop_deadline_s` for the worker.

    Class attributes: ``name`` (``mlflow``: the worker's thread name and the warnings' source)
    and ``stop_deadline_s`` (seconds).
    """

    name = "integration"
    stop_deadline_s = 10.0

    def __init__(self) -> None:
        self._figures = FigureTracker()
        self._worker: Worker | None = None

    def checkpoint_task(self, run: Any, figures: LiveFigures) -> Callable[[], Any]:
        """The task that sends one checkpoint's figures (made on the checkpoint thread)."""
        raise NotImplementedError

    def stop_task(self, run: Any, summary: Any, figures: LiveFigures) -> Callable[[], Any]:
        """The task that sends the final figures (made at stop)."""
        raise NotImplementedError

    def _submit(self, run: Any, task: Callable[[], Any]) -> None:
        if self._worker is None:
            self._worker = Worker(self.name, lambda m: run.warn(m, source=self.name))
        self._worker.submit(task)

    def on_checkpoint(self, run: Any, checkpoint: Any) -> None:
        fields = getattr(checkpoint, "run", None) or {}
        if fields.get("ended_at") is not None:
            return  # the final checkpoint: on_stop sends the final figures
        self._submit(run, self.checkpoint_task(run, self._figures.from_checkpoint(run, checkpoint)))

    def on_stop(self, run: Any, summary: Any) -> None:
        self._submit(run, self.stop_task(run, summary, self._figures.from_summary(run, summary)))
        assert self._worker is not None
        self._worker.close(self.stop_deadline_s)
