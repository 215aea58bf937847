"""MLflow: a run's energy and CO2e into the MLflow run the user already keeps.

``pip install 'greentrack[mlflow]'``. Enabled when an MLflow run is active in the thread that
starts the greentrack run (``with mlflow.start_run(): with gt.track(...)``), or with
``track(mlflow=True)`` / config ``[integrations] mlflow = true`` (then, without an active run, a
new MLflow run named after the greentrack run is created in the current experiment and ended
with it). ``track(mlflow=False)`` turns it off even under an active MLflow run.

What is logged (keys as MLflow shows them):

* metrics at every checkpoint (``step`` = milliseconds since the run's start):
  ``greentrack/energy_kwh`` (device energy, PUE not applied), ``greentrack/co2e_g`` (see
  :mod:`greentrack.integrations._live`: live estimate, then the accounted figure at stop),
  ``greentrack/energy_kwh/<device>`` and ``greentrack/power_w/<device>`` (mean power over the
  last checkpoint interval) per device (``gpu:0``, ``cpu:package-0``...);
* params: ``greentrack/run_id``, ``greentrack/region``, ``greentrack/intensity_source``,
  ``greentrack/methods`` (``gpu:0=counter, cpu:estimate=estimated``), set at stop;
* artifacts at stop: the price tag as ``greentrack/pricetag.md`` and ``greentrack/pricetag.json``
  (rendered from the store; from the run's summary when the store did not take it).

Everything goes through ``MlflowClient`` on a worker thread (:mod:`._worker`), never on the
training or checkpoint thread; a tracking server that is down or slow costs warnings on the
run, never the training. At stop greentrack waits at most :data:`STOP_DEADLINE_S` for it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from greentrack.errors import ConfigError
from greentrack.integrations._live import LiveFigures, metric_values
from greentrack.integrations._worker import WorkerListener

__all__ = ["STOP_DEADLINE_S", "MlflowListener", "listener"]

STOP_DEADLINE_S = 10.0
"""Longest wait at stop for MLflow to take the last metrics, params and artifacts. Units: s."""


class MlflowListener(WorkerListener):
    """Logs one greentrack run into one MLflow run (a run listener; calls on a worker thread).

    Args:
        mlflow_run_id: the MLflow run to log into (None: create one at the first checkpoint).
        tracking_uri: the tracking server or store (default: MLflow's current one).
        experiment_id: where a created run goes (default: MLflow's current experiment).
    """

    name = "mlflow"
    stop_deadline_s = STOP_DEADLINE_S

    def __init__(
        self,
        mlflow_run_id: str | None = None,
        *,
        tracking_uri: str | None = None,
        experiment_id: str | None = None,
    ) -> None:
        super().__init__()
        self.mlflow_run_id = mlflow_run_id
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.created = False
        self._client: Any = None

    # -- on the worker thread --------------------------------------------------------------------
    def _ensure(self, run: Any) -> tuple[Any, str]:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        if self.mlflow_run_id is None:
            experiment = self.experiment_id
            if experiment is None:
                import mlflow

                try:  # the experiment mlflow.start_run() would use (MLFLOW_EXPERIMENT_ID/_NAME)
                    experiment = mlflow.tracking.fluent._get_experiment_id()
                except AttributeError:
                    experiment = "0"
            created = self._client.create_run(
                experiment, run_name=str(run.name), tags={"greentrack.run_id": str(run.id)}
            )
            self.mlflow_run_id, self.created = created.info.run_id, True
        return self._client, self.mlflow_run_id

    def _log(self, run: Any, values: dict[str, float], step: int, t_ms: int) -> None:
        from mlflow.entities import Metric

        client, run_id = self._ensure(run)
        client.log_batch(run_id, metrics=[Metric(k, v, t_ms, step) for k, v in values.items()])

    def _final(self, run: Any, summary: Any, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Param

        self._log(run, values, step, int(time.time() * 1000))
        client, run_id = self._ensure(run)
        source = getattr(summary, "intensity_source", None) or {}
        methods = ", ".join(
            f"{c.device}={c.method}" for c in getattr(summary, "components", []) or []
        )
        params = {
            "greentrack/run_id": str(summary.id),
            "greentrack/region": str(summary.region or ""),
            "greentrack/intensity_source": str(
                source.get("name", "") if isinstance(source, dict) else source
            ),
            "greentrack/methods": methods[:6000],
        }
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        md, js = _pricetag(run, summary, time.monotonic() + STOP_DEADLINE_S / 2)
        with tempfile.TemporaryDirectory(prefix="greentrack-mlflow-") as tmp:
            for name, text in (("pricetag.md", md), ("pricetag.json", js)):
                path = Path(tmp) / name
                path.write_text(text, encoding="utf-8")
                client.log_artifact(run_id, str(path), artifact_path="greentrack")
        if self.created:
            status = {"finished": "FINISHED", "interrupted": "KILLED"}.get(summary.status, "FAILED")
            client.set_terminated(run_id, status)

    # -- the listener (on the checkpoint thread): the tasks --------------------------------------
    def checkpoint_task(self, run: Any, figures: LiveFigures) -> Callable[[], None]:
        values, step = metric_values(figures), int(figures.duration_s * 1000)
        t_ms = int(time.time() * 1000)
        return lambda: self._log(run, values, step, t_ms)

    def stop_task(self, run: Any, summary: Any, figures: LiveFigures) -> Callable[[], None]:
        values, step = metric_values(figures), int(figures.duration_s * 1000)
        return lambda: self._final(run, summary, values, step)


def _stored(run: Any, run_id: str, deadline: float) -> bool:
    """Wait (until ``deadline``, monotonic s) for the run's final state to be in the store: the
    listeners are told of the stop beside the final write."""
    from greentrack.errors import GreentrackError
    from greentrack.report.data import store
    from greentrack.store.queries import get_run

    while True:
        try:
            with store(getattr(run, "db_url", None)) as conn:
                if get_run(conn, run_id, detail=False).get("ended_at"):
                    return True
        except GreentrackError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _pricetag(run: Any, summary: Any, deadline: float) -> tuple[str, str]:
    """The run's price tag (Markdown, JSON) from the store; from the summary if it is not there
    by ``deadline`` (monotonic s)."""
    from greentrack.errors import GreentrackError

    try:
        from greentrack.report.pricetag import make_report

        if not _stored(run, summary.id, deadline):
            raise GreentrackError("its final state was not written in time")

        md = make_report([summary.id], db_url=getattr(run, "db_url", None), fmt="markdown").text
        js = make_report([summary.id], db_url=getattr(run, "db_url", None), fmt="json").text
        return md, js
    except GreentrackError as e:
        from greentrack.jsonout import dumps

        note = f"the store did not have this run ({str(e).splitlines()[0]}): run summary only"
        return f"{summary}\n\n({note})\n", dumps({"summary": summary.to_dict(), "note": note})


def listener(run: Any, options: Mapping[str, Any]) -> MlflowListener | None:
    """The registry's factory: the listener for a starting run, or None.

    ``options["mlflow"]``: ``track(mlflow=...)``. Without it, an MLflow run active in this thread
    enables it (looked for only when the program imported mlflow itself: nothing is imported
    otherwise), as does config ``[integrations] mlflow = true``. Touches no network.
    """
    enabled = options.get("mlflow")
    if enabled is False:
        return None
    wanted = getattr(getattr(run, "config", None), "integrations", None) or {}
    fluent = sys.modules.get("mlflow")
    active = fluent.active_run() if fluent is not None else None
    if active is None and not (enabled or wanted.get("mlflow")):
        return None
    if fluent is None:
        try:
            import mlflow as fluent
        except ImportError as e:
            raise ConfigError(
                f"mlflow=True needs mlflow ({e}): pip install 'greentrack[mlflow]'"
            ) from None
    run_id = active.info.run_id if active is not None else None
    return MlflowListener(run_id, tracking_uri=fluent.get_tracking_uri())
