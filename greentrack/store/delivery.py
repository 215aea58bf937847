"""Delivering a run's checkpoints: write, retry, spool, keep aside what is refused, meet deadlines.

One :class:`Delivery` per run (and rank) holds the whole policy; the tracker only hands it
checkpoints:

* **durable start** (:meth:`Delivery.mark_start`): before ``start()`` returns, one fsync'd spool
  line (``<run>.<rank>.start.jsonl``, the run row as ``running``); the first checkpoint that
  reaches the store removes it; if the process dies first, ``greentrack sync`` writes it.
* **write** (:meth:`Delivery.deliver`): spooled lines of this run first, then the checkpoint,
  then — once per run — other runs' spooled lines. Writes are idempotent.
* **retry**: after a failure, checkpoints go straight to the spool for max(2 s, ``checkpoint_s``)
  (at most 30 s); the next write after that takes everything spooled with it.
* **refused data** (a value the database will never take): kept in ``rejected/`` with a warning
  once per reason, never retried; the energy is written without the user's values when it can.
* **full disk**: the checkpoint stays in memory (merged, bounded); cumulative energy is never lost.
* **deadlines**: a write making no progress for :data:`WRITE_DEADLINE_S` is aborted
  (:meth:`Delivery.watchdog`, on the sampling thread); the final write has ``flush_timeout_s``
  (:meth:`Delivery.flush`), past which the final state is spooled and ``stop()`` returns.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greentrack.config import Config
from greentrack.errors import (
    DatabaseURLError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
)
from greentrack.store.checkpoint import Checkpoint
from greentrack.store.spool import Spool, _private_dirs, to_line
from greentrack.store.writer import StoreWriter

__all__ = ["FLUSH_TIMEOUT_S", "WRITE_DEADLINE_S", "Delivery", "resolve_flush_timeout_s"]

log = logging.getLogger("greentrack")

FLUSH_TIMEOUT_S = 10.0
"""Default deadline of ``stop()``'s final write (``flush_timeout_s``). Units: s."""
WRITE_DEADLINE_S = 60.0
"""A checkpoint write in progress longer than this is aborted by the sampling thread (a store
that stopped answering while the network still acknowledges); it goes to the spool. Units: s."""


def resolve_flush_timeout_s(given: float | None, config: Config) -> float:
    """``flush_timeout_s``: the argument (checked: a one-line error), else the configuration's
    (``GREENTRACK_FLUSH_TIMEOUT_S`` or the config file's ``flush_timeout_s``, checked when
    loaded), else :data:`FLUSH_TIMEOUT_S`."""
    if given is not None:
        from greentrack.config import check_flush_timeout_s

        return check_flush_timeout_s(given, "flush_timeout_s")
    return float(getattr(config, "flush_timeout_s", FLUSH_TIMEOUT_S))


class Delivery:
    """The delivery of one run's checkpoints (see the module docstring).

    Args:
        spool: the store's spool (:meth:`Spool.for_store`).
        checkpoint_s: the run's checkpoint period (the retry delay follows it). Units: s.
        flush_timeout_s: deadline of the final write. Units: s.
        warn: ``warn(source, message)``: a warning on the run (logged once, stored as an event
            with the next checkpoint).
        note: ``note(source, message) -> event row``: a warning recorded on the run whose event
            row goes into the checkpoint being spooled (there is no next checkpoint for it).
    """

    def __init__(
        self,
        spool: Spool,
        *,
        checkpoint_s: float,
        flush_timeout_s: float,
        warn: Callable[[str, str], None],
        note: Callable[[str, str], dict[str, Any]],
    ) -> None:
        self.spool = spool
        self.checkpoint_s = checkpoint_s
        self.flush_timeout_s = flush_timeout_s
        self._warn, self._note = warn, note
        self.writer: StoreWriter | None = None
        self.held: Checkpoint | None = None  # what neither the store nor the disk took yet
        self.abandoned = False  # stop() passed its deadline: the final state is in the spool
        self._io_lock = threading.Lock()
        self._replayed_others = False
        self._retry_after = 0.0
        self._store_warned = False
        self._refused: set[tuple[str, bool]] = set()
        self._spool_failed = False
        self._inflight: Checkpoint | None = None  # the checkpoint being written, if any
        self._inflight_final = False
        self._write_started = 0.0  # monotonic start of the write in progress (0: none)
        self._start_marker: Path | None = None

    def connect(self, url: str) -> None:
        """Use the store at ``url`` (its process-wide connection, opened at the first write)."""
        self.writer = StoreWriter(url, shared=True)

    def after_fork_in_child(self) -> None:
        """In a fork()ed child's copy: never write, never remove the parent's marker."""
        self._io_lock = threading.Lock()
        self.writer = None
        self._start_marker = None

    def close(self) -> None:
        """After the final write (left open when it was abandoned: a write may still hold it)."""
        if self.writer is not None and not self.abandoned:
            self.writer.close()

    # -- durable start ------------------------------------------------------------------------
    def mark_start(self, cp: Checkpoint) -> None:
        """Make the start durable before ``start()`` returns: one fsync'd spool line
        (``<run>.<rank>.start.jsonl``, the run row as ``running``). The first checkpoint that
        reaches the store removes it; if the process dies first, ``greentrack sync`` writes it
        and marks the run ``crashed``. A spool line rather than a transaction: it costs one
        small local write (no database round trip on the caller's thread) and holds when the
        store is down."""
        path = self.spool.dir / f"{cp.run_id}.{cp.rank}.start.jsonl"
        try:
            _private_dirs(self.spool.dir)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                data = (to_line(cp) + "\n").encode()
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "short write")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._start_marker = path
        except OSError as e:  # the first checkpoint still writes the run (at once, in the back)
            with contextlib.suppress(OSError):
                path.unlink()
            self._warn(
                "spool", f"could not record the start in {self.spool.dir} ({e.strerror or e})"
            )

    def _started_durably(self) -> None:
        """The run is in the store: the start marker is no longer needed."""
        if self._start_marker is not None:
            marker, self._start_marker = self._start_marker, None
            with contextlib.suppress(OSError):
                marker.unlink()

    # -- deadlines ----------------------------------------------------------------------------
    def watchdog(self) -> None:
        """On the sampling thread, each tick: a store write that has made no progress for
        :data:`WRITE_DEADLINE_S` (a server that stopped answering while the network still
        acknowledges) is aborted, so the checkpoint goes to the spool and the run retries."""
        started = self._write_started
        if started and time.monotonic() - started > WRITE_DEADLINE_S and self.writer:
            self._write_started = 0.0
            log.warning("greentrack: a store write made no progress for %.0f s", WRITE_DEADLINE_S)
            with contextlib.suppress(Exception):
                self.writer.abort()

    def flush(
        self, cp: Checkpoint, deadline: float, *, thread_init: Callable[[], None] | None = None
    ) -> None:
        """Deliver the final checkpoint by ``deadline`` (monotonic s), else spool it.
        ``thread_init`` runs first on the delivering thread (greentrack blocks signals there)."""
        done = threading.Event()

        def work() -> None:
            if threading.current_thread() is not threading.main_thread() and thread_init:
                thread_init()
            try:
                self.deliver(cp, final=True)
            except Exception:
                log.exception("greentrack: internal error in the final checkpoint")
            finally:
                done.set()

        try:
            threading.Thread(target=work, name="greentrack-flush", daemon=True).start()
        except RuntimeError:  # no new threads (interpreter shutting down): write it here
            work()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            self._abandon(cp)

    def _abandon(self, cp: Checkpoint) -> None:
        """Past the flush deadline: spool the final state (with whatever is still in flight
        or held in memory), warn, and unblock the stuck write."""
        self.abandoned = True
        inflight, held = self._inflight, self.held
        parts = [c for c in (held, inflight) if c is not None]
        if not (inflight is not None and self._inflight_final):  # else it contains cp
            parts.append(cp)
        out = Checkpoint.combine(parts)
        msg = (
            f"the store did not take the final state within flush_timeout_s="
            f"{self.flush_timeout_s:g} s; readings spooled to {self.spool.dir}, run "
            "`greentrack sync` once it answers"
        )
        out.events.append(self._note("store", msg))
        log.warning("greentrack: %s", msg)
        try:
            self.spool.append(out)
        except OSError as e:
            log.warning(
                "greentrack: could not spool the final state either (%s): this run's last "
                "%.0f s are lost",
                e.strerror or e,
                self.checkpoint_s,
            )
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.abort()

    # -- delivery -----------------------------------------------------------------------------
    def deliver(self, cp: Checkpoint, *, final: bool) -> None:
        """Write ``cp`` (with what is spooled or held before it), or spool it; never raises for
        the store's or the disk's failures (they become warnings on the run)."""
        assert self.writer is not None
        with self._io_lock:
            if self.abandoned:  # stop() passed its deadline and spooled the final state
                return
            if self.held is not None:
                cp, self.held = self.held.merge(cp), None
            if not final and time.monotonic() < self._retry_after:
                self._to_spool(cp)
                return
            self._inflight, self._inflight_final = cp, final
            self._write_started = time.monotonic()
            try:
                for path in self.spool.pending(cp.run_id, cp.rank):
                    if path != self._start_marker:  # superseded by cp: removed once written
                        self.spool.replay(self.writer, path)
                refused = self.writer.write(cp)
                self._started_durably()
                if refused is not None:
                    self._keep_refused(cp.split_user_data()[1] or cp, refused, part=True)
                self._retry_after = 0.0
                if not self._replayed_others and not final:
                    self._replayed_others = True  # earlier runs' spooled readings, once
                    for path in self.spool.pending():
                        if not path.name.startswith(cp.run_id):
                            self.spool.replay(self.writer, path)
                if self._store_warned:
                    self._store_warned = False
                    log.warning("greentrack: store reachable again; spooled readings written")
            except StoreRejectedError as e:  # retrying cannot help: kept aside, not spooled
                self._keep_refused(cp, str(e), part=False)
            except Exception as e:  # never into the user's code: spool instead
                if self.abandoned:  # stop() spooled this state already (its deadline passed)
                    return
                if not isinstance(e, (StoreError, DatabaseURLError)):
                    log.exception("greentrack: internal error while writing to the store")
                self._retry_after = time.monotonic() + min(30.0, max(2.0, self.checkpoint_s))
                warn = final or not self._store_warned
                if warn:
                    self._store_warned = True
                    hint = "run `greentrack sync` once it is back" if final else "will retry"
                    kind = "unreachable" if isinstance(e, StoreUnavailableError) else "unusable"
                    msg = (
                        f"store {kind} ({str(e).splitlines()[0]}); readings spooled to "
                        f"{self.spool.dir}, {hint}"
                    )
                    log.warning("greentrack: %s", msg)
                    # in the spooled checkpoint itself: `show` then says the run was spooled
                    cp.events.append(self._note("store", msg))
                self._to_spool(cp)
            finally:
                self._inflight, self._write_started = None, 0.0

    def _keep_refused(self, cp: Checkpoint, reason: str, *, part: bool) -> None:
        """What the database refused goes to the spool's ``rejected/`` folder, with a warning."""
        try:
            where = f"kept in {self.spool.reject(cp, reason)}"
        except OSError as e:
            where = f"and could not be kept ({e.strerror or e})"
        if (reason, part) in self._refused:  # said once per run and reason, kept every time
            return
        self._refused.add((reason, part))
        what = "a checkpoint of this run"
        if part:
            what = "this run's metrics, params and tags; its energy was written"
        self._warn("store", f"{reason}: left out {what}; {where}")

    def _to_spool(self, cp: Checkpoint) -> None:
        try:
            self.spool.append(cp)
            self._spool_failed = False
        except OSError as e:
            if not self._spool_failed:  # once per outage, not once per checkpoint
                self._spool_failed = True
                self._warn(
                    "spool",
                    f"cannot write the spool in {self.spool.dir} ({e.strerror or e}); keeping "
                    "readings in memory until the store or the disk is back",
                )
            cp.samples = cp.samples[-100_000:]  # bounded: cumulative energy is never lost
            self.held = cp if self.held is None else self.held.merge(cp)
