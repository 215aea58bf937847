"""Every Grafana panel's SQL, executed against a real PostgreSQL store full of runs.

Grafana's macros are expanded the way its PostgreSQL data source does (a concrete time range
that covers the runs), the template variables get real values, and each query must run and
return the rows and columns its panel needs. The headline numbers must equal the library's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from greentrack.report.frames import runs_frame
from greentrack.store.dbapi import connect
from greentrack.testing.synthetic import SyntheticRun, demo_project, gpu_host, write_runs

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = REPO / "dashboards" / "grafana" / "greentrack-prometheus.json"
DASHBOARDS = sorted(p for p in (REPO / "dashboards" / "grafana").glob("*.json") if p != PROMETHEUS)
FROM, TO = "2025-06-01T00:00:00Z", "2027-01-01T00:00:00Z"
FROM_S, TO_S = 1748736000, 1798761600


def expand(sql: str, variables: dict[str, str]) -> str:
    """Grafana's PostgreSQL macro expansion for a fixed time range, then the variables."""

    def group(m: re.Match[str]) -> str:
        col, interval = m.group(1).strip(), m.group(2).strip().strip("'")
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[interval[-1]] * int(interval[:-1])
        alias = ' AS "time"' if m.group(0).startswith("$__timeGroupAlias") else ""
        return f"floor(extract(epoch from {col})/{seconds})*{seconds}{alias}"

    sql = re.sub(r"\$__timeGroup(?:Alias)?\(([^,]+),([^)]+)\)", group, sql)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN '{FROM}' AND '{TO}'", sql)
    sql = re.sub(r"\$__unixEpochFilter\(([^)]+)\)", rf"\1 >= {FROM_S} AND \1 <= {TO_S}", sql)
    sql = sql.replace("$__timeFrom()", f"'{FROM}'").replace("$__timeTo()", f"'{TO}'")
    for name, value in variables.items():
        sql = sql.replace("${" + name + "}", value).replace("$" + name, value)
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


def panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out += [p, *p.get("panels", [])]  # rows nest panels
    return out


@pytest.fixture
def pg_store(pg_url: str) -> str:
    runs = demo_project()
    runs.append(
        SyntheticRun(
            run_id="cc" + "0" * 30,
            project="imagenet",
            name="vit",
            devices=gpu_host(4),
            status="running",
            events=[("warning", "NVML counter missing; sampling power")],
            metrics={"accuracy": [(0, 0.3)]},
            params={"lr": 1e-3},
            tags={"owner": "ana"},
        )
    )
    write_runs(pg_url, runs)
    return pg_url


def test_dashboards_are_generated_and_well_formed() -> None:
    assert [p.name for p in DASHBOARDS] == ["greentrack-overview.json", "greentrack-run.json"]
    assert PROMETHEUS.exists()
    check = subprocess.run(
        [sys.executable, str(REPO / "dashboards" / "build_grafana.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        assert d["uid"] and d["title"].startswith("greentrack")
        assert d["__inputs"][0]["pluginId"] == "grafana-postgresql-datasource"
        ids = [p["id"] for p in panels(d)]
        assert len(ids) == len(set(ids)), "duplicate panel ids"
        for p in panels(d):
            assert p["targets"], p["title"]
            for t in p["targets"]:
                assert (
                    t["rawQuery"]
                    and t["rawSql"].strip()
                    and t["format"] in ("table", "time_series")
                )
                assert t["datasource"]["uid"] == "${DS_GREENTRACK}"


def test_every_panel_query_runs_on_postgresql(pg_store: str) -> None:
    conn = connect(pg_store)
    try:
        run_id = "cc" + "0" * 30  # has every kind of row: samples, phases, events, ...
        variables = {"project": "'cifar','imagenet'", "run": run_id}
        for path in DASHBOARDS:
            d = json.loads(path.read_text())
            for var in d["templating"]["list"]:
                rows = conn.query(var["query"])
                assert rows, f"{path.name}: variable {var['name']} has no values"
            for p in panels(d):
                for t in p["targets"]:
                    sql = expand(t["rawSql"], variables)
                    try:
                        rows = conn.query(sql)
                    except Exception as e:  # say which panel failed
                        conn.rollback()
                        pytest.fail(f"{path.name} panel {p['title']!r}: {e}\n{sql}")
                    assert rows, f"{path.name} panel {p['title']!r} returned no rows"
                    cols = list(rows[0])
                    if t["format"] == "time_series":
                        assert cols[0] == "time", (p["title"], cols)
                        assert "value" in cols, (p["title"], cols)
                    if p["type"] == "stat":
                        assert all(v is not None for v in rows[0].values()), p["title"]
                    conn.rollback()
    finally:
        conn.close()


def test_headline_numbers_match_the_library(pg_store: str) -> None:
    overview = json.loads(
        (REPO / "dashboards" / "grafana" / "greentrack-overview.json").read_text()
    )
    by_title = {p["title"]: p for p in panels(overview)}
    conn = connect(pg_store)
    try:

        def one(title: str, project: str) -> dict:
            sql = expand(by_title[title]["targets"][0]["rawSql"], {"project": project})
            return conn.query(sql)[0]

        df = runs_frame("cifar", db=pg_store)
        energy = one("Facility energy", "'cifar'")["facility energy"]
        assert energy == pytest.approx(df["facility_energy_kwh"].sum())
        co2e = one("CO2e (time-weighted)", "'cifar'")["CO2e"]
        assert co2e == pytest.approx(df["co2e_g"].sum() / 1000)
        assert one("Runs", "'cifar','imagenet'")["runs"] == 8
        gpu_h = one("GPU-hours", "'cifar'")["GPU-hours"]
        assert gpu_h == pytest.approx((df["duration_s"] * [1, 1, 1, 1, 2, 2, 2]).sum() / 3600)
        sql = expand(
            by_title["Projects: whole development and tuning share"]["targets"][0]["rawSql"],
            {"project": "'cifar','imagenet'"},
        )
        rows = {r["project"]: r for r in conn.query(sql)}
        final = df[df["tag_final"] == "true"]["facility_energy_kwh"].sum()
        total = df["facility_energy_kwh"].sum()
        assert rows["cifar"]["tuning_share_pct"] == pytest.approx(100 * (total - final) / total)
        assert rows["imagenet"]["tuning_share_pct"] is None  # no final run: no share invented
        running = conn.query(
            expand(by_title["Running now (last heartbeat)"]["targets"][0]["rawSql"], {})
        )
        assert [r["run"] for r in running] == ["cc000000"]
    finally:
        conn.close()


def test_the_prometheus_dashboard_asks_for_what_greentrack_serves(tmp_path: Path) -> None:
    """Every metric and label the Prometheus variant's PromQL names is on a real /metrics scrape
    of a tracked run (the endpoint ``track(prometheus_port=...)`` serves)."""
    import socket
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    import greentrack as gt
    from greentrack.meters import ReplayMeter

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    names: dict[str, set[str]] = {}
    with gt.track("prom", project="p", db=f"sqlite:///{tmp_path / 's.db'}",
                  meters=[ReplayMeter([(0.0, {"gpu:0": 100.0})])], interval_s=0.05,
                  checkpoint_s=0.1, prometheus_port=port):  # fmt: skip
        deadline = time.monotonic() + 20
        while "greentrack_power_watts" not in names and time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:  # not listening yet
                continue
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    names.setdefault(sample.name, set()).update(sample.labels)
    assert "greentrack_power_watts" in names, "no checkpoint reached /metrics in 20 s"
    d = json.loads(PROMETHEUS.read_text())
    assert d["__inputs"][0]["pluginId"] == "prometheus"
    exprs = [t["expr"] for p in panels(d) for t in p["targets"]]
    exprs.append(d["templating"]["list"][0]["definition"])
    assert len(exprs) >= 6
    for expr in exprs:
        used = set(re.findall(r"\b(greentrack_[a-z0-9_]+)\b", expr))
        assert used, expr
        for metric in used:
            assert metric in names, f"{metric} is not served (in {expr!r})"
        labels = set(re.findall(r"\b([a-z_]+)=~", expr))
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels |= {x.strip() for x in group.split(",")}
        labels |= set(re.findall(r"\{\{(\w+)\}\}", " ".join(
            t.get("legendFormat", "") for p in panels(d) for t in p["targets"] if t["expr"] == expr
        )))
        for metric in used:
            assert labels <= names[metric], (expr, labels - names[metric])
