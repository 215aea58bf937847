"""Prometheus: the real ``/metrics`` endpoint of a tracked run, of ``greentrack run`` and of
``greentrack exporter``, scraped on 127.0.0.1 and parsed with prometheus_client's own parser.

Energy comes from a replayed power trace (exact integration), so every scraped figure has a
known ground truth: the run's summary, the store, and 300 W / 60 W for the power gauge.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import greentrack as gt
from greentrack.errors import ConfigError
from greentrack.meters import ReplayMeter

REPO = Path(__file__).resolve().parents[1]
if os.environ.get("GREENTRACK_TEST_INTEGRATIONS") != "require":  # CI: a missing package fails
    pytest.importorskip("prometheus_client", reason="pip install -e '.[prometheus]'")

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> tuple[Series, dict[str, str]]:
    """Every sample of the endpoint, and the type of each greentrack family."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    series: Series = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("greentrack_"):
            continue
        types[family.name] = family.type
        for s in family.samples:
            series[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return series, types


def until(what: str, fn: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """``fn()`` once it returns something truthy (retrying on errors), within a deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            got = fn()
        except OSError as e:  # the endpoint is not up yet
            got, last = None, e
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout_s} s (last error: {last})")


def pick(series: Series, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        lab: v
        for (n, lab), v in series.items()
        if n == name and all(dict(lab).get(k) == want for k, want in labels.items())
    }


def trace() -> ReplayMeter:
    return ReplayMeter([(0.0, {"gpu:0": 300.0, "cpu:package-0": 60.0})], method="counter")


def test_a_live_run_is_scraped_with_energy_power_and_co2e(sqlite_url: str) -> None:
    port = free_port()
    with gt.track(
        "prom",
        project="promproj",
        region="ES",
        db=sqlite_url,
        meters=[trace()],
        interval_s=0.05,
        checkpoint_s=0.1,
        prometheus_port=port,
    ) as run:

        def live() -> Any:
            series, types = scrape(port)
            power = pick(series, "greentrack_power_watts", run_id=run.id, device="gpu:0")
            energy = pick(series, "greentrack_energy_joules_total", run_id=run.id, device="gpu:0")
            if power and energy and next(iter(energy.values())) > 0:
                return series, types
            return None

        series, types = until("a checkpoint on /metrics", live)
    summary = run.summary()
    assert types == {
        "greentrack_energy_joules": "counter",
        "greentrack_power_watts": "gauge",
        "greentrack_co2e_grams": "counter",
        "greentrack_run_running": "gauge",
    }
    (labels,) = pick(series, "greentrack_energy_joules_total", device="gpu:0")
    assert dict(labels) == {
        "run_id": run.id,
        "project": "promproj",
        "component": "gpu",
        "device": "gpu:0",
        "method": "counter",
    }
    # mean power between two readings of a constant 300 W / 60 W trace: exact up to the float
    # rounding of epoch timestamps (~0.2 µs in intervals of ~0.1 s)
    (gpu_w,) = pick(series, "greentrack_power_watts", device="gpu:0").values()
    (cpu_w,) = pick(series, "greentrack_power_watts", device="cpu:package-0").values()
    assert gpu_w == pytest.approx(300.0, rel=1e-4) and cpu_w == pytest.approx(60.0, rel=1e-4)
    assert pick(series, "greentrack_run_running", run_id=run.id) == {
        (("project", "promproj"), ("run_id", run.id)): 1.0
    }
    # live CO2e: energy x PUE x the static ES intensity; the accounting at stop uses the same one
    live_e = sum(pick(series, "greentrack_energy_joules_total", run_id=run.id).values())
    (live_g,) = pick(series, "greentrack_co2e_grams_total", run_id=run.id).values()
    assert summary.co2e_g and live_g / live_e == pytest.approx(summary.co2e_g / summary.energy_j)

    after, _ = scrape(port)  # the stopped run stays, with its final figures
    for c in summary.components:
        (got,) = pick(after, "greentrack_energy_joules_total", device=c.device).values()
        assert got == pytest.approx(c.energy_j, rel=1e-12)
    (final_g,) = pick(after, "greentrack_co2e_grams_total", run_id=run.id).values()
    assert final_g == pytest.approx(summary.co2e_g, rel=1e-12)
    assert pick(after, "greentrack_run_running", run_id=run.id) == {
        (("project", "promproj"), ("run_id", run.id)): 0.0
    }


def test_a_busy_port_is_a_warning_and_the_run_goes_on(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("GREENTRACK_PROMETHEUS_PORT", str(port))
        with gt.track("busy", db=sqlite_url, meters=[trace()], checkpoint_s=0.05) as run:
            time.sleep(0.2)
    s = run.summary()
    assert s.status == "finished" and s.energy_j > 0
    assert any(w.startswith(f"prometheus: cannot serve /metrics on 127.0.0.1:{port}")
               for w in s.warnings), s.warnings  # fmt: skip


@pytest.mark.parametrize("bad", ["http", 0, 70000])
def test_a_bad_port_fails_before_the_users_code(sqlite_url: str, bad: Any) -> None:
    ran = False
    with (
        pytest.raises(ConfigError, match=r"prometheus_port=.*TCP port number from 1 to 65535"),
        gt.track("bad", db=sqlite_url, meters=[trace()], prometheus_port=bad),
    ):
        ran = True
    assert not ran


def _tracked_runs(url: str, n: int) -> list[gt.RunSummary]:
    out = []
    for i in range(n):
        with gt.track(f"r{i}", project="team", db=url, region="ES", meters=[trace()],
                      checkpoint_s=0.05) as run:  # fmt: skip
            time.sleep(0.05)
        out.append(run.summary())
    return out


def test_exporter_serves_the_newest_runs_of_a_store(sqlite_url: str, gt_home: Path) -> None:
    runs = _tracked_runs(sqlite_url, 3)
    port = free_port()
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greentrack",
            "exporter",
            "--db",
            sqlite_url,
            "--port",
            str(port),
            "--max-runs",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        series, types = until("the exporter's /metrics", lambda: scrape(port))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert types["greentrack_energy_joules"] == "counter"
    served = {dict(lab)["run_id"] for lab in pick(series, "greentrack_co2e_grams_total")}
    assert served == {runs[1].id, runs[2].id}  # bounded: the 2 newest
    for s in runs[1:]:
        for c in s.components:
            (got,) = pick(
                series, "greentrack_energy_joules_total", run_id=s.id, device=c.device
            ).values()
            assert got == pytest.approx(c.energy_j, rel=1e-9)
        (g,) = pick(series, "greentrack_co2e_grams_total", run_id=s.id).values()
        assert g == pytest.approx(s.co2e_g, rel=1e-9)
        assert pick(series, "greentrack_run_running", run_id=s.id).popitem()[1] == 0.0


def test_exporter_on_a_store_that_is_not_there_fails_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from greentrack.cli import main

    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    res = CliRunner().invoke(main, ["exporter", "--db", url, "--port", str(free_port())])
    assert res.exit_code == 1
    assert res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1


def test_greentrack_run_serves_the_commands_run(sqlite_url: str, gt_home: Path) -> None:
    port = free_port()
    go = gt_home / "go"
    child = (
        "import os, time, sys; d = time.monotonic() + 60\n"
        f"while not os.path.exists({str(go)!r}) and time.monotonic() < d: time.sleep(0.02)\n"
    )
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home), GREENTRACK_DB=sqlite_url)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greentrack",
            "run",
            "--project",
            "cmd",
            "--prometheus-port",
            str(port),
            "--",
            sys.executable,
            "-c",
            child,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        series = until(
            "greentrack run's /metrics",
            lambda: (
                (s := scrape(port)[0]) and pick(s, "greentrack_run_running", project="cmd") and s
            ),
        )
    finally:
        go.touch()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert pick(series, "greentrack_run_running", project="cmd").popitem()[1] == 1.0
    assert pick(series, "greentrack_energy_joules_total", project="cmd")


def test_the_example_scrapes_its_own_endpoint(gt_home: Path, tmp_path: Path) -> None:
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home))
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "prometheus_metrics.py"), "--seconds", "0.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "greentrack_energy_joules_total{" in done.stdout
    assert "greentrack_power_watts{" in done.stdout
