"""Write the Grafana dashboards in dashboards/grafana/ from the panel definitions below.

    python dashboards/build_grafana.py          # rewrite the JSON files
    python dashboards/build_grafana.py --check  # exit 1 if a file is out of date (tests run this)

The SQL is PostgreSQL (the store's schema, see greentrack/store/models.py) with Grafana's macros:
``$__timeFilter(col)``, ``$__timeGroupAlias(col, '1d')`` and the variables ``$project`` (multi,
include all) and ``$run``. Every query is executed against a real PostgreSQL store in
tests/test_grafana.py. Energies: ``energy_j`` is device energy; facility energy is
``energy_j * pue``; CO2e (``co2e_g``) is the time-weighted figure of the facility energy it is
of (``co2e_energy_j * pue``: the node's, from its BMC, where one measured it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "grafana"
DS = {"type": "grafana-postgresql-datasource", "uid": "${DS_GREENTRACK}"}
PROJECT = "r.project IN ($project)"
TIME = "$__timeFilter(r.started_at)"
FINAL = "('true', '1', 'yes')"


def target(sql: str, fmt: str = "table", ref: str = "A") -> dict:
    return {
        "refId": ref,
        "datasource": DS,
        "editorMode": "code",
        "rawQuery": True,
        "format": fmt,
        "rawSql": " ".join(sql.split()),
    }


def panel(
    pid: int,
    kind: str,
    title: str,
    sql: str,
    grid: tuple[int, int, int, int],
    *,
    fmt: str = "table",
    unit: str | None = None,
    description: str = "",
    decimals: int | None = None,
    extra: dict | None = None,
) -> dict:
    x, y, w, h = grid
    defaults: dict = {}
    if unit:
        defaults["unit"] = unit
    if decimals is not None:
        defaults["decimals"] = decimals
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 0,
            "showPoints": "never",
            "spanNulls": False,
        }
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(sql, fmt)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
    }
    if kind == "stat":
        p["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "none",
            "graphMode": "none",
            "textMode": "value_and_name",
        }
    if kind == "timeseries":
        p["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi"},
        }
    if extra:
        p.update(extra)
    return p


def inputs() -> tuple[list, list]:
    return (
        [
            {
                "name": "DS_GREENTRACK",
                "label": "greentrack PostgreSQL",
                "description": "The PostgreSQL database greentrack stores runs in",
                "type": "datasource",
                "pluginId": "grafana-postgresql-datasource",
                "pluginName": "PostgreSQL",
            }
        ],
        [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {
                "type": "datasource",
                "id": "grafana-postgresql-datasource",
                "name": "PostgreSQL",
                "version": "1.0.0",
            },
        ],
    )


def variable_project() -> dict:
    return {
        "name": "project",
        "label": "Project",
        "type": "query",
        "datasource": DS,
        "query": "SELECT DISTINCT project FROM runs ORDER BY 1",
        "definition": "SELECT DISTINCT project FROM runs ORDER BY 1",
        "multi": True,
        "includeAll": True,
        "refresh": 2,
        "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def overview() -> dict:
    energy = "SUM(r.energy_j * r.pue) / 3.6e6"
    panels = [
        panel(
            1,
            "stat",
            "Facility energy",
            f"""
            SELECT {energy} AS "facility energy" FROM runs r WHERE {TIME} AND {PROJECT}""",
            (0, 0, 6, 4),
            unit="kwatth",
            decimals=3,
            description="Device energy x PUE of the runs started in the time range.",
        ),
        panel(
            2,
            "stat",
            "CO2e (time-weighted)",
            f"""
            SELECT SUM(r.co2e_g) / 1000.0 AS "CO2e" FROM runs r WHERE {TIME} AND {PROJECT}""",
            (6, 0, 6, 4),
            unit="masskg",
            decimals=3,
            description="Facility energy x grid intensity of each interval, summed; runs "
            "without intensity data are left out.",
        ),
        panel(
            3,
            "stat",
            "Runs",
            f"""
            SELECT COUNT(*) AS runs FROM runs r WHERE {TIME} AND {PROJECT}""",
            (12, 0, 6, 4),
            unit="none",
        ),
        panel(
            4,
            "stat",
            "GPU-hours",
            f"""
            SELECT COALESCE(SUM(r.duration_s * g.n), 0) / 3600.0 AS "GPU-hours"
            FROM runs r JOIN (SELECT run_id, COUNT(*) AS n FROM components
                              WHERE component = 'gpu' GROUP BY run_id) g ON g.run_id = r.id
            WHERE {TIME} AND {PROJECT}""",
            (18, 0, 6, 4),
            unit="h",
            decimals=2,
            description="Wall time x GPUs measured, over runs that used a GPU.",
        ),
        panel(
            5,
            "timeseries",
            "Facility energy per day, by project",
            f"""
            SELECT $__timeGroupAlias(r.started_at, '1d'), r.project AS metric,
                   {energy} AS value
            FROM runs r WHERE {TIME} AND {PROJECT} GROUP BY 1, 2 ORDER BY 1""",
            (0, 4, 12, 8),
            fmt="time_series",
            unit="kwatth",
            extra={
                "fieldConfig": {
                    "defaults": {
                        "unit": "kwatth",
                        "custom": {"drawStyle": "bars", "fillOpacity": 60, "lineWidth": 1},
                    },
                    "overrides": [],
                }
            },
        ),
        panel(
            6,
            "timeseries",
            "CO2e per day, by project",
            f"""
            SELECT $__timeGroupAlias(r.started_at, '1d'), r.project AS metric,
                   SUM(r.co2e_g) AS value
            FROM runs r WHERE {TIME} AND {PROJECT} AND r.co2e_g IS NOT NULL
            GROUP BY 1, 2 ORDER BY 1""",
            (12, 4, 12, 8),
            fmt="time_series",
            unit="massg",
            extra={
                "fieldConfig": {
                    "defaults": {
                        "unit": "massg",
                        "custom": {"drawStyle": "bars", "fillOpacity": 60, "lineWidth": 1},
                    },
                    "overrides": [],
                }
            },
        ),
        panel(
            7,
            "barchart",
            "Device energy by component and method",
            f"""
            SELECT c.component || ' (' || c.method || ')' AS "component (method)",
                   SUM(c.energy_j) / 3.6e6 AS "energy kWh"
            FROM components c JOIN runs r ON r.id = c.run_id
            WHERE {TIME} AND {PROJECT} GROUP BY 1 ORDER BY 2 DESC""",
            (0, 12, 8, 8),
            unit="kwatth",
            description="counter = the device's energy counter; sampled = integrated power "
            "samples; estimated = a power model (no meter).",
            extra={
                "options": {
                    "orientation": "horizontal",
                    "xField": "component (method)",
                    "legend": {"showLegend": False},
                }
            },
        ),
        panel(
            8,
            "timeseries",
            "Carbon intensity of each run (time-weighted)",
            f"""
            SELECT r.started_at AS time, r.project AS metric,
                   r.co2e_g / NULLIF(COALESCE(r.co2e_energy_j, r.energy_j) * r.pue / 3.6e6, 0)
                   AS value
            FROM runs r WHERE {TIME} AND {PROJECT} AND r.co2e_g IS NOT NULL
            ORDER BY 1""",
            (8, 12, 16, 8),
            fmt="time_series",
            unit="none",
            description="g CO2e per facility kWh of each run, at its start time.",
            extra={
                "fieldConfig": {
                    "defaults": {
                        "unit": "none",
                        "custom": {"drawStyle": "points", "pointSize": 6, "showPoints": "always"},
                    },
                    "overrides": [],
                }
            },
        ),
        panel(
            9,
            "table",
            "Projects: whole development and tuning share",
            f"""
            SELECT p.project, p.runs, p.final_runs, p.facility_kwh, p.co2e_g,
                   CASE WHEN p.final_runs > 0 AND p.facility_kwh > 0
                        THEN 100.0 * p.tuning_kwh / p.facility_kwh END AS tuning_share_pct
            FROM (SELECT r.project, COUNT(*) AS runs,
                         SUM(CASE WHEN t.value IN {FINAL} THEN 1 ELSE 0 END) AS final_runs,
                         SUM(r.energy_j * r.pue) / 3.6e6 AS facility_kwh,
                         SUM(r.co2e_g) AS co2e_g,
                         SUM(CASE WHEN t.value IN {FINAL} THEN 0 ELSE r.energy_j * r.pue END)
                             / 3.6e6 AS tuning_kwh
                  FROM runs r LEFT JOIN tags t ON t.run_id = r.id AND t.key = 'final'
                  WHERE {TIME} AND {PROJECT} GROUP BY r.project) p
            ORDER BY p.facility_kwh DESC""",
            (0, 20, 24, 7),
            description="Final runs are tagged final=true; the rest counts as tuning.",
        ),
        panel(
            10,
            "table",
            "Latest runs",
            f"""
            SELECT left(r.id, 8) AS run, r.project, r.name, r.status, r.started_at,
                   r.duration_s, r.energy_j * r.pue / 3.6e6 AS facility_kwh,
                   (SELECT string_agg(DISTINCT c.method, ',') FROM components c
                    WHERE c.run_id = r.id) AS methods,
                   r.co2e_g, r.region,
                   r.intensity_source ->> 'name' AS intensity_source,
                   r.intensity_source ->> 'kind' AS intensity_kind
            FROM runs r WHERE {TIME} AND {PROJECT}
            ORDER BY r.started_at DESC LIMIT 200""",
            (0, 27, 24, 10),
        ),
        panel(
            11,
            "table",
            "Running now (last heartbeat)",
            """
            SELECT left(r.id, 8) AS run, r.project, r.name, r.host, r.started_at,
                   r.heartbeat_at, r.energy_j / 3.6e6 AS energy_kwh_so_far,
                   r.forecast ->> 'fraction' AS progress,
                   r.forecast ->> 'predicted_energy_j' AS predicted_energy_j
            FROM runs r WHERE r.status = 'running' ORDER BY r.started_at DESC""",
            (0, 37, 24, 6),
            description="Runs whose status is running; one whose heartbeat is old has "
            "probably crashed (greentrack sync marks it).",
        ),
    ]
    ins, req = inputs()
    return {
        "__inputs": ins,
        "__requires": req,
        "title": "greentrack: overview",
        "uid": "greentrack-overview",
        "description": "Energy and CO2e of ML runs recorded by greentrack (PostgreSQL store).",
        "tags": ["greentrack", "energy"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-30d", "to": "now"},
        "refresh": "",
        "templating": {"list": [variable_project()]},
        "annotations": {"list": []},
        "panels": panels,
    }


def run_view() -> dict:
    run = "'$run'"
    bucket = (
        f"WITH b AS (SELECT MIN(t_s) AS t0, GREATEST((MAX(t_s) - MIN(t_s)) / 1000.0, "
        f"1e-6) AS w FROM samples WHERE run_id = {run})"
    )
    panels = [
        panel(
            1,
            "stat",
            "Device energy",
            f"""
            SELECT energy_j / 3.6e6 AS "device energy" FROM runs WHERE id = {run}""",
            (0, 0, 5, 4),
            unit="kwatth",
            decimals=4,
        ),
        panel(
            2,
            "stat",
            "Facility energy",
            f"""
            SELECT energy_j * pue / 3.6e6 AS "facility energy" FROM runs WHERE id = {run}""",
            (5, 0, 5, 4),
            unit="kwatth",
            decimals=4,
        ),
        panel(
            3,
            "stat",
            "CO2e (time-weighted)",
            f"""
            SELECT co2e_g AS "CO2e", co2e_g_annual AS "at annual average"
            FROM runs WHERE id = {run}""",
            (10, 0, 5, 4),
            unit="massg",
            decimals=2,
        ),
        panel(
            4,
            "stat",
            "Wall time",
            f"""
            SELECT duration_s AS "wall time" FROM runs WHERE id = {run}""",
            (15, 0, 4, 4),
            unit="s",
        ),
        panel(
            5,
            "table",
            "Intensity source",
            f"""
            SELECT region, intensity_source ->> 'name' AS source,
                   intensity_source ->> 'zone' AS zone, intensity_source ->> 'kind' AS kind,
                   intensity_source ->> 'period' AS period,
                   co2e_g / NULLIF(COALESCE(co2e_energy_j, energy_j) * pue / 3.6e6, 0)
                   AS g_per_kwh_time_weighted
            FROM runs WHERE id = {run}""",
            (19, 0, 5, 4),
        ),
        panel(
            6,
            "timeseries",
            "Power per device",
            f"""
            {bucket}
            SELECT to_timestamp(MIN(s.t_s)) AS time, s.device AS metric, AVG(s.power_w) AS value
            FROM samples s, b WHERE s.run_id = {run}
            GROUP BY s.device, floor((s.t_s - b.t0) / b.w) ORDER BY 1""",
            (0, 4, 12, 9),
            fmt="time_series",
            unit="watt",
            description="Mean power per device in 1,000 buckets over the run (long runs "
            "are reduced in SQL).",
        ),
        panel(
            7,
            "timeseries",
            "Cumulative energy per device",
            f"""
            {bucket}
            SELECT to_timestamp(MAX(s.t_s)) AS time, s.device AS metric,
                   MAX(s.energy_j) / 3.6e6 AS value
            FROM samples s, b WHERE s.run_id = {run}
            GROUP BY s.device, floor((s.t_s - b.t0) / b.w) ORDER BY 1""",
            (12, 4, 12, 9),
            fmt="time_series",
            unit="kwatth",
        ),
        panel(
            8,
            "table",
            "Devices and methods",
            f"""
            SELECT rank, host, device, component, method, model, energy_j / 3.6e6 AS energy_kwh
            FROM components WHERE run_id = {run} ORDER BY rank, device""",
            (0, 13, 12, 7),
        ),
        panel(
            9,
            "table",
            "Phases",
            f"""
            SELECT path, COUNT(*) AS count, SUM(duration_s) AS duration_s,
                   SUM(energy_j) / 3.6e6 AS energy_kwh, SUM(co2e_g) AS co2e_g
            FROM phases WHERE run_id = {run} GROUP BY path ORDER BY MIN(t0_s)""",
            (12, 13, 12, 7),
        ),
        panel(
            10,
            "table",
            "Metrics (last value)",
            f"""
            SELECT m.key, m.step, m.value FROM metrics m
            JOIN (SELECT key, MAX(id) AS id FROM metrics WHERE run_id = {run} GROUP BY key) l
              ON l.id = m.id ORDER BY m.key""",
            (0, 20, 8, 7),
        ),
        panel(
            11,
            "table",
            "Parameters and tags",
            f"""
            SELECT 'param' AS kind, key, value FROM params WHERE run_id = {run}
            UNION ALL SELECT 'tag', key, value FROM tags WHERE run_id = {run}
            ORDER BY 1, 2""",
            (8, 20, 8, 7),
        ),
        panel(
            12,
            "table",
            "Events (warnings, fallbacks)",
            f"""
            SELECT to_timestamp(t_s) AS time, level, source, message
            FROM events WHERE run_id = {run} ORDER BY t_s""",
            (16, 20, 8, 7),
        ),
    ]
    ins, req = inputs()
    run_var = {
        "name": "run",
        "label": "Run",
        "type": "query",
        "datasource": DS,
        "query": "SELECT id AS __value, project || ' / ' || name || ' ' || left(id, 8) "
        "AS __text FROM runs ORDER BY started_at DESC LIMIT 500",
        "definition": "latest 500 runs",
        "multi": False,
        "includeAll": False,
        "refresh": 2,
        "current": {},
    }
    return {
        "__inputs": ins,
        "__requires": req,
        "title": "greentrack: run",
        "uid": "greentrack-run",
        "description": "One greentrack run: power, energy, methods, phases, metrics.",
        "tags": ["greentrack", "energy"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "",
        "templating": {"list": [run_var]},
        "annotations": {"list": []},
        "panels": panels,
    }


PROM_DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PROM_SELECT = '{project=~"$project"}'
#: the devices only: a node's own figure (its BMC, component "node") overlaps them
NO_NODE = '{project=~"$project", component!="node"}'


def prom_panel(
    pid: int, kind: str, title: str, expr: str, legend: str, grid: tuple[int, int, int, int], *,
    unit: str, description: str, instant: bool = False,
) -> dict:  # fmt: skip
    """A panel over greentrack's Prometheus metrics (``track(prometheus_port=...)`` or
    ``greentrack exporter``): the same layout as :func:`panel`, with a PromQL target."""
    p = panel(pid, kind, title, "unused", grid, unit=unit, description=description)
    p["datasource"] = PROM_DS
    p["targets"] = [
        {
            "refId": "A",
            "datasource": PROM_DS,
            "editorMode": "code",
            "expr": expr,
            "legendFormat": legend,
            "instant": instant,
            "range": not instant,
        }
    ]
    return p


def prometheus_view() -> dict:
    """Live runs, from Prometheus: what the process (or the exporter) serves on /metrics."""
    sel = PROM_SELECT
    panels = [
        prom_panel(1, "stat", "Runs running", f"sum(greentrack_run_running{sel})", "running",
                   (0, 0, 6, 4), unit="none", instant=True,
                   description="Runs whose process serves them and that have not stopped."),
        prom_panel(2, "stat", "Device energy (kWh)",
                   f"sum(greentrack_energy_joules_total{NO_NODE}) / 3.6e6", "energy",
                   (6, 0, 6, 4), unit="kwatth", instant=True,
                   description="Device energy of the runs served (PUE not applied)."),
        prom_panel(3, "stat", "CO₂e (g)", f"sum(greentrack_co2e_grams_total{sel})", "CO₂e",
                   (12, 0, 6, 4), unit="none", instant=True,
                   description="Live estimate at the start's intensity; the accounted figure "
                   "once a run stops."),
        prom_panel(4, "timeseries", "Power by device", f"sum by (run_id, device, method) "
                   f"(greentrack_power_watts{sel})", "{{run_id}} {{device}} ({{method}})",
                   (0, 4, 24, 8), unit="watt",
                   description="Mean device power over each run's last checkpoint interval."),
        prom_panel(5, "timeseries", "Energy by component",
                   f"sum by (component, method) (greentrack_energy_joules_total{sel}) / 3.6e6",
                   "{{component}} ({{method}})", (0, 12, 12, 8), unit="kwatth",
                   description="Cumulative device energy, by component and measurement method."),
        prom_panel(6, "timeseries", "CO₂e by project",
                   f"sum by (project) (greentrack_co2e_grams_total{sel})", "{{project}}",
                   (12, 12, 12, 8), unit="none", description="Cumulative CO₂e (g)."),
    ]
    project_var = {
        "name": "project",
        "label": "Project",
        "type": "query",
        "datasource": PROM_DS,
        "query": {"query": "label_values(greentrack_run_running, project)", "refId": "P"},
        "definition": "label_values(greentrack_run_running, project)",
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "refresh": 2,
        "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes greentrack's /metrics",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        ],
        "uid": "greentrack-prometheus",
        "title": "greentrack — live (Prometheus)",
        "tags": ["greentrack", "energy", "carbon", "prometheus"],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [project_var]},
        "annotations": {"list": []},
        "panels": panels,
    }


DASHBOARDS = {
    "greentrack-overview.json": overview,
    "greentrack-run.json": run_view,
    "greentrack-prometheus.json": prometheus_view,
}


def main(argv: list[str]) -> int:
    stale = []
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        path = HERE / name
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            HERE.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale) + "; run python dashboards/build_grafana.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
