"""What a run costs beyond its energy, and what it may cost: CO2e (operational and embodied), the
budget and the forecast.

One :class:`RunCost` per run. Its intensity inputs are checked at ``start()`` (a one-line error
before the user's code runs; ``ctx`` is then the resolved context), resolved and warmed on
the checkpoint thread (:meth:`RunCost.prefetch`, so that ``stop()`` only does arithmetic), and
accounted at ``stop()``
(:meth:`RunCost.account`, :meth:`RunCost.account_embodied`, with
:mod:`greentrack.carbon.runcarbon` and :mod:`greentrack.carbon.embodied`). The budget check and
the forecast use the intensity resolved for the run's start.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from greentrack.errors import GreentrackError, IntensityError
from greentrack.units import J_PER_KWH

__all__ = ["RunCost"]


class RunCost:
    """The carbon state of one run (the tracker's Run; every method takes it).

    ``carbon`` holds the figures (``region``, ``co2e_g``, ``co2e_g_annual``,
    ``intensity_source``, ``g_per_kwh_now`` (g/kWh, the intensity at the start, for budgets and
    forecasts), ``embodied_g``, ...) that summaries and checkpoints read; it is the run's
    ``_carbon``.
    """

    def __init__(self) -> None:
        self.carbon: dict[str, Any] = {}
        self.ctx: Any = None  # the CarbonContext, or the GreentrackError resolving it gave
        self._prefetched = False
        self._prefetch_lock = threading.Lock()
        self._resolved = threading.Event()  # set once prefetch() has finished (either way)
        self._budget_warned = False

    def prefetch(self, run: Any) -> None:
        """On the checkpoint thread, while training runs: resolve the zone and intensity source
        and import what accounting needs, so that ``stop()`` only does arithmetic. Runs once;
        a second caller returns at once (:meth:`account` waits for the first to finish)."""
        with self._prefetch_lock:
            if self._prefetched:
                return
            self._prefetched = True
        try:
            self._prefetch(run)
        finally:
            self._resolved.set()

    def _prefetch(self, run: Any) -> None:
        try:
            from greentrack.carbon.runcarbon import prepare, warm

            if self.ctx is None:  # resolved in start() unless it needed the network
                self.ctx = prepare(
                    run.region_arg,
                    run.source_name,
                    run.csv,
                    run.config,
                    csv_options=run.csv_options,
                )
            warm(self.ctx)
        except GreentrackError as e:
            self.ctx = e  # reported (once) when stop() accounts
            return
        try:  # for budgets and forecasts only: a failure here leaves the accounting alone
            # the first checkpoint can come before start() has set t0_wall: then it is now
            g = self.ctx.g_per_kwh_at(run.t0_wall or time.time())
            with run._state_lock:
                self.carbon["g_per_kwh_now"] = g
        except GreentrackError as e:
            run._on_warning("carbon", f"no intensity for the CO2e budget and forecast: {e}")

    def account(self, run: Any) -> None:
        """At ``stop()``: the run's CO2e, interval by interval, and each phase's (raises the
        GreentrackError of the inputs, which ``stop()`` turns into a warning).

        The CO2e is of the node's energy (× PUE) where a BMC measured the node for the whole
        run (``co2e_basis`` ``node``: it includes fans, PSU losses and every part no meter
        reads), else of the components' (``components``); the phases follow the run."""
        from greentrack.carbon.runcarbon import account_run
        from greentrack.meters.nodepower import NodePowerMeter, is_node

        assert run._sampler is not None
        self.prefetch(run)  # normally done already, on the checkpoint thread
        # ... or under way there (a cloud metadata server, a live provider): wait for it, within
        # the final write's deadline, rather than account with no context
        if not self._resolved.wait(timeout=run.flush_timeout_s):
            raise IntensityError(
                f"the grid intensity was not resolved within {run.flush_timeout_s:g} s "
                "(flush_timeout_s); recompute it later with `greentrack whatif RUN`"
            )
        if isinstance(self.ctx, GreentrackError):
            raise self.ctx
        series = {d: (s.t_s, s.energy_j) for d, s in run._sampler.series.items()}
        nodes = [m for m in run._sampler.meters if isinstance(m, NodePowerMeter)]
        node_basis = any(is_node(d) for d in series) and all(m.complete for m in nodes)
        if nodes and not node_basis:
            run._on_warning(
                "carbon",
                "the node's power was not read for the whole run (its BMC failed or never "
                "answered): the CO2e is of the components' energy, not the node's",
            )
        at = 3 if node_basis else 2  # a phase span: (t0_s, t1_s, components J, node J)
        result = account_run(
            self.ctx,
            series=series,
            phases={
                p: [
                    (sp[0], sp[1], sp[at] or 0.0)
                    for sp in t["spans"] + ([t["overflow"]] if "overflow" in t else [])
                ]
                for p, t in run._phase_totals.items()
            },
            t0_s=run.t0_wall,
            t1_s=run.t0_wall + ((run.t1_mono or time.monotonic()) - run.t0_mono),
            pue=run.pue,
            node_basis=node_basis,
        )
        for w in result.warnings:
            run._on_warning("carbon", w)
        with run._state_lock:
            self.carbon.update(
                region=result.region,
                region_origin=result.region_origin,
                co2e_g=result.co2e_g,
                co2e_g_annual=result.co2e_g_annual,
                intensity_source=result.provenance,
                intensity_series=result.series_json,
                co2e_basis="node" if node_basis else "components",
                # per device, for the store's sum over ranks: a node row carries a CO2e only
                # when this rank's CO2e is of the node (greentrack.store.writer)
                device_co2e_g={
                    d: g for d, g in result.device_co2e_g.items() if node_basis or not is_node(d)
                },
                device_co2e_g_annual={
                    d: g
                    for d, g in result.device_co2e_g_annual.items()
                    if node_basis or not is_node(d)
                },
            )
            for path, g in result.phase_co2e_g.items():
                if path in run._phase_totals:
                    run._phase_totals[path]["co2e_g"] = g
            # Each phase row gets its own CO2e; rows delivered already go out again with it in
            # the final checkpoint (an upsert by id), so the store holds what summary() says.
            pending = {p["id"] for p in run._pending_phases}
            for path, each in result.phase_span_co2e_g.items():
                rows = run._phase_totals.get(path, {}).get("rows", [])
                for row, g in zip(rows, each, strict=False):
                    row["co2e_g"] = g
                    if row["id"] not in pending:
                        run._pending_phases.append(row)
                overflow = run._phase_totals.get(path, {}).get("overflow")
                if overflow and overflow[2] > 0 and len(each) > len(rows):
                    # g per component J of the later rows (their stored energy_j)
                    run._phase_fill[path] = each[-1] / overflow[2]

    def account_embodied(self, run: Any) -> None:
        """The run's share of its devices' manufacturing emissions (README: Embodied)."""
        settings = run.config.embodied
        if not settings.get("enabled", True) or run._sampler is None:
            return
        from greentrack.carbon.embodied import account_embodied

        latest = dict(run._sampler.latest)
        components = [
            {"component": r.component, "device": d, "model": run._device_models.get(d)}
            for d, r in latest.items()
        ]
        duration_s = (run.t1_mono or time.monotonic()) - run.t0_mono
        result = account_embodied(components, run._meta, duration_s, settings)
        with run._state_lock:
            self.carbon.update(embodied_g=result.embodied_g, embodied=result.to_dict())

    def over_budget(self, run: Any) -> bool:
        """True when continuing one more step would exceed the budget.

        The next step's energy is estimated from the progress reported so far (energy per step)
        or, without progress, from the last sampling interval. Budgets count facility energy
        (device energy × PUE); the CO2e budget uses the intensity resolved at start.
        """
        if run.budget_kwh is None and run.budget_co2e_g is None:
            return False
        if run._sampler is not None and run.status == "running":
            run._sampler.read_now()  # a fresh read: the check is exact up to this instant
        energy_j = run.energy_j * run.pue
        next_j = self.next_step_energy_j(run) * run.pue
        if run.budget_kwh is not None and (energy_j + next_j) / J_PER_KWH >= run.budget_kwh:
            return True
        g = self.carbon.get("g_per_kwh_now")
        return bool(
            run.budget_co2e_g is not None
            and g is not None
            and (energy_j + next_j) / J_PER_KWH * g >= run.budget_co2e_g
        )

    def next_step_energy_j(self, run: Any) -> float:
        """The next step's device energy: per reported step, else per sampling interval. J."""
        if run._progress and run._progress[0] > 0:
            return run.energy_j / run._progress[0]
        if run._sampler is None:
            return 0.0
        elapsed = max(time.monotonic() - run.t0_mono, 1e-9)
        return run.energy_j / elapsed * run.interval_s

    def forecast(self, run: Any) -> dict[str, Any] | None:
        """The run's predicted energy and CO2e from its progress (None without progress); warns
        once when the prediction exceeds the energy budget."""
        if not run._progress:
            return None
        step, total = run._progress
        fraction = min(max(step / total, 0.0), 1.0)
        out: dict[str, Any] = {"step": step, "total_steps": total, "fraction": fraction}
        if fraction > 0:
            out["predicted_energy_j"] = run.energy_j / fraction
            g = self.carbon.get("g_per_kwh_now")
            if g is not None:
                out["predicted_co2e_g"] = out["predicted_energy_j"] * run.pue / J_PER_KWH * g
            if run.budget_kwh is not None:
                predicted_kwh = out["predicted_energy_j"] * run.pue / J_PER_KWH
                out["budget_kwh"] = run.budget_kwh
                if predicted_kwh > run.budget_kwh and not self._budget_warned:
                    self._budget_warned = True
                    run._on_warning(
                        "budget",
                        f"forecast {predicted_kwh:.4f} kWh exceeds the budget of "
                        f"{run.budget_kwh} kWh at {fraction:.0%} progress",
                    )
        return out
