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
"""

from __future__ import annotations

import atexit
import contextlib
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
from typing import Any, TypeVar, overload

from greentrack import hardware
from greentrack.config import Config, check_cpu_share, load_config
from greentrack.distributed import Placement, open_placement_meters, place
from greentrack.errors import (
    ConfigError,
    DatabaseURLError,
    GreentrackError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
)
from greentrack.meters.base import DeviceReading, Meter
from greentrack.sampler import Sampler
from greentrack.store.dbapi import parse_url
from greentrack.store.writer import Checkpoint, Spool, StoreWriter
from greentrack.units import J_PER_KWH

__all__ = ["ComponentEnergy", "PhaseSummary", "Run", "RunSummary", "active_runs", "track"]

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
            f"  energy {self.energy_j:.1f} J = {self.energy_kwh:.6f} kWh (device)"
            + (f", x PUE {self.pue:g}" if self.pue != 1.0 else ""),
        ]
        for c in self.components:
            lines.append(f"    {c.device:<20} {c.energy_j:12.1f} J  [{c.method}]")
        if self.co2e_g is not None and self.intensity_source:
            src = self.intensity_source
            lines.append(
                f"  CO2e {self.co2e_g:.2f} g ({src.get('name')} {src.get('zone')} "
                f"{src.get('kind')} {src.get('period')})"
            )
            if self.co2e_g_annual is not None:
                lines.append(f"  CO2e at the annual average: {self.co2e_g_annual:.2f} g")
        for p in self.phases:
            lines.append(
                f"  phase {p.name:<18} x{p.count:<4} {p.duration_s:9.2f} s {p.energy_j:12.1f} J"
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
        run_id: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        measure_host: bool = True,
        cpu_share: str | None = None,
        config: Config | None = None,
    ) -> None:
        self.config = config or load_config()
        if cpu_share is not None:
            self.config = replace(self.config, cpu_share=check_cpu_share(cpu_share, "cpu_share"))
        self._given_id = run_id or os.environ.get("GREENTRACK_RUN_ID")
        self.id = self._given_id or uuid.uuid4().hex
        self.name = _fits("run name", str(name or "run"), ConfigError)
        self.project = _fits(
            "project name",
            str(project or os.environ.get("GREENTRACK_PROJECT") or "default"),
            ConfigError,
        )
        self.params = {
            _fits("parameter name", str(k), ConfigError): str(v) for k, v in (params or {}).items()
        }
        self.tags = {
            _fits("tag name", str(k), ConfigError): str(v) for k, v in (tags or {}).items()
        }
        self.region_arg = region
        self.db_url = db or self.config.db_url
        self.interval_s = float(interval_s or self.config.interval_s)
        self.checkpoint_s = float(checkpoint_s or self.config.checkpoint_s)
        self.pue = float(pue if pue is not None else self.config.pue)
        self.budget_kwh = budget_kwh
        self.budget_co2e_g = budget_co2e_g
        self.source_name = source
        self.csv = [csv] if isinstance(csv, str) else list(csv or [])
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
        self._phase_stack: list[_OpenPhase] = []
        self._phase_totals: dict[str, dict[str, Any]] = {}
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
        self._spool_failed = False
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
            except GreentrackError:
                pass
        self._sampler = Sampler(
            meters,
            interval_s=self.interval_s,
            checkpoint_s=self.checkpoint_s,
            on_checkpoint=self._on_checkpoint,
            on_warning=self._on_warning,
        )
        for w in self._placement.warnings:
            self._on_warning("distributed", w)
        self.status = "running"
        self._sampler.start()
        self.t0_mono, self.t0_wall = self._sampler.t0_mono, self._sampler.t0_wall  # the baseline
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
        _install_signal_handlers()
        return self

    def stop(self, status: str | None = None, error: str | None = None) -> RunSummary:
        """Stop measuring, write the final state, return the summary. Idempotent."""
        with self._state_lock:
            if self.status not in ("running",):
                return self.summary()
            self.status = status or "finished"
            self.error = error
        assert self._sampler is not None
        while self._phase_stack:  # phases left open by an exception are closed at the end
            self._close_phase(self._phase_stack[-1])
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
            self._checkpoint(self._sampler.take_pending(), final=True)
        except Exception:  # the user's program goes on; what was delivered before stays
            log.exception("greentrack: internal error in the final checkpoint")
        if self._writer is not None:
            self._writer.close()
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
        """A named, nestable phase; its energy comes from meter reads at its boundaries."""
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
        with self._state_lock:
            parent = self._phase_stack[-1].path + "/" if self._phase_stack else ""
            if len(parent + name) > PATH_MAX:
                raise GreentrackError(
                    f"phase path {(parent + name)[:37] + '...'!r} is {len(parent + name)} "
                    f"characters long (nested phases); the store keeps paths up to {PATH_MAX}"
                )
            opened = _OpenPhase(
                uuid.uuid4().hex,
                name,
                parent + name,
                len(self._phase_stack),
                t0_mono,
                t0_wall,
                readings,
            )
            self._phase_stack.append(opened)
        return opened

    def _close_phase(self, opened: _OpenPhase) -> None:
        assert self._sampler is not None
        _cuda_synchronize()
        t1_mono, t1_wall, end = self._sampler.read_now()
        per_device = {
            d: r.energy_j - (opened.start[d].energy_j if d in opened.start else 0.0)
            for d, r in end.items()
        }
        energy_j = sum(per_device.values())
        duration_s = t1_mono - opened.t0_mono
        with self._state_lock:
            if opened in self._phase_stack:
                self._phase_stack.remove(opened)
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
            if len(tot["spans"]) < 10_000:  # for CO2e; bounded (beyond: mean intensity)
                tot["spans"].append((opened.t0_wall, t1_wall, energy_j))

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
                _fits("parameter name", k)
                self.params[k] = self._pending_params[k] = str(v)

    def set_tags(self, **tags: Any) -> None:
        """Add tags to the run."""
        with self._state_lock:
            for k, v in tags.items():
                _fits("tag name", k)
                self.tags[k] = self._pending_tags[k] = str(v)

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
        """Record a warning on the run."""
        self._on_warning(source, message)

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
            phases={p: t["spans"] for p, t in self._phase_totals.items()},
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

    # -- checkpoints (sampler thread, and the final one on the caller's thread) -----------------
    def _on_warning(self, source: str, message: str) -> None:
        if message not in _LOGGED:  # every run records it; the terminal sees it once
            _LOGGED.add(message)
            log.warning("greentrack: %s", message)
        with self._state_lock:
            self._warnings.append(message)
            self._pending_events.append(
                {
                    "id": uuid.uuid4().hex,
                    "t_s": time.time(),
                    "level": "warning",
                    "source": source,
                    "message": message,
                }
            )

    def _prefetch(self) -> None:
        """On the checkpoint thread, while training runs: resolve the zone and intensity source
        and import what accounting needs, so that ``stop()`` only does arithmetic."""
        if self._prefetched:
            return
        self._prefetched = True
        try:
            from greentrack.carbon.runcarbon import prepare

            self._carbon_ctx = prepare(self.region_arg, self.source_name, self.csv, self.config)
            g = self._carbon_ctx.g_per_kwh_at(self.t0_wall)
            with self._state_lock:
                self._carbon["g_per_kwh_now"] = g
        except GreentrackError as e:
            self._carbon_ctx = e  # reported (once) when stop() accounts

    def _on_checkpoint(self, points: list[tuple[str, str, float, float, float | None]]) -> None:
        self._prefetch()
        try:
            self._checkpoint(points, final=False)
        except Exception as e:
            log.exception("greentrack: checkpoint failed: %s", e)

    def _run_fields(self, final: bool) -> dict[str, Any]:
        if self._meta is None:
            from greentrack.metadata import collect, secret_values

            self._meta = collect(self._device_models, secret_values(self.config.providers))
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
        assert self._sampler is not None
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
            )
            self._pending_phases, self._pending_metrics, self._pending_events = [], [], []
            self._pending_params, self._pending_tags = {}, {}
        self._deliver(cp, final=final)

    def _deliver(self, cp: Checkpoint, *, final: bool) -> None:
        assert self._writer is not None
        with self._io_lock:
            if self._held is not None:
                cp, self._held = self._held.merge(cp), None
            if not final and time.monotonic() < self._retry_after:
                self._to_spool(cp)
                return
            try:
                for path in self._spool.pending(self.id, self.rank):
                    self._spool.replay(self._writer, path)
                refused = self._writer.write(cp)
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
                if not isinstance(e, (StoreError, DatabaseURLError)):
                    log.exception("greentrack: internal error while writing to the store")
                self._retry_after = time.monotonic() + min(30.0, max(2.0, self.checkpoint_s))
                self._to_spool(cp)
                if final or not self._store_warned:
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
            f"{what} {shown!r} is {len(name)} characters long; use 1 to {NAME_MAX} characters"
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
    """Runs started in this process and not yet stopped."""
    with _ACTIVE_LOCK:
        return list(_ACTIVE)


# -- signals and exit ------------------------------------------------------------------------
_SIGNALS_INSTALLED = False
_PREVIOUS: dict[int, Any] = {}


def _on_sigterm(signum: int, frame: Any) -> None:
    for run in reversed(active_runs()):
        run.stop("interrupted", f"signal {signal.Signals(signum).name}")
    previous = _PREVIOUS.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_signal_handlers() -> None:
    """SIGTERM (and SIGHUP) finalise active runs as ``interrupted``, then act as before."""
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            _PREVIOUS[sig] = signal.signal(sig, _on_sigterm)
        except (ValueError, OSError):
            continue
    _SIGNALS_INSTALLED = True


@atexit.register
def _stop_at_exit() -> None:
    for run in reversed(active_runs()):
        run.stop("finished" if run.error is None else "failed")


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
    ``meters``, ``source``, ``csv``, ``cpu_share``.
    """
    if callable(fn_or_name):
        return _Tracker(None, kwargs)(fn_or_name)
    if "name" in kwargs:
        fn_or_name = kwargs.pop("name")
    return _Tracker(fn_or_name, kwargs)
