"""Apple silicon meter against a simulated ``zeus_apple_silicon`` on sys.path
(tests/fakes/apple.py).

What this cannot exercise without a Mac is listed in greentrack/meters/apple.py and the README.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from fakes.apple import FakeAppleSilicon

import greentrack as gt
from greentrack.cli import main
from greentrack.config import load_config
from greentrack.errors import MeterError
from greentrack.meters import open_meters
from greentrack.meters.apple import AppleSiliconMeter
from greentrack.store import queries

MJ = 1e-3  # counters are whole millijoules


def _run(meter, fake, dt_s, steps):
    meter.start(fake.now_s())
    out = {}
    for _ in range(steps):
        fake.advance(dt_s)
        out = {r.device: r for r in meter.read(fake.now_s())}
    return out


def test_cpu_gpu_ane_dram_counters_are_exact(monkeypatch):
    fake = FakeAppleSilicon(
        {
            "cpu": [(0.0, 12.0), (0.4, 3.0)],
            "gpu": 18.5,
            "ane": [(0.0, 0.0), (0.7, 2.0)],
            "dram": 1.25,
        }
    ).install(monkeypatch)
    meter = AppleSiliconMeter()
    assert meter.devices == ["cpu:apple", "dram:apple", "gpu:apple", "ane:apple"]
    got = _run(meter, fake, 0.1, 12)
    for dev, what in (("cpu:apple", "cpu"), ("gpu:apple", "gpu"), ("ane:apple", "ane"),
                      ("dram:apple", "dram")):  # fmt: skip
        assert got[dev].energy_j == pytest.approx(fake.expected_energy_j(what), abs=2 * MJ)
        assert got[dev].method == "counter"
    assert got["dram:apple"].component == "ram" and got["ane:apple"].component == "ane"


def test_a_chip_without_a_counter_has_no_such_device(monkeypatch):
    FakeAppleSilicon({"cpu": 5.0, "gpu": 4.0}).install(monkeypatch)
    assert AppleSiliconMeter().devices == ["cpu:apple", "gpu:apple"]


def test_binding_failing_mid_run_freezes_the_energy(monkeypatch):
    fake = FakeAppleSilicon({"cpu": 10.0, "gpu": 20.0}, fail_at_s=0.55).install(monkeypatch)
    meter = AppleSiliconMeter()
    got = _run(meter, fake, 0.1, 10)
    assert got["gpu:apple"].energy_j == pytest.approx(10.0, abs=2 * MJ)  # last read at 0.5 s
    assert got["gpu:apple"].power_w is None
    (warning,) = meter.pop_warnings()
    assert "no longer read" in warning and "IOReport sample failed" in warning


def test_missing_binding_says_how_to_install(monkeypatch):
    monkeypatch.setenv("GREENTRACK_APPLE", "1")
    monkeypatch.setitem(__import__("sys").modules, "zeus_apple_silicon", None)
    with pytest.raises(MeterError, match="pip install zeus-apple-silicon"):
        AppleSiliconMeter()


def test_detect_and_a_tracked_run(monkeypatch, tmp_path, sqlite_url, no_nvml):
    monkeypatch.setenv("GREENTRACK_SYSFS", str(tmp_path / "empty-sys"))
    fake = FakeAppleSilicon({"cpu": 9.0, "gpu": 14.0, "dram": 1.0}).install(monkeypatch)
    kinds = [type(m).__name__ for m in open_meters(load_config())]
    assert kinds == ["AppleSiliconMeter"]  # CPU and RAM measured: no estimates
    result = CliRunner().invoke(main, ["detect", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    rows = rows if isinstance(rows, list) else rows.get("meters", rows)
    apple = next(r for r in rows if r["name"] == "apple")
    assert apple["available"] and apple["devices"] == ["cpu:apple", "dram:apple", "gpu:apple"]
    with fake, gt.track("mac", db=sqlite_url, interval_s=0.05) as run:
        time.sleep(0.5)
    t0, t1 = (fake.fake_time_at(t) for t in (run.t0_mono, run.t1_mono))
    conn = queries.open_store(sqlite_url)
    try:
        obj = queries.get_run(conn, run.id)
    finally:
        conn.close()
    got = {c["device"]: c["energy_j"] for c in obj["components"]}
    assert got["gpu:apple"] == pytest.approx(fake.expected_energy_j("gpu", t0, t1), rel=0.01)
    assert got["cpu:apple"] == pytest.approx(fake.expected_energy_j("cpu", t0, t1), rel=0.01)
