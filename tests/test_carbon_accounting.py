"""Carbon accounting: exact time-weighting, devices, phases, PUE, prediction, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from greentrack.carbon.accounting import (
    J_PER_KWH,
    account_samples,
    co2e_g,
    predict_final,
    predict_final_s,
    static_co2e_g,
)
from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.carbon.static import StaticSource
from greentrack.errors import ConfigError, IntensityDataError

T0 = 1_646_092_800.0  # 2022-03-01T00:00:00Z, an hour boundary
PROV = Provenance("test", "XX", "average", "hand-made", "")


def hourly(*values: float, start: float = T0) -> IntensitySeries:
    return IntensitySeries(start + 3600.0 * np.arange(len(values)), np.array(values), 3600.0, PROV)


def test_interval_straddling_an_hour_boundary_is_time_weighted_exactly():
    s = hourly(100.0, 300.0)
    # 1 kWh over 00:30-01:30: half at 100 g/kWh, half at 300 g/kWh.
    got = co2e_g(T0 + 1800, T0 + 5400, J_PER_KWH, s)
    assert got == pytest.approx(200.0, rel=1e-12)
    # A quarter in the first hour, three quarters in the second.
    got = co2e_g(T0 + 2700, T0 + 6300, J_PER_KWH, s)
    assert got == pytest.approx(0.25 * 100 + 0.75 * 300, rel=1e-12)


def test_vectorised_intervals_and_zero_width_interval():
    s = hourly(100.0, 300.0, 50.0)
    t0 = np.array([T0, T0 + 3600, T0 + 5400, T0 + 4000])
    t1 = np.array([T0 + 3600, T0 + 7200, T0 + 9000, T0 + 4000])
    e = np.full(4, J_PER_KWH)
    got = co2e_g(t0, t1, e, s)
    np.testing.assert_allclose(got, [100.0, 300.0, (300 * 1800 + 50 * 1800) / 3600, 300.0])


def constant_power_samples(power_w: float, t_start: float, t_end: float, dt: float):
    t = np.arange(t_start + dt, t_end + dt / 2, dt)
    return t, power_w * (t - t_start)


def test_account_samples_total_phases_and_pue():
    s = hourly(100.0, 300.0)
    t, e = constant_power_samples(1000.0, T0, T0 + 7200, 600.0)  # 1 kWh per hour
    acct = account_samples(t, e, s, start_s=T0, phases=[("mid", T0 + 1800, T0 + 5400)])
    assert acct.co2e_g == pytest.approx(100.0 + 300.0, rel=1e-12)
    assert acct.device_energy_j == pytest.approx(2 * J_PER_KWH)
    assert acct.per_phase["mid"] == pytest.approx(0.5 * 100 + 0.5 * 300, rel=1e-12)
    assert acct.per_phase_energy_j["mid"] == pytest.approx(J_PER_KWH, rel=1e-12)
    assert acct.mean_g_per_kwh == pytest.approx(200.0)
    with_pue = account_samples(t, e, s, start_s=T0, pue=1.5, phases=[("mid", T0 + 1800, T0 + 5400)])
    assert with_pue.co2e_g == pytest.approx(1.5 * acct.co2e_g, rel=1e-12)
    assert with_pue.facility_energy_j == pytest.approx(1.5 * acct.device_energy_j)
    assert with_pue.per_phase["mid"] == pytest.approx(1.5 * acct.per_phase["mid"])
    assert with_pue.mean_g_per_kwh == pytest.approx(acct.mean_g_per_kwh)
    assert with_pue.provenance == PROV


def test_devices_interleaved_and_unsorted():
    s = hourly(100.0, 300.0)
    ta, ea = constant_power_samples(1000.0, T0, T0 + 7200, 600.0)
    tb, eb = constant_power_samples(500.0, T0, T0 + 3600, 300.0)
    t = np.concatenate([ta, tb])
    e = np.concatenate([ea, eb])
    dev = np.array(["gpu:0"] * ta.size + ["cpu:0"] * tb.size, dtype=object)
    order = np.random.default_rng(0).permutation(t.size)
    acct = account_samples(t[order], e[order], s, device=dev[order], start_s=T0)
    assert acct.per_device["gpu:0"] == pytest.approx(400.0, rel=1e-12)
    assert acct.per_device["cpu:0"] == pytest.approx(0.5 * 100.0, rel=1e-12)
    assert acct.co2e_g == pytest.approx(450.0, rel=1e-12)
    assert acct.per_device_energy_j["cpu:0"] == pytest.approx(0.5 * J_PER_KWH)


def test_without_start_the_first_reading_is_booked_at_its_instant():
    s = hourly(100.0, 300.0)
    t = np.array([T0 + 3000.0, T0 + 4200.0])
    e = np.array([0.5 * J_PER_KWH, 1.5 * J_PER_KWH])
    acct = account_samples(t, e, s)
    # 0.5 kWh at 100 g/kWh (instant in hour 0) + 1 kWh over 00:50-01:10 (half at each value).
    assert acct.co2e_g == pytest.approx(0.5 * 100 + (100 + 300) / 2, rel=1e-12)
    assert acct.device_energy_j == pytest.approx(1.5 * J_PER_KWH)


def test_matches_a_fine_riemann_sum_on_random_profiles():
    rng = np.random.default_rng(42)
    s = hourly(*rng.uniform(20, 600, size=30))
    t = np.sort(rng.uniform(T0 + 10, T0 + 29 * 3600, size=400))
    power = rng.uniform(50, 400, size=t.size)  # W over (t[i-1], t[i]]
    t_prev = np.concatenate(([T0], t[:-1]))
    e = np.cumsum(power * (t - t_prev))
    acct = account_samples(t, e, s, start_s=T0)
    grid = np.linspace(T0, t[-1], 2_000_001)
    mid = (grid[:-1] + grid[1:]) / 2
    p = power[np.searchsorted(t, mid)]
    brute = np.sum(p * s.at(mid) * np.diff(grid)) / J_PER_KWH
    assert acct.co2e_g == pytest.approx(brute, rel=1e-4)


def test_decreasing_cumulative_energy_is_an_error():
    s = hourly(100.0)
    with pytest.raises(IntensityDataError, match="decreases"):
        account_samples(np.array([T0 + 1, T0 + 2]), np.array([10.0, 5.0]), s)
    with pytest.raises(IntensityDataError, match="same length"):
        account_samples(np.array([T0]), np.array([1.0, 2.0]), s)
    with pytest.raises(ConfigError, match="PUE"):
        account_samples(np.array([T0]), np.array([1.0]), s, pue=0.5)


def test_static_figure_and_prediction():
    assert static_co2e_g(2.0, 150.0) == 300.0
    assert predict_final(100.0, 5e5, 0.25) == pytest.approx(2e6)
    assert predict_final_s(100.0, 0.25) == pytest.approx(400.0)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="progress"):
            predict_final(10.0, 1.0, bad)
    with pytest.raises(ConfigError):
        predict_final(10.0, -1.0, 0.5)


def test_seven_days_of_one_second_samples_account_in_under_a_second():
    s = hourly(*np.random.default_rng(1).uniform(50, 500, size=24 * 8))
    t = T0 + np.arange(1, 604_801, dtype=np.float64)
    e = np.cumsum(np.full(t.size, 300.0))
    account_samples(t, e, s, start_s=T0)  # warm up
    best = min(_timed(lambda: account_samples(t, e, s, start_s=T0)) for _ in range(3))
    assert best < 1.0, f"accounting 604,800 samples took {best:.3f} s"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- accounting on a constant intensity (the static default) needs no numpy ---------------------
class _AsSeries(StaticSource):
    """The static source without its constant shortcut: accounting goes through the series."""

    def constant(self, zone: str) -> None:
        return None


def _run_series(rng: np.random.Generator, t0_s: float) -> dict:
    out = {}
    for device, power_w in (("gpu:0", 300.0), ("cpu:package-0", 60.0), ("dram:package-0", 9.0)):
        t = t0_s + np.cumsum(rng.uniform(0.5, 2.0, 400))
        e = np.cumsum(power_w * rng.uniform(0.2, 1.0, 400) * np.diff(t, prepend=t0_s))
        out[device] = (t.tolist(), e.tolist())
    out["gpu:1"] = ([], [])  # a device that never produced a reading
    return out


@pytest.mark.parametrize("zone", ["ES", "US-CA", "gcp:europe-west1"])
def test_constant_intensity_path_equals_the_series_path(zone: str) -> None:
    from greentrack.carbon.runcarbon import CarbonContext, account_run

    rng = np.random.default_rng(7)
    t0 = 1.7e9
    series = _run_series(rng, t0)
    t1 = max(t[-1] for t, _ in series.values() if t)
    phases = {"train": [(t0 + 1, t0 + 100, 5000.0), (t0 + 200, t0 + 300, 7000.0)], "eval": []}
    fast = account_run(CarbonContext(zone, "argument", StaticSource()), series=series,
                       phases=phases, t0_s=t0, t1_s=t1, pue=1.3)  # fmt: skip
    slow = account_run(CarbonContext(zone, "argument", _AsSeries()), series=series,
                       phases=phases, t0_s=t0, t1_s=t1, pue=1.3)  # fmt: skip
    assert fast.co2e_g > 0
    assert fast.co2e_g == pytest.approx(slow.co2e_g, rel=1e-12)
    assert fast.device_co2e_g.keys() == slow.device_co2e_g.keys()
    for d in fast.device_co2e_g:
        assert fast.device_co2e_g[d] == pytest.approx(slow.device_co2e_g[d], rel=1e-12)
    assert fast.phase_co2e_g == pytest.approx(slow.phase_co2e_g, rel=1e-12)
    assert fast.co2e_g_annual == pytest.approx(slow.co2e_g_annual, rel=1e-12)
    assert fast.provenance == slow.provenance and fast.provenance["name"] == "codecarbon-static"
    assert fast.series_json == slow.series_json
    assert fast.warnings == slow.warnings


def test_constant_intensity_path_keeps_the_checks() -> None:
    from greentrack.carbon.runcarbon import CarbonContext, account_run

    ctx = CarbonContext("ES", "argument", StaticSource())
    kw = {"phases": {}, "t0_s": 0.0, "t1_s": 10.0}
    with pytest.raises(IntensityDataError, match="decreases at sample 2"):
        account_run(ctx, series={"gpu:0": ([0, 1, 2], [0, 5, 4])}, pue=1.0, **kw)
    with pytest.raises(IntensityDataError, match="NaN"):
        account_run(ctx, series={"gpu:0": ([0, 1], [0, float("nan")])}, pue=1.0, **kw)
    with pytest.raises(ConfigError, match="PUE"):
        account_run(ctx, series={"gpu:0": ([0, 1], [0, 1])}, pue=0.9, **kw)
