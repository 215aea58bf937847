"""The tracked run: :class:`Run` — its lifecycle (start, stop, the context manager), its phases and
its metrics. Create one with :func:`greentrack.tracker.track`.

What a run is made of besides: :mod:`greentrack.lifecycle` (active runs, the current run,
signals, exit, fork; listeners and their registry), :mod:`greentrack.summary` (the summary and
the checkpoints), :mod:`greentrack.budget` (CO2e, budget, forecast) and
:mod:`greentrack.store.delivery` (write, retry, spool, deadlines).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from greentrack import hardware, lifecycle
from greentrack.budget import RunCost
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
from greentrack.errors import ConfigError, GreentrackError
from greentrack.meters.base import DeviceReading, Meter
from greentrack.meters.nodepower import split_node
from greentrack.sampler import Sampler, block_signals
from greentrack.security import Masker, check_run_id
from greentrack.store.dbapi import parse_url
from greentrack.store.delivery import Delivery, resolve_flush_timeout_s
from greentrack.store.limits import PATH_MAX, check_name, check_step
from greentrack.store.spool import Spool
from greentrack.summary import (
    RunSummary,
    _utc,
    book_phase,
    make_checkpoint,
    meter_notes,
    phase_energy,
    start_checkpoint,
    summarize,
    sync_accelerators,
)

__all__ = ["Run"]

log = logging.getLogger("greentrack")
_LOGGED: set[str] = set()  # warnings already printed by this process
_SPANS_MAX = 10_000
"""Occurrences of one phase path whose CO2e is accounted (and stored) one by one; later ones are
booked together at the mean intensity over the time they span (so the path's total stays whole)."""


class _OpenPhase:
    """A phase being measured (a plain class: a dataclass costs ~0.4 ms to define, at import)."""

    __slots__ = ("depth", "id", "name", "path", "start", "t0_mono", "t0_wall")

    def __init__(
        self,
        id: str,
        name: str,
        path: str,
        depth: int,
        t0_mono: float,
        t0_wall: float,
        start: dict[str, DeviceReading],
    ) -> None:
        self.id, self.name, self.path, self.depth = id, name, path, depth
        self.t0_mono, self.t0_wall, self.start = t0_mono, t0_wall, start


class Run:
    """One tracked run. Create it with :func:`~greentrack.tracker.track`; use it as a context
    manager or :meth:`start` / :meth:`stop`.

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
        integrations: the integrations' keywords (``track(mlflow=True)`` puts them here; see
            :mod:`greentrack.lifecycle`).
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
        integrations: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config or load_config()
        if cpu_share is not None:
            self.config = replace(self.config, cpu_share=check_cpu_share(cpu_share, "cpu_share"))
        # one masking step for every user string kept or shown (URL passwords, tokens)
        self._mask = Masker(self.config.secrets())
        self._given_id = run_id or os.environ.get("GREENTRACK_RUN_ID")
        if self._given_id:
            check_run_id(self._given_id, "run_id" if run_id else "GREENTRACK_RUN_ID")
        self.id = self._given_id or uuid.uuid4().hex
        self.name = self._mask(check_name("run name", str(name or "run"), ConfigError))
        project = str(project or os.environ.get("GREENTRACK_PROJECT") or "default")
        self.project = self._mask(check_name("project name", project, ConfigError))
        self.params = {
            self._mask(check_name("parameter name", str(k), ConfigError)): self._mask(str(v))
            for k, v in (params or {}).items()
        }
        self.tags = {
            self._mask(check_name("tag name", str(k), ConfigError)): self._mask(str(v))
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
        self.budget_kwh, self.budget_co2e_g = budget_kwh, budget_co2e_g
        self.source_name = source
        self.csv = [csv] if isinstance(csv, str) else list(csv or [])
        self.csv_options = dict(csv_options or {})
        # rank / world_size None: found at start() (greentrack.distributed); given: taken as is
        self._placement = Placement(rank or 0, world_size or 1, measure_host=measure_host)
        self._auto_place = rank is None and world_size is None
        self.rank, self.world_size = self._placement.rank, self._placement.world_size
        self.owner = self.rank == 0
        self.measure_host = measure_host
        self.status = "created"
        self.error: str | None = None
        self.flush_timeout_s = resolve_flush_timeout_s(flush_timeout_s, self.config)
        self._meters_override = list(meters) if meters is not None else None
        self._integrations = dict(integrations or {})
        self._listeners = lifecycle.Listeners()
        self._sampler: Sampler | None = None
        self._delivery = Delivery(
            Spool.for_store(self.config.spool_dir, self.db_url),
            checkpoint_s=self.checkpoint_s,
            flush_timeout_s=self.flush_timeout_s,
            warn=self._on_warning,
            note=self._note,
        )
        self._cost = RunCost()
        self._carbon = self._cost.carbon  # the figures summaries and checkpoints read
        self._state_lock = threading.RLock()
        self._seq = 0
        self._meta: dict[str, Any] | None = None
        self._device_models: dict[str, str] = {}
        self._notes: dict[str, str] = {}
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
        self._event_counts: dict[tuple[str, str], int] = {}  # (source, message) -> times seen
        self._flops: float | None = None
        self._progress: tuple[float, float] | None = None
        self._plan: dict[str, Any] | None = lifecycle.plan_from_env()
        self._inert = False  # a fork()ed child's copy: no threads, no writes
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
            self._cost.ctx = prepare(
                self.region_arg,
                self.source_name,
                self.csv,
                self.config,
                csv_options=self.csv_options,
                start_s=time.time(),
            )
        self._delivery.connect(self.db_url)
        if self._auto_place:  # in a distributed job: every rank attaches to one run
            found = place(self._given_id)
            self._placement = replace(found, measure_host=found.measure_host and self.measure_host)
            self.id = self._placement.run_id or self.id
            self.rank, self.world_size = self._placement.rank, self._placement.world_size
            self.owner, self.measure_host = self._placement.owner, self._placement.measure_host
        for name, listener in lifecycle.listeners_for(self, self._integrations):
            self._listeners.add(listener, name)
        meters = self._meters_override
        if meters is None:
            meters = open_placement_meters(self.config, self._placement)
        for m in meters:
            try:
                self._device_models.update(m.describe())
            except Exception:  # a custom meter's bug never reaches the user's code
                pass
        self._notes = meter_notes(meters)
        self._sampler = Sampler(
            meters,
            interval_s=self.interval_s,
            checkpoint_s=self.checkpoint_s,
            on_checkpoint=self._on_checkpoint,
            on_warning=self._on_warning,
            on_tick=self._delivery.watchdog,
        )
        for w in self._placement.warnings:
            self._on_warning("distributed", w)
        joined = joined_event(self._placement, self.id, time.time())
        if joined is not None:  # every rank that joins is listed, even one measuring nothing
            with self._state_lock:
                self._pending_events.append(joined)
        self.status = "running"
        self._sampler.start(on_baseline=self._set_baseline)  # durable (below) when it returns
        lifecycle.register(self)
        return self

    def _set_baseline(self, t0_mono: float, t0_wall: float) -> None:
        self.t0_mono, self.t0_wall = t0_mono, t0_wall  # before the first checkpoint is built
        self._delivery.mark_start(start_checkpoint(self))  # durable, before any thread starts

    def _make_inert(self) -> None:
        """In a fork()ed child: this copy of the parent's run does nothing from now on."""
        self._inert = True
        self._state_lock = threading.RLock()
        self._delivery.after_fork_in_child()
        if self._sampler is not None:
            self._sampler.after_fork_in_child()

    def stop(self, status: str | None = None, error: str | None = None) -> RunSummary:
        """Stop measuring, write the final state, return the summary. Idempotent.

        SIGTERM, SIGINT and SIGHUP arriving meanwhile are deferred until the final state is
        written. The final write has one deadline, ``flush_timeout_s`` (default 10 s): past it
        the final state goes to the spool, with a warning, and ``stop()`` returns.
        """
        if self._inert:  # a fork()ed child's copy of its parent's run: nothing to do
            return self.summary()
        with lifecycle.signals_deferred():
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
        lifecycle.unregister(self)
        try:
            self._cost.account(self)
        except GreentrackError as e:
            self._on_warning("carbon", f"CO2e not computed: {e}")
        except Exception as e:
            log.exception("greentrack: internal error while accounting CO2e")
            self._on_warning("carbon", f"CO2e not computed: internal error {type(e).__name__}: {e}")
        try:
            self._cost.account_embodied(self)
        except GreentrackError as e:
            self._on_warning("embodied", f"embodied emissions not computed: {e}")
        except Exception as e:
            log.exception("greentrack: internal error while accounting embodied emissions")
            self._on_warning("embodied", f"embodied not computed: {type(e).__name__}: {e}")
        try:
            cp = make_checkpoint(self, self._sampler.take_pending(), final=True)
        except Exception:  # the user's program goes on; what was delivered before stays
            log.exception("greentrack: internal error in the final checkpoint")
        else:
            final = None
            if self._listeners:  # beside the final write, within the same deadline
                final = self._listeners.final(self, cp, self.summary(), block_signals)
            self._delivery.flush(cp, deadline, thread_init=block_signals)
            self._listeners.wait(self, final, deadline)
        self._delivery.close()
        return self.summary()

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
        check_name("phase name", name)
        sync_accelerators()
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
        sync_accelerators()
        t1_mono, t1_wall, end = self._sampler.read_now()
        per_device, phase_methods = phase_energy(
            self._sampler.meters, opened.start, end, opened.t0_mono, t1_mono
        )
        energy_j, node_j = split_node(per_device)  # the node is beside the components
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
            if node_j is not None:  # in memory only: the phase's CO2e on the node's energy
                self._pending_phases[-1]["node_energy_j"] = node_j
            book_phase(self._phase_totals, self._pending_phases[-1], _SPANS_MAX)

    def log(self, step: int | None = None, **metrics: float) -> None:
        """Record metrics, e.g. ``run.log(step=3, val_acc=0.91, loss=0.2)``."""
        now = time.time()
        if step is not None:
            step = check_step(step)
        with self._state_lock:
            for key, value in metrics.items():
                check_name("metric name", key)
                v = float(value)
                self._last_metrics[key] = v
                self._pending_metrics.append({"key": key, "step": step, "value": v, "t_s": now})

    def log_params(self, **params: Any) -> None:
        """Add hyper-parameters to the run."""
        with self._state_lock:
            for k, v in params.items():
                k = self._mask(check_name("parameter name", k))
                self.params[k] = self._pending_params[k] = self._mask(str(v))

    def set_tags(self, **tags: Any) -> None:
        """Add tags to the run."""
        with self._state_lock:
            for k, v in tags.items():
                k = self._mask(check_name("tag name", k))
                self.tags[k] = self._pending_tags[k] = self._mask(str(v))

    def log_flops(self, flops: float) -> None:
        """Add floating-point operations (e.g. from :func:`greentrack.count_flops`)."""
        with self._state_lock:
            self._flops = (self._flops or 0.0) + float(flops)

    def log_units(self, n: float, unit: str = "unit") -> None:
        """Count functional units done (SCI's R), e.g. ``run.log_units(64, "images")``;
        cumulative, stored as the metric ``units/<unit>``. ``greentrack report --sci`` divides
        the run's operational + embodied CO2e by it."""
        count = float(n)
        if not (math.isfinite(count) and count >= 0):
            raise GreentrackError(f"log_units: n={n!r} must be a finite number >= 0")
        if not unit or not unit.replace("_", "").replace("-", "").isalnum() or not unit.isascii():
            raise GreentrackError(f"log_units: unit {unit!r} must be a word like images or tokens")
        key = f"units/{unit}"
        with self._state_lock:  # re-entrant: read and log under one hold
            self.log(**{key: self._last_metrics.get(key, 0.0) + count})

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
        from greentrack.scheduling.plan import should_pause

        return bool(should_pause(self._plan, time.time()))

    def warn(self, message: str, source: str = "user") -> None:
        """Record a warning on the run (masked and made storable like every stored string)."""
        self._on_warning(self._mask(str(source)), message)

    def add_listener(self, listener: Any) -> None:
        """Call ``listener.on_checkpoint(run, checkpoint)`` after each checkpoint (on the
        checkpoint thread, never the training thread; once more for the final one) and
        ``listener.on_stop(run, summary)`` at :meth:`stop`; both methods are optional. Every
        exception they raise becomes a warning on the run. See :mod:`greentrack.lifecycle`."""
        self._listeners.add(listener)

    @property
    def energy_j(self) -> float:
        """Device energy so far (sum over the components; the node's own figure is beside it,
        :attr:`node_energy_j`). Units: joules."""
        return self._split_node()[0]

    @property
    def node_energy_j(self) -> float | None:
        """The whole node's energy so far from its BMC, or None without a node meter. Units: J."""
        return self._split_node()[1]

    def _split_node(self) -> tuple[float, float | None]:
        latest = self._sampler.latest if self._sampler is not None else {}
        return split_node({d: r.energy_j for d, r in latest.items()})

    @property
    def over_budget(self) -> bool:
        """True when continuing one more step would exceed the budget.

        The next step's energy is estimated from the progress reported so far (energy per step)
        or, without progress, from the last sampling interval. Budgets count facility energy
        (device energy × PUE); the CO2e budget uses the intensity resolved at start.
        """
        return self._cost.over_budget(self)

    def summary(self) -> RunSummary:
        """The run's cost so far (or final, after stop)."""
        return summarize(self)

    # -- warnings, checkpoints and listeners (sampler thread; the final ones at stop) -----------
    def _on_warning(self, source: str, message: str) -> None:
        """Record a warning: on the run, as an ``events`` row with the next checkpoint, and on
        the terminal once per process."""
        row = self._event(source, message)  # masked: user's and greentrack's own, no secret kept
        if row["message"] not in _LOGGED:  # every run records it; the terminal sees it once
            _LOGGED.add(row["message"])
            log.warning("greentrack: %s", row["message"])
        with self._state_lock:
            self._warnings.append(row["message"])
            self._pending_events.append(row)

    def _event(self, source: str, message: str) -> dict[str, Any]:
        """A warning as an ``events`` row; the same id on every rank (a warning all ranks
        record is stored once)."""
        message = self._mask(str(message))
        key = (source, message)
        with self._state_lock:
            n = self._event_counts[key] = self._event_counts.get(key, -1) + 1
        t_s = time.time()
        return {"id": event_id(self.id, source, message, n), "t_s": t_s, "level": "warning",
                "source": source, "message": message}  # fmt: skip

    def _note(self, source: str, message: str) -> dict[str, Any]:
        """A warning recorded on the run whose ``events`` row goes into a checkpoint being
        spooled (the delivery's; it logs the message itself)."""
        with self._state_lock:
            self._warnings.append(message)
        return self._event(source, message)

    def _on_checkpoint(self, points: list[tuple[str, str, float, float, float | None]]) -> None:
        self._cost.prefetch(self)
        try:
            cp = make_checkpoint(self, points, final=False)
            self._delivery.deliver(cp, final=False)
        except Exception as e:
            log.exception("greentrack: checkpoint failed: %s", e)
            return
        self._listeners.notify(self, "on_checkpoint", cp)
