"""Prometheus: ``/metrics`` for this process's runs, and an exporter of a store's recent runs.

``pip install 'greentrack[prometheus]'`` (``prometheus-client``). Live runs::

    gt.track("train", prometheus_port=9464)          # or GREENTRACK_PROMETHEUS_PORT=9464
    greentrack run --prometheus-port 9464 -- python train.py

A store, for a team's Prometheus::

    greentrack exporter --db postgresql+psycopg://... --port 9465

Metrics (base units, ``_total`` for counters, as Prometheus' naming conventions ask):

* ``greentrack_energy_joules_total{run_id,project,component,device,method}`` (counter): the
  device's cumulative energy, PUE not applied — the figure the store gets at each checkpoint;
* ``greentrack_power_watts{run_id,project,component,device,method}`` (gauge): mean power over the
  last checkpoint interval (energy difference / time), not an instantaneous reading; in the
  exporter, the mean over the run so far (energy / duration);
* ``greentrack_co2e_grams_total{run_id,project}`` (counter): while running, energy × PUE × the
  intensity at the run's start (an estimate); at stop and in the exporter, the run's
  interval-by-interval accounting. At stop the value can step once, either way.
* ``greentrack_run_running{run_id,project}`` (gauge): 1 while the run runs, 0 once it stopped.

Values change at each checkpoint (every ``checkpoint_s``, default 10 s), on the checkpoint thread;
the HTTP server is prometheus-client's own daemon thread, so a scrape never touches the training
thread. The process keeps the last :data:`KEEP_STOPPED` stopped runs beside the live ones (so the
final figures are scraped too). A port already in use is a warning on the run, not an error.

Label cardinality of the exporter is bounded: at most ``--max-runs`` runs (default 50, at most
:data:`MAX_RUNS_LIMIT`) started within ``--since`` (default 24 h), plus those still running, each
with its devices — so ``max_runs × devices`` series per metric.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from greentrack.errors import ConfigError
from greentrack.integrations._live import DeviceFigure, FigureTracker, LiveFigures

__all__ = [
    "ENV_ADDR",
    "ENV_PORT",
    "KEEP_STOPPED",
    "MAX_RUNS_LIMIT",
    "PrometheusListener",
    "StoreCollector",
    "check_port",
    "listener",
    "serve_store",
]

ENV_PORT = "GREENTRACK_PROMETHEUS_PORT"
ENV_ADDR = "GREENTRACK_PROMETHEUS_ADDR"
"""Address the live runs' endpoint binds to (default ``127.0.0.1``; ``0.0.0.0`` for a remote
Prometheus)."""
KEEP_STOPPED = 20
"""Stopped runs a process keeps serving beside its live ones."""
MAX_RUNS_LIMIT = 1000
"""Most runs the exporter serves (label cardinality)."""

_LABELS = ["run_id", "project", "component", "device", "method"]


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError as e:
        raise ConfigError(
            f"prometheus_port needs prometheus-client ({e}): pip install 'greentrack[prometheus]'"
        ) from None
    return prometheus_client


def check_port(value: Any, what: str) -> int:
    """A TCP port 1..65535, or a one-line ConfigError naming ``what``."""
    try:
        port = int(str(value).strip())
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise ConfigError(f"{what}={value!r}: give a TCP port number from 1 to 65535, e.g. 9464")
    return port


def _families(figures: list[tuple[LiveFigures, bool]]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    energy = CounterMetricFamily(
        "greentrack_energy_joules",
        "Cumulative device energy of a run (PUE not applied), by measurement method.",
        labels=_LABELS,
    )
    power = GaugeMetricFamily(
        "greentrack_power_watts",
        "Mean device power over the run's last checkpoint interval.",
        labels=_LABELS,
    )
    co2e = CounterMetricFamily(
        "greentrack_co2e_grams",
        "CO2e of a run (PUE applied): live estimate at the start's intensity, accounted at stop.",
        labels=["run_id", "project"],
    )
    running = GaugeMetricFamily(
        "greentrack_run_running",
        "1 while the run runs, 0 once stopped.",
        labels=["run_id", "project"],
    )
    for f, live in figures:
        for d in f.devices:
            labels = [f.run_id, f.project, d.component, d.device, d.method]
            energy.add_metric(labels, d.energy_j)
            if d.power_w is not None:
                power.add_metric(labels, d.power_w)
        if f.co2e_g is not None:
            co2e.add_metric([f.run_id, f.project], f.co2e_g)
        running.add_metric([f.run_id, f.project], 1.0 if live else 0.0)
    yield from (energy, power, co2e, running)


class _LiveCollector:
    """The process's runs, as the last figures their listeners handed over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, LiveFigures] = {}
        self._stopped: OrderedDict[str, LiveFigures] = OrderedDict()

    def update(self, figures: LiveFigures) -> None:
        with self._lock:
            if figures.final:
                self._live.pop(figures.run_id, None)
                self._stopped[figures.run_id] = figures
                self._stopped.move_to_end(figures.run_id)
                while len(self._stopped) > KEEP_STOPPED:
                    self._stopped.popitem(last=False)
            elif figures.run_id not in self._stopped:
                self._live[figures.run_id] = figures

    def collect(self) -> Iterator[Any]:
        with self._lock:
            items = [(f, True) for f in self._live.values()]
            items += [(f, False) for f in self._stopped.values()]
        yield from _families(items)


class _Endpoint:
    """One ``/metrics`` server of this process."""

    def __init__(self, port: int, addr: str) -> None:
        client = _client()
        self.port, self.addr = port, addr
        self.collector = _LiveCollector()
        self.registry = client.CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.server, self.thread = client.start_http_server(port, addr, registry=self.registry)


_ENDPOINTS: dict[tuple[str, int], _Endpoint] = {}
_ENDPOINTS_LOCK = threading.Lock()


def _endpoint(port: int, addr: str) -> _Endpoint:
    with _ENDPOINTS_LOCK:
        ep = _ENDPOINTS.get((addr, port))
        if ep is None:
            ep = _ENDPOINTS[(addr, port)] = _Endpoint(port, addr)
        return ep


class PrometheusListener:
    """Publishes one run's figures on this process's ``/metrics`` endpoint (a run listener:
    :meth:`on_checkpoint` on the checkpoint thread, :meth:`on_stop` at stop)."""

    def __init__(self, port: int, addr: str = "127.0.0.1") -> None:
        self.port, self.addr = port, addr
        self._figures = FigureTracker()
        self._endpoint: _Endpoint | None = None
        self._failed = False

    def _publish(self, run: Any, figures: LiveFigures) -> None:
        if self._failed:
            return
        if self._endpoint is None:
            try:
                self._endpoint = _endpoint(self.port, self.addr)
            except OSError as e:  # the port is taken: the run goes on without the endpoint
                self._failed = True
                run.warn(
                    f"prometheus: cannot serve /metrics on {self.addr}:{self.port} "
                    f"({e.strerror or e}); choose another prometheus_port",
                    source="prometheus",
                )
                return
        self._endpoint.collector.update(figures)

    def on_checkpoint(self, run: Any, checkpoint: Any) -> None:
        self._publish(run, self._figures.from_checkpoint(run, checkpoint))

    def on_stop(self, run: Any, summary: Any) -> None:
        self._publish(run, self._figures.from_summary(run, summary))


def listener(run: Any, options: Mapping[str, Any]) -> PrometheusListener | None:
    """The registry's factory: the listener for ``track(prometheus_port=...)`` or
    ``GREENTRACK_PROMETHEUS_PORT``; None when neither is set. Bad input (a port that is not one,
    the package missing) raises a one-line ConfigError before the user's code runs. Binds
    nothing yet: the port is opened at the first checkpoint, on the checkpoint thread."""
    port, what = options.get("prometheus_port"), "prometheus_port"
    if port is None:
        port, what = os.environ.get(ENV_PORT) or None, ENV_PORT
    if port is None or port is False:
        return None
    number = check_port(port, what)
    _client()
    addr = os.environ.get(ENV_ADDR) or "127.0.0.1"
    return PrometheusListener(number, addr)


# -- the exporter of a store ----------------------------------------------------------------------
class StoreCollector:
    """A store's recent runs, read at each scrape (``greentrack exporter``).

    Args:
        db_url: the store.
        max_runs: most runs served (newest first), 1..:data:`MAX_RUNS_LIMIT`.
        since_s: only runs started within this many seconds (running ones always).
    """

    def __init__(self, db_url: str | None, *, max_runs: int = 50, since_s: float = 86_400.0):
        if not 0 < max_runs <= MAX_RUNS_LIMIT:
            raise ConfigError(f"--max-runs {max_runs}: give 1 to {MAX_RUNS_LIMIT}")
        self.db_url, self.max_runs, self.since_s = db_url, max_runs, since_s

    def figures(self) -> list[tuple[LiveFigures, bool]]:
        """The served runs' figures, newest first, with whether each is running."""
        from datetime import UTC, datetime, timedelta

        from greentrack.report.data import store
        from greentrack.store.queries import list_runs, run_objects

        since = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=self.since_s)
        with store(self.db_url) as conn:
            rows = list_runs(conn, since=since, limit=self.max_runs)
            running = list_runs(conn, status="running", limit=self.max_runs)
            ids = {r["id"] for r in rows}
            rows += [r for r in running if r["id"] not in ids]
            objs = run_objects(conn, rows[: self.max_runs])
        out = []
        for o in objs:
            duration = o.get("duration_s") or 0.0
            comps = [*o.get("components", []), *o.get("node_power", [])]  # the node: its own
            seen = [c["device"] for c in comps]
            devices = [
                DeviceFigure(
                    c["component"],
                    # one series per device: a device id on several ranks gets its rank
                    c["device"] if seen.count(c["device"]) == 1 else f"{c['device']}@{c['rank']}",
                    c["method"] or "",
                    float(c["energy_j"] or 0.0),
                    float(c["energy_j"] or 0.0) / duration if duration > 0 else None,
                )
                for c in comps
            ]
            co2e = o.get("co2e_g")
            figures = LiveFigures(
                run_id=o["id"],
                project=o.get("project") or "",
                name=o.get("name") or "",
                duration_s=duration,
                energy_j=float(o.get("energy_j") or 0.0),  # the components' (the node beside)
                pue=o.get("pue") or 1.0,
                devices=tuple(devices),
                co2e_g=co2e,
                co2e_basis="accounted" if co2e is not None else None,
                g_per_kwh=None,
                final=o.get("status") != "running",
                node_energy_j=o.get("node_energy_j"),
            )
            out.append((figures, o.get("status") == "running"))
        return out

    def collect(self) -> Iterator[Any]:
        yield from _families(self.figures())


def serve_store(
    db_url: str | None,
    port: int,
    *,
    addr: str = "127.0.0.1",
    max_runs: int = 50,
    since_s: float = 86_400.0,
) -> Any:
    """Serve ``/metrics`` for a store's recent runs on ``addr:port``; returns the HTTP server
    (``server.shutdown()`` stops it). Runs in prometheus-client's daemon thread."""
    client = _client()
    collector = StoreCollector(db_url, max_runs=max_runs, since_s=since_s)
    collector.figures()  # a wrong URL or an old schema fails here, once, not at every scrape
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, _thread = client.start_http_server(port, addr, registry=registry)
    except OSError as e:
        raise ConfigError(
            f"cannot serve on {addr}:{port} ({e.strerror or e}); choose another --port"
        ) from None
    return server
