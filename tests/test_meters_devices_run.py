"""The new device meters at the level a user touches: ``greentrack detect`` and a tracked run on
each simulated device, checked against the scripted ground truth (1 % for counters, 2 % for
power sampled at 0.1 s)."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from fakes.amd import FakeAmdGpu, FakeAmdSmi, mi250x
from fakes.bmc import FakeIpmitool
from fakes.hwmon import FakeHwmon

import greentrack as gt
from greentrack.cli import main
from greentrack.config import load_config
from greentrack.meters import open_meters
from greentrack.store import queries


def stored(url: str, run_id: str) -> dict:
    conn = queries.open_store(url)
    try:
        return queries.get_run(conn, run_id)
    finally:
        conn.close()


def _detect() -> dict[str, dict]:
    result = CliRunner().invoke(main, ["detect", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = data if isinstance(data, list) else data.get("meters", data)
    return {r["name"]: r for r in rows}


@pytest.fixture
def sysfs(tmp_path, monkeypatch) -> FakeHwmon:
    fake = FakeHwmon(tmp_path / "sys")
    monkeypatch.setenv("GREENTRACK_SYSFS", str(fake.sysfs))
    monkeypatch.delenv("GREENTRACK_REDFISH_URL", raising=False)
    monkeypatch.setenv("GREENTRACK_IPMITOOL", str(tmp_path / "no-ipmitool"))
    yield fake
    fake.stop()


def test_amd_gpus_detected_and_a_tracked_run_matches_the_counter(
    sysfs, monkeypatch, sqlite_url, no_nvml
):
    fake = FakeAmdSmi(
        [
            FakeAmdGpu("AMD Instinct MI300X", [(0.0, 700.0), (0.3, 600.0)]),
            *mi250x(400.0, first_index=1),
        ]
    ).install(monkeypatch)
    sysfs.add_gpu("amdgpu", fake.bdf(0), 999.0)  # the same GPU through hwmon: never counted
    st = _detect()
    assert st["amdsmi"]["available"] and st["amdsmi"]["method"] == "counter"
    assert "AMD Instinct MI300X" in st["amdsmi"]["reason"]
    assert not st["hwmon"]["available"] and f"gpu:amdgpu-{fake.bdf(0)}" in st["hwmon"]["reason"]
    with fake, gt.track("amd", db=sqlite_url, interval_s=0.02) as run:
        time.sleep(0.6)
    t0, t1 = (fake.fake_time_at(t) for t in (run.t0_mono, run.t1_mono))
    obj = stored(sqlite_url, run.id)
    got = {c["device"]: c for c in obj["components"]}
    assert not any(d.startswith("gpu:amdgpu") for d in got)
    assert got["gpu:amd-0"]["method"] == "counter"
    models = {c["device"]: c["model"] for p in obj["processes"] for c in p["components"]}
    assert models["gpu:amd-0"] == "AMD Instinct MI300X"  # the price tag's hardware line
    assert got["gpu:amd-0"]["energy_j"] == pytest.approx(
        fake.expected_energy_j(0, t0, t1), rel=0.01
    )
    assert got["gpu:amd-0"]["energy_j"] > 1.2 * got["gpu:amd-1"]["energy_j"]  # not mixed up
    # the MI250X package counted once, on its first die, and the run says which dies share it
    assert "gpu:amd-2" not in got, obj["events"]
    assert got["gpu:amd-1"]["energy_j"] == pytest.approx(
        fake.expected_energy_j(1, t0, t1), rel=0.01
    )
    assert "gpu:amd-1, gpu:amd-2" in (got["gpu:amd-1"]["note"] or "")


def test_amdgpu_hwmon_is_the_fallback_without_amdsmi(sysfs, monkeypatch, sqlite_url, no_nvml):
    FakeAmdSmi(import_error=ImportError("No module named 'amdsmi'")).install(monkeypatch)
    # constant power: the trapezoid's step error is tested on an explicit clock
    # (tests/test_meters_hwmon.py); here the 2 % is the wall-clock run around it
    dev = sysfs.add_gpu("amdgpu", "0000:0c:00.0", 250.0)
    st = _detect()
    assert not st["amdsmi"]["available"] and "greentrack[amd]" in st["amdsmi"]["reason"]
    assert st["hwmon"]["available"] and st["hwmon"]["devices"] == [dev]
    with sysfs, gt.track("amdgpu-hwmon", db=sqlite_url, interval_s=0.1) as run:
        time.sleep(0.8)
    t0, t1 = (sysfs.fake_time_at(t) for t in (run.t0_mono, run.t1_mono))
    obj = stored(sqlite_url, run.id)
    got = {c["device"]: c for c in obj["components"]}
    assert got[dev]["method"] == "sampled"
    assert got[dev]["energy_j"] == pytest.approx(sysfs.expected_energy_j(dev, t0, t1), rel=0.02)
    assert any("greentrack[amd]" in e["message"] for e in obj["events"])


def test_jetson_board_replaces_the_estimates(sysfs, monkeypatch, sqlite_url, no_nvml):
    FakeAmdSmi(import_error=ImportError("No module named 'amdsmi'")).install(monkeypatch)
    monkeypatch.delenv("GREENTRACK_AMDSMI")
    sysfs.add_ina3221({"VDD_IN": 9.0, "VDD_CPU_GPU_CV": 4.0}, abi="hwmon")
    kinds = [type(m).__name__ for m in open_meters(load_config())]
    assert kinds == ["HwmonMeter"]  # no CPU / RAM estimate on top of the whole module
    st = _detect()
    assert st["hwmon"]["available"] and st["hwmon"]["devices"] == ["board:vdd_in"]
    with sysfs, gt.track("jetson", db=sqlite_url, interval_s=0.1) as run:
        time.sleep(0.7)
    t0, t1 = (sysfs.fake_time_at(t) for t in (run.t0_mono, run.t1_mono))
    obj = stored(sqlite_url, run.id)
    (comp,) = obj["components"]
    truth = sysfs.expected_energy_j("rail:vdd_in", t0, t1)
    assert comp["device"] == "board:vdd_in" and comp["energy_j"] == pytest.approx(truth, rel=0.02)
    assert "VDD_CPU_GPU_CV" in comp["note"]


def test_bmc_meters_in_detect(sysfs, monkeypatch, tmp_path, no_nvml):
    FakeIpmitool(tmp_path, 412.0).install(monkeypatch)
    st = _detect()
    assert st["ipmi"]["available"] and "412 W" in st["ipmi"]["reason"]
    # no /dev/ipmi0 on this machine: `auto` leaves it off runs, and says how to turn it on
    assert 'set [node] meter = "ipmi"' in st["ipmi"]["reason"]
    assert not st["redfish"]["available"] and "GREENTRACK_REDFISH_URL" in st["redfish"]["reason"]
    monkeypatch.setenv("GREENTRACK_NODE_METER", "ipmi")
    st = _detect()
    assert "runs record it beside the components, never added" in st["ipmi"]["reason"]


def test_bench_tiny_with_a_simulated_amd_gpu(sysfs, monkeypatch, tmp_path, no_nvml):
    import torch

    fake = FakeAmdSmi([FakeAmdGpu("AMD Instinct MI300X", 500.0)]).install(monkeypatch)
    monkeypatch.setenv("GREENTRACK_HOME", str(tmp_path / "home"))
    db = f"sqlite:///{tmp_path / 'bench.db'}"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with fake:
            result = CliRunner().invoke(
                main,
                ["bench", "--tiny", "--only", "transformer_shapes", "--format", "json",
                 "--no-progress", "--db", db],
            )  # fmt: skip
    finally:
        torch.set_num_threads(old)
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads(result.stdout) if r["workload"] == "transformer_shapes"]
    assert "counter" in row["energy_method"]
    conn = queries.open_store(db)
    try:
        runs = queries.list_runs(conn, project="bench", limit=None)
        obj = queries.get_run(conn, runs[0]["id"])
    finally:
        conn.close()
    (gpu,) = [c for c in obj["components"] if c["device"] == "gpu:amd-0"]
    assert gpu["method"] == "counter" and gpu["energy_j"] > 0
