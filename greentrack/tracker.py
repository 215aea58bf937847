"""``track``: measure a block of code, a function or a whole program, and keep the run.

::

    @gt.track                                   # bare decorator
    @gt.track(project="cifar", params={...})    # configured decorator (sync, async, methods)
    with gt.track("finetune", project="cifar") as run: ...
    run = gt.track("x").start(); ...; run.stop()

Lifecycle: ``running`` → ``finished`` | ``failed`` (the exception text is recorded and the
exception re-raised unchanged) | ``interrupted`` (KeyboardInterrupt, SIGTERM) | ``crashed`` (the
process died; detected afterwards from a stale heartbeat or a dead pid).

The training thread only does cheap work: phase boundaries read the meters (a few file reads or
NVML calls); metrics go to an in-memory list. The sampler thread does the rest: sampling, and
checkpoints to the store every ``checkpoint_s`` (default 10 s). When the store is unreachable,
checkpoints are spooled to ``$GREENTRACK_HOME/spool`` and written later (next start, ``greentrack
sync``). Meter failures become warnings recorded on the run; they never reach the training loop.

Guarantees (``tests/test_attack_lifecycle.py``): the start is durable before ``start()`` returns
(an fsync'd spool line); checkpoints run on a deadline schedule with a fresh reading; ``stop()``
has one deadline (``flush_timeout_s``), past which the final state is spooled; signals arriving
while a run is finalised are deferred; a fork()ed child's copy of a run is inert; phases nest per
context (thread, asyncio task).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import errno
import functools
import json
import logging
import operator
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, overload

from greentrack import hardware
from greentrack.config import (
    Config,
    check_checkpoint_s,
    check_cpu_share,
    check_interval_s,
    load_config,
)
from greentrack.distributed import (
    Placement,
    event_id,
    joined_event,
    open_placement_meters,
    place,
)
from greentrack.errors import (
    ConfigError,
    DatabaseURLError,
    GreentrackError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
)
from greentrack.meters.base import DeviceReading, Meter
from greentrack.sampler import Sampler, block_signals
from greentrack.security import (
    Masker,
    check_run_id,
    provider_secrets,
    storable,
    storable_tree,
    unstorable,
)
from greentrack.store import writer as _writer_mod
from greentrack.store.dbapi import parse_url
from greentrack.store.writer import Checkpoint, Spool, StoreWriter, _private_dirs
from greentrack.units import J_PER_KWH, format_co2e, format_energy, format_sig

__all__ = [
    "ComponentEnergy",
    "PhaseSummary",
    "Run",
    "RunSummary",
    "active_runs",
    "current_run",
    "track",
]

log = logging.getLogger("greentrack")
F = TypeVar("F", bound=Callable[..., Any])
_ACTIVE: list[Run] = []
_ACTIVE_LOCK = threading.Lock()
_LOGGED: set[str] = set()  # warnings already printed by this process


def _utc(ts: float) -> datetime:
    """Epoch seconds -> naive UTC datetime (the store's convention)."""
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class ComponentEnergy:
    """Energy of one device. Units: joules (device energy, before PUE)."""

    component: str
    device: str
    energy_j: float
    method: str
    rank: int = 0
    host: str | None = None


@dataclass(frozen=True)
class PhaseSummary:
    """Totals of one phase path (``epoch``, ``epoch/eval``) over its ``count`` occurrences."""

    name: str
    duration_s: float
    energy_j: float
    count: int = 1
    components: dict[str, float] = field(default_factory=dict)
    co2e_g: float | None = None


@dataclass(frozen=True)
class RunSummary:
    """What a run cost. Energies in joules (device energy; ``facility_energy_j`` includes PUE)."""

    id: str
    project: str
    name: str
    status: str
    duration_s: float
    energy_j: float
    pue: float
    components: list[ComponentEnergy]
    phases: list[PhaseSummary]
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    region: str | None = None
    co2e_g: float | None = None
    co2e_g_annual: float | None = None
    intensity_source: dict[str, Any] | None = None
    flops: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    @property
    def facility_energy_j(self) -> float:
        return self.energy_j * self.pue

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["energy_kwh"] = self.energy_kwh
        return d

    def __str__(self) -> str:
        lines = [
            f"run {self.id[:8]} {self.project}/{self.name}: {self.status}, {self.duration_s:.1f} s",
            f"  energy {format_energy(self.energy_j)} = {format_sig(self.energy_kwh)} kWh (device)"
            + (f", x PUE {self.pue:g}" if self.pue != 1.0 else ""),
        ]
        for c in self.components:
            lines.append(f"    {c.device:<20} {format_energy(c.energy_j):>12}  [{c.method}]")
        if self.co2e_g is not None and self.intensity_source:
            src = self.intensity_source
            lines.append(
                f"  CO2e {format_co2e(self.co2e_g)} ({src.get('name')} {src.get('zone')} "
                f"{src.get('kind')} {src.get('period')})"
            )
            if self.co2e_g_annual is not None:
                lines.append(f"  CO2e at the annual average: {format_co2e(self.co2e_g_annual)}")
        for p in self.phases:
            lines.append(
                f"  phase {p.name:<18} x{p.count:<4} {format_sig(p.duration_s):>9} s "
                f"{format_energy(p.energy_j):>12}"
            )
        for k, v in self.metrics.items():
            lines.append(f"  {k} = {v:g}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)


@dataclass
class _OpenPhase:
    id: str
    name: str
    path: str
    depth: int
    t0_mono: float
    t0_wall: float
    start: dict[str, DeviceReading]


def _cuda_synchronize() -> None:
    """Synchronise CUDA before a counter read, if the program already uses torch with CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_initialized():  # (cheap; is_available() may probe the driver)
            torch.cuda.synchronize()
    except RuntimeError:  # a broken CUDA context must not break the phase
        pass


class Run:
    """One tracked run. Create it with :func:`track`; use it as a context manager or
    :meth:`start` / :meth:`stop`.

    Args:
        name: run name (default: the function's name or ``run``).
        project: project name (default ``default``).
        params: hyper-parameters (stored as text).
        tags: free-form key/value tags.
        region: grid zone for CO2e (``ES``, ``US-CAL-CISO``, ``gcp:europe-west1``).
        db: store URL or SQLite path (default ``GREENTRACK_DB`` / ``~/.greentrack/greentrack.db``).
        interval_s: sampling interval, seconds (default 1.0).
        checkpoint_s: longest time between checkpoints to the store, seconds (default 10).
        pue: power usage effectiveness (default from config, 1.0).
        budget_kwh / budget_co2e_g: a budget; see :attr:`over_budget`.
        meters: meters to use instead of the detected ones (tests, replay).
        source / csv: intensity source name, or CSV file(s) for an hourly series.
        csv_options: CSV layout (``time_column``, ``value_column``, ``tz``, ``signal``,
            ``max_gap_steps``: see :func:`greentrack.carbon.csvsource.load_csv`).
        flush_timeout_s: deadline of the final write at stop(), seconds (default 10, or
            ``GREENTRACK_FLUSH_TIMEOUT_S`` / config ``flush_timeout_s``); past it the final state
            is spooled with a warning.
        cpu_share: what the CPU/RAM *estimates* count: ``machine`` (default) or ``process`` (this
            process and its children; see :mod:`greentrack.meters.proctree`).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        project: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        region: str | None = None,
        db: str | None = None,
        interval_s: float | None = None,
        checkpoint_s: float | None = None,
        pue: float | None = None,
        budget_kwh: float | None = None,
        budget_co2e_g: float | None = None,
        meters: Sequence[Meter] | None = None,
        source: str | None = None,
        csv: Sequence[str] | str | None = None,
        csv_options: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        measure_host: bool = True,
        cpu_share: str | None = None,
        flush_timeout_s: float | None = None,
        config: Config | None = None,
    ) -> None:
        self.config = config or load_config()
        if cpu_share is not None:
            self.config = replace(self.config, cpu_share=check_cpu_share(cpu_share, "cpu_share"))
        # one masking step for every user string kept or shown (URL passwords, tokens)
        self._mask = Masker(provider_secrets(self.config.providers))
        self._given_id = run_id or os.environ.get("GREENTRACK_RUN_ID")
        if self._given_id:
            check_run_id(self._given_id, "run_id" if run_id else "GREENTRACK_RUN_ID")
        self.id = self._given_id or uuid.uuid4().hex
        self.name = self._mask(_fits("run name", str(name or "run"), ConfigError))
        self.project = self._mask(
            _fits(
                "project name",
                str(project or os.environ.get("GREENTRACK_PROJECT") or "default"),
                ConfigError,
            )
        )
        self.params = {
            self._mask(_fits("parameter name", str(k), ConfigError)): self._mask(str(v))
            for k, v in (params or {}).items()
        }
        self.tags = {
            self._mask(_fits("tag name", str(k), ConfigError)): self._mask(str(v))
            for k, v in (tags or {}).items()
        }
        self.region_arg = region
        self.db_url = db or self.config.db_url
        self.interval_s = check_interval_s(
            self.config.interval_s if interval_s is None else interval_s, "interval_s"
        )
        self.checkpoint_s = check_checkpoint_s(
            self.config.checkpoint_s if checkpoint_s is None else checkpoint_s, "checkpoint_s"
        )
        self.pue = float(pue if pue is not None else self.config.pue)
        self.budget_kwh = budget_kwh
        self.budget_co2e_g = budget_co2e_g
        self.source_name = source
        self.csv = [csv] if isinstance(csv, str) else list(csv or [])
        self.csv_options = dict(csv_options or {})
        # rank / world_size None: found at start() (greentrack.distributed); given: taken as is
        self._placement = Placement(rank or 0, world_size or 1, measure_host=measure_host)
        self._auto_place = rank is None and world_size is None
        self.rank = self._placement.rank
        self.world_size = self._placement.world_size
        self.owner = self.rank == 0
        self.measure_host = measure_host
        self.status = "created"
        self.error: str | None = None
        self._meters_override = list(meters) if meters is not None else None
        self._sampler: Sampler | None = None
        self._writer: StoreWriter | None = None
        self._spool = Spool.for_store(self.config.spool_dir, self.db_url)
        self._replayed_others = False
        self._state_lock = threading.RLock()
        self._io_lock = threading.Lock()
        self._seq = 0
        self._meta: dict[str, Any] | None = None
        self._device_models: dict[str, str] = {}
        # open phases nest per context (thread, asyncio task): a ContextVar holds each context's
        # stack; every open phase is also kept here so that stop() closes those left open
        self._phases: contextvars.ContextVar[tuple[_OpenPhase, ...]] = contextvars.ContextVar(
            f"greentrack-phases-{self.id}", default=()
        )
        self._open_phases: dict[str, _OpenPhase] = {}
        self._phase_totals: dict[str, dict[str, Any]] = {}
        self._phase_fill: dict[str, float] = {}
        self._pending_phases: list[dict[str, Any]] = []
        self._pending_metrics: list[dict[str, Any]] = []
        self._pending_events: list[dict[str, Any]] = []
        self._pending_params: dict[str, str] = dict(self.params)
        self._pending_tags: dict[str, str] = dict(self.tags)
        self._last_metrics: dict[str, float] = {}
        self._warnings: list[str] = []
        self._flops: float | None = None
        self._progress: tuple[float, float] | None = None
        self._plan: dict[str, Any] | None = _plan_from_env()
        self._carbon: dict[str, Any] = {}
        self._budget_warned = False
        self._prefetched = False
        self._carbon_ctx: Any = None
        self._held: Checkpoint | None = None
        self._retry_after = 0.0
        self._store_warned = False
        self._refused: set[tuple[str, bool]] = set()
        self._event_counts: dict[tuple[str, str], int] = {}  # (source, message) -> times seen
        self._spool_failed = False
        self.flush_timeout_s = _flush_timeout_s(flush_timeout_s, self.config)
        self._notes: dict[str, str] = {}
        self._inert = False  # a fork()ed child's copy: no threads, no writes
        self._abandoned = False  # stop() passed its deadline: the final state is in the spool
        self._inflight: Checkpoint | None = None  # the checkpoint being written, if any
        self._inflight_final = False
        self._write_started = 0.0  # monotonic start of the write in progress (0: none)
        self._start_marker: Path | None = None
        self.t0_mono = 0.0
        self.t0_wall = 0.0
        self.t1_mono: float | None = None
        self.host = hardware.hostname()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Run:
        """Start measuring. Raises a one-line GreentrackError for bad input (URL, region)."""
        if self.status != "created":
            raise GreentrackError(f"run {self.id[:8]} was already started")
        # A malformed URL is the user's input: fail here, before training starts.
        self.db_url = parse_url(self.db_url).sqlalchemy_url
        # So are the carbon inputs: an unknown region, a CSV for another zone or one that does
        # not cover now fail here, before the user's code runs (cloud metadata: later, off-thread).
        from greentrack.carbon.runcarbon import needs_network, prepare

        if not needs_network(self.region_arg, self.csv, self.config):
            self._carbon_ctx = prepare(
                self.region_arg,
                self.source_name,
                self.csv,
                self.config,
                csv_options=self.csv_options,
                start_s=time.time(),
            )
        self._writer = StoreWriter(self.db_url, shared=True)
        if self._auto_place:  # in a distributed job: every rank attaches to one run
            found = place(self._given_id)
            self._placement = replace(found, measure_host=found.measure_host and self.measure_host)
            self.id = self._placement.run_id or self.id
            self.rank, self.world_size = self._placement.rank, self._placement.world_size
            self.owner, self.measure_host = self._placement.owner, self._placement.measure_host
        meters = self._meters_override
        if meters is None:
            meters = open_placement_meters(self.config, self._placement)
        for m in meters:
            try:
                self._device_models.update(m.describe())
            except Exception:  # a custom meter's bug never reaches the user's code
                pass
        self._notes = _meter_notes(meters)
        self._sampler = Sampler(
            meters,
            interval_s=self.interval_s,
            checkpoint_s=self.checkpoint_s,
            on_checkpoint=self._on_checkpoint,
            on_warning=self._on_warning,
            on_tick=self._watchdog,
        )
        for w in self._placement.warnings:
            self._on_warning("distributed", w)
        joined = joined_event(self._placement, self.id, time.time())
        if joined is not None:  # every rank that joins is listed, even one measuring nothing
            with self._state_lock:
                self._pending_events.append(joined)
        self.status = "running"
        self._sampler.start()
        self.t0_mono, self.t0_wall = self._sampler.t0_mono, self._sampler.t0_wall  # the baseline
        self._mark_start()
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
        _enter_current(self)
        _install_signal_handlers()
        return self

    def _mark_start(self) -> None:
        """Make the start durable before ``start()`` returns: one fsync'd spool line
        (``<run>.<rank>.start.jsonl``, the run row as ``running``). The first checkpoint that
        reaches the store removes it; if the process dies first, ``greentrack sync`` writes it
        and marks the run ``crashed``. A spool line rather than a transaction: it costs one
        small local write (no database round trip on the caller's thread) and holds when the
        store is down."""
        run = {
            "project": self.project,
            "name": self.name,
            "status": "running",
            "started_at": _utc(self.t0_wall),
            "heartbeat_at": _utc(self.t0_wall),
            "pue": self.pue,
            "host": self.host,
            "pid": os.getpid(),
            "world_size": self.world_size,
            "checkpoint_s": self.checkpoint_s,
        }
        cp = Checkpoint(run_id=self.id, rank=self.rank, seq=0, run=run, owner=self.owner)
        path = self._spool.dir / f"{self.id}.{self.rank}.start.jsonl"
        try:
            _private_dirs(self._spool.dir)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                data = (cp.to_json() + "\n").encode()
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "short write")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._start_marker = path
        except OSError as e:  # the first checkpoint still writes the run (at once, in the back)
            with contextlib.suppress(OSError):
                path.unlink()
            self._on_warning(
                "spool", f"could not record the start in {self._spool.dir} ({e.strerror or e})"
            )

    def _make_inert(self) -> None:
        """In a fork()ed child: this copy of the parent's run does nothing from now on."""
        self._inert = True
        self._state_lock = threading.RLock()
        self._io_lock = threading.Lock()
        self._writer = None
        self._start_marker = None
        if self._sampler is not None:
            self._sampler.after_fork_in_child()

    def _started_durably(self) -> None:
        """The run is in the store: the start marker is no longer needed."""
        if self._start_marker is not None:
            marker, self._start_marker = self._start_marker, None
            with contextlib.suppress(OSError):
                marker.unlink()

    def stop(self, status: str | None = None, error: str | None = None) -> RunSummary:
        """Stop measuring, write the final state, return the summary. Idempotent.

        SIGTERM, SIGINT and SIGHUP arriving meanwhile are deferred until the final state is
        written. The final write has one deadline, ``flush_timeout_s`` (default 10 s): past it
        the final state goes to the spool, with a warning, and ``stop()`` returns.
        """
        if self._inert:  # a fork()ed child's copy of its parent's run: nothing to do
            return self.summary()
        with _signals_deferred():
            return self._stop(status, error)

    def _stop(self, status: str | None, error: str | None) -> RunSummary:
        with self._state_lock:
            if self.status not in ("running",):
                return self.summary()
            self.status = status or "finished"
            self.error = None if error is None else self._mask(error)
        deadline = time.monotonic() + self.flush_timeout_s
        assert self._sampler is not None
        for opened in sorted(self._open_phases.values(), key=lambda p: -p.depth):
            self._close_phase(opened)  # phases left open (an exception, another task) end here
        self._sampler.stop()
        self.t1_mono = self._sampler.t1_mono
        with _ACTIVE_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        try:
            self._account_carbon()
        except GreentrackError as e:
            self._on_warning("carbon", f"CO2e not computed: {e}")
        except Exception as e:
            log.exception("greentrack: internal error while accounting CO2e")
            self._on_warning("carbon", f"CO2e not computed: internal error {type(e).__name__}: {e}")
        try:
            cp = self._make_checkpoint(self._sampler.take_pending(), final=True)
        except Exception:  # the user's program goes on; what was delivered before stays
            log.exception("greentrack: internal error in the final checkpoint")
        else:
            self._flush(cp, deadline)
        if self._writer is not None and not self._abandoned:
            self._writer.close()
        return self.summary()

    def _flush(self, cp: Checkpoint, deadline: float) -> None:
        """Deliver the final checkpoint by ``deadline`` (monotonic s), else spool it."""
        done = threading.Event()

        def work() -> None:
            if threading.current_thread() is not threading.main_thread():
                block_signals()
            try:
                self._deliver(cp, final=True)
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
        self._abandoned = True
        inflight, held = self._inflight, self._held
        parts = [c for c in (held, inflight) if c is not None]
        if not (inflight is not None and self._inflight_final):  # else it contains cp
            parts.append(cp)
        out = Checkpoint.combine(parts)
        msg = (
            f"the store did not take the final state within flush_timeout_s="
            f"{self.flush_timeout_s:g} s; readings spooled to {self._spool.dir}, run "
            "`greentrack sync` once it answers"
        )
        out.events.append(self._event("store", msg))
        with self._state_lock:
            self._warnings.append(msg)
        log.warning("greentrack: %s", msg)
        try:
            self._spool.append(out)
        except OSError as e:
            log.warning(
                "greentrack: could not spool the final state either (%s): this run's last "
                "%.0f s are lost",
                e.strerror or e,
                self.checkpoint_s,
            )
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.abort()

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.stop("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.stop("interrupted", "KeyboardInterrupt")
        elif isinstance(exc, SystemExit) and exc.code in (0, None):
            self.stop("finished")
        else:
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.stop("failed", text)
        # returning None re-raises the user's exception unchanged

    def follow_children(self) -> None:
        """With ``cpu_share="process"``: start counting the children started so far at once,
        instead of at the next scan (at most 10 s later; their CPU time is never lost, but their
        memory until then is). ``greentrack run`` calls it after starting the command."""
        sampler = self._sampler
        trees = {
            id(t): t for m in (sampler.meters if sampler else []) if (t := getattr(m, "tree", None))
        }
        for tree in trees.values():
            tree.scan()

    # -- user API ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A named, nestable phase; its energy comes from meter reads at its boundaries.

        Phases nest per context: a phase opened in a thread or an asyncio task is a child of
        the phase open in that same context (a new thread starts at the top level; a task
        starts under the phase open where it was created), never of a sibling's."""
        if self._inert:  # a fork()ed child: not measured
            yield
            return
        opened = self._open_phase(name)
        try:
            yield
        finally:
            self._close_phase(opened)

    def _open_phase(self, name: str) -> _OpenPhase:
        if self._sampler is None or self.status != "running":
            raise GreentrackError("run.phase() needs a running run: use it inside `with track()`")
        _fits("phase name", name)
        _cuda_synchronize()
        t0_mono, t0_wall, readings = self._sampler.read_now()
        stack = self._phases.get()
        with self._state_lock:
            parent = stack[-1].path + "/" if stack else ""
            if len(parent + name) > PATH_MAX:
                raise GreentrackError(
                    f"phase path {(parent + name)[:37] + '...'!r} is {len(parent + name)} "
                    f"characters long (nested phases); the store keeps paths up to {PATH_MAX}"
                )
            opened = _OpenPhase(
                uuid.uuid4().hex,
                name,
                parent + name,
                len(stack),
                t0_mono,
                t0_wall,
                readings,
            )
            self._open_phases[opened.id] = opened
        self._phases.set((*stack, opened))
        return opened

    def _close_phase(self, opened: _OpenPhase) -> None:
        assert self._sampler is not None
        _cuda_synchronize()
        t1_mono, t1_wall, end = self._sampler.read_now()
        per_device = {
            d: r.energy_j - (opened.start[d].energy_j if d in opened.start else 0.0)
            for d, r in end.items()
        }
        phase_methods: set[str] = set()
        for d, r in end.items():  # a meter may prefer another figure for a short window
            e0_j = opened.start[d].energy_j if d in opened.start else 0.0
            for meter in self._sampler.meters:
                try:
                    better = meter.window_energy(d, opened.t0_mono, t1_mono, e0_j, r.energy_j)
                except Exception:  # a meter's hook never breaks the user's phase
                    log.exception("greentrack: internal error in %s.window_energy", meter.name)
                    better = None
                if better is not None:
                    per_device[d], method = better
                    phase_methods.add(method)
                    break
        energy_j = sum(per_device.values())
        duration_s = t1_mono - opened.t0_mono
        stack = self._phases.get()
        if opened in stack:
            self._phases.set(tuple(p for p in stack if p is not opened))
        with self._state_lock:
            if self._open_phases.pop(opened.id, None) is None:
                return  # closed already (by stop(), from another context)
            self._pending_phases.append(
                {
                    "id": opened.id,
                    "name": opened.name,
                    "path": opened.path,
                    "depth": opened.depth,
                    "started_at": _utc(opened.t0_wall),
                    "ended_at": _utc(t1_wall),
                    "t0_s": opened.t0_wall,
                    "t1_s": t1_wall,
                    "duration_s": duration_s,
                    "energy_j": energy_j,
                    "components": per_device,
                    "method": "/".join(sorted(phase_methods)) or None,
                }
            )
            tot = self._phase_totals.setdefault(
                opened.path,
                {"count": 0, "duration_s": 0.0, "energy_j": 0.0, "components": {}, "spans": []},
            )
            tot["count"] += 1
            tot["duration_s"] += duration_s
            tot["energy_j"] += energy_j
            for d, e in per_device.items():
                tot["components"][d] = tot["components"].get(d, 0.0) + e
            if len(tot["spans"]) < _SPANS_MAX:  # each occurrence booked at its own intensity
                tot["spans"].append((opened.t0_wall, t1_wall, energy_j))
                tot.setdefault("rows", []).append(self._pending_phases[-1])  # its CO2e at stop
            else:  # bounded memory: later occurrences are booked together, none is dropped
                t0, t1, e = tot.get("overflow") or (opened.t0_wall, t1_wall, 0.0)
                tot["overflow"] = (min(t0, opened.t0_wall), max(t1, t1_wall), e + energy_j)

    def log(self, step: int | None = None, **metrics: float) -> None:
        """Record metrics, e.g. ``run.log(step=3, val_acc=0.91, loss=0.2)``."""
        now = time.time()
        if step is not None:
            step = _step(step)
        with self._state_lock:
            for key, value in metrics.items():
                _fits("metric name", key)
                v = float(value)
                self._last_metrics[key] = v
                self._pending_metrics.append({"key": key, "step": step, "value": v, "t_s": now})

    def log_params(self, **params: Any) -> None:
        """Add hyper-parameters to the run."""
        with self._state_lock:
            for k, v in params.items():
                k = self._mask(_fits("parameter name", k))
                self.params[k] = self._pending_params[k] = self._mask(str(v))

    def set_tags(self, **tags: Any) -> None:
        """Add tags to the run."""
        with self._state_lock:
            for k, v in tags.items():
                k = self._mask(_fits("tag name", k))
                self.tags[k] = self._pending_tags[k] = self._mask(str(v))

    def log_flops(self, flops: float) -> None:
        """Add floating-point operations (e.g. from :func:`greentrack.count_flops`)."""
        with self._state_lock:
            self._flops = (self._flops or 0.0) + float(flops)

    def progress(self, step: float, total_steps: float) -> None:
        """Report progress; the run then forecasts its final energy and CO2e."""
        if total_steps <= 0:
            raise GreentrackError("run.progress(step, total_steps): total_steps must be positive")
        with self._state_lock:
            self._progress = (float(step), float(total_steps))

    def set_plan(self, plan: Mapping[str, Any]) -> None:
        """Attach a schedule plan (stored on the run; drives :meth:`should_pause`)."""
        with self._state_lock:
            self._plan = dict(plan)

    def should_pause(self) -> bool:
        """True while the attached Pause & Resume plan says the job should be paused."""
        if not self._plan or not self._plan.get("segments"):
            return False
        from greentrack.schedule import should_pause

        return bool(should_pause(self._plan, time.time()))

    def warn(self, message: str, source: str = "user") -> None:
        """Record a warning on the run (masked and made storable like every stored string)."""
        self._on_warning(self._mask(str(source)), message)

    @property
    def energy_j(self) -> float:
        """Device energy so far (sum over devices). Units: joules."""
        if self._sampler is None:
            return 0.0
        return sum(r.energy_j for r in self._sampler.latest.values())

    @property
    def over_budget(self) -> bool:
        """True when continuing one more step would exceed the budget.

        The next step's energy is estimated from the progress reported so far (energy per step)
        or, without progress, from the last sampling interval. Budgets count facility energy
        (device energy × PUE); the CO2e budget uses the intensity resolved at start.
        """
        if self.budget_kwh is None and self.budget_co2e_g is None:
            return False
        if self._sampler is not None and self.status == "running":
            self._sampler.read_now()  # a fresh read: the check is exact up to this instant
        energy_j = self.energy_j * self.pue
        next_j = self._next_step_energy_j() * self.pue
        if self.budget_kwh is not None and (energy_j + next_j) / J_PER_KWH >= self.budget_kwh:
            return True
        g = self._carbon.get("g_per_kwh_now")
        return bool(
            self.budget_co2e_g is not None
            and g is not None
            and (energy_j + next_j) / J_PER_KWH * g >= self.budget_co2e_g
        )

    def _next_step_energy_j(self) -> float:
        if self._progress and self._progress[0] > 0:
            return self.energy_j / self._progress[0]
        if self._sampler is None:
            return 0.0
        elapsed = max(time.monotonic() - self.t0_mono, 1e-9)
        return self.energy_j / elapsed * self.interval_s

    def summary(self) -> RunSummary:
        """The run's cost so far (or final, after stop)."""
        latest = self._sampler.latest if self._sampler else {}
        end = self.t1_mono if self.t1_mono is not None else time.monotonic()
        with self._state_lock:
            phases = [
                PhaseSummary(
                    name=path,
                    duration_s=t["duration_s"],
                    energy_j=t["energy_j"],
                    count=t["count"],
                    components=dict(t["components"]),
                    co2e_g=t.get("co2e_g"),
                )
                for path, t in self._phase_totals.items()
            ]
            return RunSummary(
                id=self.id,
                project=self.project,
                name=self.name,
                status=self.status,
                duration_s=(end - self.t0_mono) if self.t0_mono else 0.0,
                energy_j=sum(r.energy_j for r in latest.values()),
                pue=self.pue,
                components=[
                    ComponentEnergy(r.component, d, r.energy_j, r.method, self.rank, self.host)
                    for d, r in sorted(latest.items())
                ],
                phases=phases,
                metrics=dict(self._last_metrics),
                params=dict(self.params),
                tags=dict(self.tags),
                region=self._carbon.get("region"),
                co2e_g=self._carbon.get("co2e_g"),
                co2e_g_annual=self._carbon.get("co2e_g_annual"),
                intensity_source=self._carbon.get("intensity_source"),
                flops=self._flops,
                warnings=list(self._warnings),
            )

    # -- carbon --------------------------------------------------------------------------------
    def _account_carbon(self) -> None:
        from greentrack.carbon.runcarbon import account_run

        assert self._sampler is not None
        self._prefetch()  # normally done already, on the checkpoint thread
        if isinstance(self._carbon_ctx, GreentrackError):
            raise self._carbon_ctx
        result = account_run(
            self._carbon_ctx,
            series={d: (s.t_s, s.energy_j) for d, s in self._sampler.series.items()},
            phases={
                p: t["spans"] + ([t["overflow"]] if "overflow" in t else [])
                for p, t in self._phase_totals.items()
            },
            t0_s=self.t0_wall,
            t1_s=self.t0_wall + ((self.t1_mono or time.monotonic()) - self.t0_mono),
            pue=self.pue,
        )
        for w in result.warnings:
            self._on_warning("carbon", w)
        with self._state_lock:
            self._carbon.update(
                region=result.region,
                region_origin=result.region_origin,
                co2e_g=result.co2e_g,
                co2e_g_annual=result.co2e_g_annual,
                intensity_source=result.provenance,
                intensity_series=result.series_json,
            )
            for path, g in result.phase_co2e_g.items():
                if path in self._phase_totals:
                    self._phase_totals[path]["co2e_g"] = g
            # Each phase row gets its own CO2e; rows delivered already go out again with it in
            # the final checkpoint (an upsert by id), so the store holds what summary() says.
            pending = {p["id"] for p in self._pending_phases}
            for path, each in result.phase_span_co2e_g.items():
                rows = self._phase_totals.get(path, {}).get("rows", [])
                for row, g in zip(rows, each, strict=False):
                    row["co2e_g"] = g
                    if row["id"] not in pending:
                        self._pending_phases.append(row)
                overflow = self._phase_totals.get(path, {}).get("overflow")
                if overflow and overflow[2] > 0 and len(each) > len(rows):
                    self._phase_fill[path] = each[-1] / overflow[2]  # g per J, the later rows

    # -- checkpoints (sampler thread, and the final one on the caller's thread) -----------------
    def _on_warning(self, source: str, message: str) -> None:
        message = self._mask(str(message))  # user's and greentrack's own: no secret kept
        if message not in _LOGGED:  # every run records it; the terminal sees it once
            _LOGGED.add(message)
            log.warning("greentrack: %s", message)
        with self._state_lock:
            self._warnings.append(message)
            n = self._event_counts.get((source, message), -1) + 1
            self._event_counts[(source, message)] = n
            self._pending_events.append(
                {  # the same id on every rank: a warning all ranks record is stored once
                    "id": event_id(self.id, source, message, n),
                    "t_s": time.time(),
                    "level": "warning",
                    "source": source,
                    "message": message,
                }
            )

    def _event(self, source: str, message: str) -> dict[str, Any]:
        """A warning as an ``events`` row (as :meth:`_on_warning` makes them), for a
        checkpoint that is spooled instead of the next one."""
        message = self._mask(str(message))
        with self._state_lock:
            n = self._event_counts.get((source, message), -1) + 1
            self._event_counts[(source, message)] = n
        return {
            "id": event_id(self.id, source, message, n),
            "t_s": time.time(),
            "level": "warning",
            "source": source,
            "message": message,
        }

    def _watchdog(self) -> None:
        """On the sampling thread, each tick: a store write that has made no progress for
        :data:`WRITE_DEADLINE_S` (a server that stopped answering while the network still
        acknowledges) is aborted, so the checkpoint goes to the spool and the run retries."""
        started = self._write_started
        if started and time.monotonic() - started > WRITE_DEADLINE_S and self._writer:
            self._write_started = 0.0
            log.warning("greentrack: a store write made no progress for %.0f s", WRITE_DEADLINE_S)
            with contextlib.suppress(Exception):
                self._writer.abort()

    def _prefetch(self) -> None:
        """On the checkpoint thread, while training runs: resolve the zone and intensity source
        and import what accounting needs, so that ``stop()`` only does arithmetic."""
        if self._prefetched:
            return
        self._prefetched = True
        try:
            from greentrack.carbon.runcarbon import prepare, warm

            if self._carbon_ctx is None:  # resolved in start() unless it needed the network
                self._carbon_ctx = prepare(
                    self.region_arg,
                    self.source_name,
                    self.csv,
                    self.config,
                    csv_options=self.csv_options,
                )
            warm(self._carbon_ctx)
        except GreentrackError as e:
            self._carbon_ctx = e  # reported (once) when stop() accounts
            return
        try:  # for budgets and forecasts only: a failure here leaves the accounting alone
            # the first checkpoint can come before start() has set t0_wall: then it is now
            g = self._carbon_ctx.g_per_kwh_at(self.t0_wall or time.time())
            with self._state_lock:
                self._carbon["g_per_kwh_now"] = g
        except GreentrackError as e:
            self._on_warning("carbon", f"no intensity for the CO2e budget and forecast: {e}")

    def _on_checkpoint(self, points: list[tuple[str, str, float, float, float | None]]) -> None:
        self._prefetch()
        try:
            self._checkpoint(points, final=False)
        except Exception as e:
            log.exception("greentrack: checkpoint failed: %s", e)

    def _run_fields(self, final: bool) -> dict[str, Any]:
        if self._meta is None:
            from greentrack.metadata import collect, secret_values

            self._meta = storable_tree(  # the command line may hold undecodable bytes
                collect(
                    self._device_models,
                    [*secret_values(self.config.providers), *self._mask.secrets],
                )
            )
        now_mono = self.t1_mono if final and self.t1_mono is not None else time.monotonic()
        fields: dict[str, Any] = {
            "project": self.project,
            "name": self.name,
            "status": self.status if final else "running",
            "started_at": _utc(self.t0_wall),
            "heartbeat_at": _utc(time.time()),
            "duration_s": now_mono - self.t0_mono,
            "pue": self.pue,
            "host": self.host,
            "pid": os.getpid(),
            "world_size": self.world_size,
            "checkpoint_s": self.checkpoint_s,
            "meta": self._meta,
            "flops": self._flops,
            "plan": self._plan,
            "region": self._carbon.get("region") or self.region_arg,
        }
        forecast = self._forecast()
        if forecast:
            fields["forecast"] = forecast
        if final:
            fields["ended_at"] = _utc(self.t0_wall + (now_mono - self.t0_mono))
            fields["error"] = self.error
            for k in (
                "region_origin",
                "co2e_g",
                "co2e_g_annual",
                "intensity_source",
                "intensity_series",
            ):
                if k in self._carbon:
                    fields[k] = self._carbon[k]
        return fields

    def _forecast(self) -> dict[str, Any] | None:
        if not self._progress:
            return None
        step, total = self._progress
        fraction = min(max(step / total, 0.0), 1.0)
        out: dict[str, Any] = {"step": step, "total_steps": total, "fraction": fraction}
        if fraction > 0:
            out["predicted_energy_j"] = self.energy_j / fraction
            g = self._carbon.get("g_per_kwh_now")
            if g is not None:
                out["predicted_co2e_g"] = out["predicted_energy_j"] * self.pue / J_PER_KWH * g
            if self.budget_kwh is not None:
                predicted_kwh = out["predicted_energy_j"] * self.pue / J_PER_KWH
                out["budget_kwh"] = self.budget_kwh
                if predicted_kwh > self.budget_kwh and not self._budget_warned:
                    self._budget_warned = True
                    self._on_warning(
                        "budget",
                        f"forecast {predicted_kwh:.4f} kWh exceeds the budget of "
                        f"{self.budget_kwh} kWh at {fraction:.0%} progress",
                    )
        return out

    def _checkpoint(
        self, points: list[tuple[str, str, float, float, float | None]], *, final: bool
    ) -> None:
        self._deliver(self._make_checkpoint(points, final=final), final=final)

    def _make_checkpoint(
        self, points: list[tuple[str, str, float, float, float | None]], *, final: bool
    ) -> Checkpoint:
        assert self._sampler is not None
        notes = {**self._notes, **_meter_notes(self._sampler.meters)}
        with self._state_lock:
            self._seq += 1
            latest = dict(self._sampler.latest)
            cp = Checkpoint(
                run_id=self.id,
                rank=self.rank,
                seq=self._seq,
                run=self._run_fields(final),
                owner=self.owner,
                components=[
                    {
                        "component": r.component,
                        "device": d,
                        "energy_j": r.energy_j,
                        "method": r.method,
                        "model": self._device_models.get(d),
                        "note": notes.get(d),
                        "host": self.host,
                    }
                    for d, r in sorted(latest.items())
                ],
                samples=[
                    {"device": d, "component": c, "t_s": t, "energy_j": e, "power_w": p}
                    for d, c, t, e, p in points
                ],
                phases=self._pending_phases,
                metrics=self._pending_metrics,
                events=self._pending_events,
                params=self._pending_params,
                tags=self._pending_tags,
                phase_fill=dict(self._phase_fill) if final else {},
            )
            self._pending_phases, self._pending_metrics, self._pending_events = [], [], []
            self._pending_params, self._pending_tags = {}, {}
        return cp

    def _deliver(self, cp: Checkpoint, *, final: bool) -> None:
        assert self._writer is not None
        with self._io_lock:
            if self._abandoned:  # stop() passed its deadline and spooled the final state
                return
            if self._held is not None:
                cp, self._held = self._held.merge(cp), None
            if not final and time.monotonic() < self._retry_after:
                self._to_spool(cp)
                return
            self._inflight, self._inflight_final = cp, final
            self._write_started = time.monotonic()
            try:
                for path in self._spool.pending(self.id, self.rank):
                    if path != self._start_marker:  # superseded by cp: removed once written
                        self._spool.replay(self._writer, path)
                refused = self._writer.write(cp)
                self._started_durably()
                if refused is not None:
                    self._keep_refused(cp.split_user_data()[1] or cp, refused, part=True)
                self._retry_after = 0.0
                if not self._replayed_others and not final:
                    self._replayed_others = True  # earlier runs' spooled readings, once
                    for path in self._spool.pending():
                        if not path.name.startswith(self.id):
                            self._spool.replay(self._writer, path)
                if self._store_warned:
                    self._store_warned = False
                    log.warning("greentrack: store reachable again; spooled readings written")
            except StoreRejectedError as e:  # retrying cannot help: kept aside, not spooled
                self._keep_refused(cp, str(e), part=False)
            except Exception as e:  # never into the user's code: spool instead
                if self._abandoned:  # stop() spooled this state already (its deadline passed)
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
                        f"{self._spool.dir}, {hint}"
                    )
                    log.warning("greentrack: %s", msg)
                    with self._state_lock:
                        self._warnings.append(msg)
                    # in the spooled checkpoint itself: `show` then says the run was spooled
                    cp.events.append(self._event("store", msg))
                self._to_spool(cp)
            finally:
                self._inflight, self._write_started = None, 0.0

    def _keep_refused(self, cp: Checkpoint, reason: str, *, part: bool) -> None:
        """What the database refused goes to the spool's ``rejected/`` folder, with a warning."""
        try:
            where = f"kept in {self._spool.reject(cp, reason)}"
        except OSError as e:
            where = f"and could not be kept ({e.strerror or e})"
        if (reason, part) in self._refused:  # said once per run and reason, kept every time
            return
        self._refused.add((reason, part))
        what = "a checkpoint of this run"
        if part:
            what = "this run's metrics, params and tags; its energy was written"
        self._on_warning("store", f"{reason}: left out {what}; {where}")

    def _to_spool(self, cp: Checkpoint) -> None:
        try:
            self._spool.append(cp)
            self._spool_failed = False
        except OSError as e:
            if not self._spool_failed:  # once per outage, not once per checkpoint
                self._spool_failed = True
                self._on_warning(
                    "spool",
                    f"cannot write the spool in {self._spool.dir} ({e.strerror or e}); keeping "
                    "readings in memory until the store or the disk is back",
                )
            cp.samples = cp.samples[-100_000:]  # bounded: cumulative energy is never lost
            self._held = cp if self._held is None else self._held.merge(cp)


_SPANS_MAX = 10_000
"""Occurrences of one phase path whose CO2e is accounted (and stored) one by one; later ones are
booked together at the mean intensity over the time they span (so the path's total stays whole)."""

NAME_MAX = 200
"""Longest run, project, phase, metric, parameter and tag name the store keeps. Units: chars."""
PATH_MAX = 1000
"""Longest nested phase path (``epoch/eval/...``) the store keeps. Units: chars."""


def _fits(what: str, name: str, error: type[GreentrackError] = GreentrackError) -> str:
    """``name`` if the store can keep it; otherwise a one-line error at the caller's line (rather
    than a checkpoint the database refuses later)."""
    if not name or len(name) > NAME_MAX:
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise error(
            f"{what} {storable(shown)!r} is {len(name)} characters long; use 1 to {NAME_MAX} "
            "characters"
        )
    if not name.isascii() or "\x00" in name:
        bad = unstorable(name)
        if bad:
            raise error(
                f"{what} {storable(name[:40])!r} {bad}, which the store cannot hold; remove it"
            )
    return name


def _step(step: Any) -> int:
    """A metric step: an integer that fits in 64 bits (tokens seen are fine)."""
    try:
        value = operator.index(step)
    except TypeError:
        raise GreentrackError(
            f"run.log(step={step!r}): the step must be an integer (e.g. the global step)"
        ) from None
    if not -(2**63) <= value < 2**63:
        raise GreentrackError(f"run.log(step={step}): the step must fit in 64 bits")
    return value


def _plan_from_env() -> dict[str, Any] | None:
    raw = os.environ.get("GREENTRACK_PLAN")
    if not raw:
        return None
    try:
        plan = json.loads(raw)
    except ValueError:
        return None
    return plan if isinstance(plan, dict) else None


def active_runs() -> list[Run]:
    """Every run started in this process and not yet stopped, oldest first (all threads and
    contexts; a copy). Use it to reach runs you did not start yourself, e.g. from a signal
    handler; inside your own code prefer :func:`current_run`."""
    with _ACTIVE_LOCK:
        return list(_ACTIVE)


# The runs started in this context (thread, asyncio task), innermost last. A run is appended at
# start(); a stopped one is filtered out on read (stop() may run in another context: atexit, a
# signal handler), so entries never need resetting and never outlive their run.
_CURRENT: contextvars.ContextVar[tuple[Run, ...]] = contextvars.ContextVar(
    "greentrack_current_runs", default=()
)


def _enter_current(run: Run) -> None:
    with _ACTIVE_LOCK:
        alive = tuple(r for r in _CURRENT.get() if r in _ACTIVE and r is not run)
    _CURRENT.set((*alive, run))


def current_run() -> Run | None:
    """The innermost run started in the current context and still running, or None.

    "Context" is the thread (and, under asyncio, the task) that started the run: inside a function
    decorated with ``@gt.track`` or a ``with gt.track(...)`` block this is that run, so the
    function can open phases, log metrics and report progress without being handed the run::

        @gt.track(project="cifar")
        def train():
            run = gt.current_run()
            with run.phase("epoch"):
                run.log(step=1, loss=0.3)

    A nested run is returned while it runs, its parent again after it stops. Another thread
    (a data-loader worker, a callback thread) sees None unless it started a run itself (pass the
    run to it, or use :func:`active_runs`); an asyncio task sees the runs of the context it was
    created in.
    """
    with _ACTIVE_LOCK:
        for run in reversed(_CURRENT.get()):
            if run in _ACTIVE:
                return run
    return None


# -- limits ------------------------------------------------------------------------------------
FLUSH_TIMEOUT_S = 10.0
"""Default deadline of ``stop()``'s final write (``flush_timeout_s``). Units: s."""
WRITE_DEADLINE_S = 60.0
"""A checkpoint write in progress longer than this is aborted by the sampling thread (a store
that stopped answering while the network still acknowledges); it goes to the spool. Units: s."""


def _flush_timeout_s(given: float | None, config: Config) -> float:
    """``flush_timeout_s``: the argument (checked: a one-line error), else the configuration's
    (``GREENTRACK_FLUSH_TIMEOUT_S`` or the config file's ``flush_timeout_s``, checked when
    loaded), else :data:`FLUSH_TIMEOUT_S`."""
    if given is not None:
        from greentrack.config import check_flush_timeout_s

        return check_flush_timeout_s(given, "flush_timeout_s")
    return float(getattr(config, "flush_timeout_s", FLUSH_TIMEOUT_S))


def _meter_notes(meters: Sequence[Meter]) -> dict[str, str]:
    """``{device: one-line note of the assumptions behind its figure}`` from every meter's
    ``notes()`` (a meter without it, or one that fails, gives none)."""
    out: dict[str, str] = {}
    for m in meters:
        notes = getattr(m, "notes", None)
        if notes is None:
            continue
        try:
            got = notes()
        except Exception:  # a custom meter's bug never reaches the user's code
            continue
        if isinstance(got, Mapping):
            out.update({str(k): str(v) for k, v in got.items() if v})
    return out


# -- signals and exit ------------------------------------------------------------------------
_SIGNALS_INSTALLED = False
_PREVIOUS: dict[int, Any] = {}
_FINALISING: list[object] = []  # one token per stop() in progress (list ops are atomic)
_DEFERRED: list[int] = []  # signals that arrived meanwhile, delivered once the last one ends


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """While a run is finalised, SIGTERM, SIGHUP and SIGINT are recorded instead of acted on
    (a second Ctrl-C or SIGTERM a few ms after the first must not kill the final write); when
    the last finalisation ends they are delivered again, in order, each once."""
    token = object()
    sigint_before: Any = None
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError, TypeError):
            sigint_before = signal.signal(signal.SIGINT, _on_signal)
    _FINALISING.append(token)
    try:
        yield
    finally:
        _FINALISING.remove(token)
        if sigint_before is not None:
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signal.SIGINT, sigint_before)
        if not _FINALISING and _DEFERRED:
            pending = list(dict.fromkeys(_DEFERRED))
            _DEFERRED.clear()
            for signum in pending:
                signal.raise_signal(signum)  # handled on the main thread, as if it came now


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM / SIGHUP: finalise active runs as ``interrupted``, then act as before. Any of
    them (and SIGINT, whose handler this is only while a run is finalised) arriving during a
    finalisation waits for its end."""
    if _FINALISING:
        _DEFERRED.append(signum)
        return
    if signum == signal.SIGINT:  # (a stale handler) act as Python does
        _chain(signum, frame)
        return
    token = object()
    _FINALISING.append(token)  # first thing: a second signal from here on is deferred
    try:
        for run in reversed(active_runs()):
            run.stop("interrupted", f"signal {signal.Signals(signum).name}")
    finally:
        _FINALISING.remove(token)
    _DEFERRED.clear()  # what arrived meanwhile is covered by acting on this one now
    _chain(signum, frame)


def _chain(signum: int, frame: Any) -> None:
    default = signal.default_int_handler if signum == signal.SIGINT else None
    previous = _PREVIOUS.get(signum, default)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_on_sigterm = _on_signal  # (the name earlier versions exported)


def _install_signal_handlers() -> None:
    """SIGTERM (and SIGHUP) finalise active runs as ``interrupted``, then act as before."""
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            _PREVIOUS[sig] = signal.signal(sig, _on_signal)
        except (ValueError, OSError):
            continue
    _SIGNALS_INSTALLED = True


@atexit.register
def _stop_at_exit() -> None:
    for run in reversed(active_runs()):
        run.stop("finished" if run.error is None else "failed")


# -- fork --------------------------------------------------------------------------------------
def _after_fork_in_child() -> None:
    """A fork()ed child (a DataLoader worker, a multiprocessing pool, a bare os.fork) gets a
    copy of every active run, with locks possibly held by threads that do not exist in it.
    Each copy becomes inert: no threads, no writes, ``stop()`` and ``phase()`` do nothing, its
    locks are new; the parent's run is untouched. The child's own runs start afresh."""
    global _ACTIVE_LOCK
    _ACTIVE_LOCK = threading.Lock()
    runs = list(_ACTIVE)
    _ACTIVE.clear()
    _FINALISING.clear()
    _DEFERRED.clear()
    _writer_mod._SHARED_LOCK = threading.Lock()  # the child never uses its parent's connections
    for run in runs:
        run._make_inert()


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- track ----------------------------------------------------------------------------------
class _Tracker:
    """What ``track(...)`` returns: a decorator, a context manager, and a run factory."""

    def __init__(self, name: str | None, kwargs: dict[str, Any]) -> None:
        self.name = name
        self.kwargs = kwargs
        self._run: Run | None = None

    def run(self, name: str | None = None) -> Run:
        return Run(self.name or name, **self.kwargs)

    def start(self) -> Run:
        return self.run().start()

    def __enter__(self) -> Run:
        self._run = self.run()
        return self._run.__enter__()

    def __exit__(self, *exc: Any) -> None:
        assert self._run is not None
        run, self._run = self._run, None
        run.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        name = self.name or getattr(fn, "__name__", "run")
        import inspect

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kw: Any) -> Any:
                with Run(name, **self.kwargs):
                    return await fn(*args, **kw)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            with Run(name, **self.kwargs):
                return fn(*args, **kw)

        return wrapper  # type: ignore[return-value]


@overload
def track(fn: F, /) -> F: ...
@overload
def track(name: str | None = None, /, **kwargs: Any) -> _Tracker: ...
def track(fn_or_name: Any = None, /, **kwargs: Any) -> Any:
    """Track a function (``@track``, ``@track(...)``) or a block (``with track(...) as run``).

    Keyword arguments are those of :class:`Run`: ``project``, ``params``, ``tags``, ``region``,
    ``db``, ``interval_s``, ``checkpoint_s``, ``pue``, ``budget_kwh``, ``budget_co2e_g``,
    ``meters``, ``source``, ``csv``, ``csv_options``, ``cpu_share``, ``flush_timeout_s``.
    """
    if callable(fn_or_name):
        return _Tracker(None, kwargs)(fn_or_name)
    if "name" in kwargs:
        fn_or_name = kwargs.pop("name")
    return _Tracker(fn_or_name, kwargs)
