"""Scheduling algorithms: brute force against the fast paths, invariants, hand-worked examples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.errors import ScheduleError
from greentrack.scheduling.cost import evaluate_segments
from greentrack.scheduling.flexible import flexible_start, run_now
from greentrack.scheduling.pause_resume import pause_resume, pr_dp
from greentrack.scheduling.plan import pause_windows, resume_at, should_pause
from greentrack.scheduling.planner import plan_series
from greentrack.scheduling.profile import PowerProfile, profile_from_samples
from greentrack.scheduling.study import format_study, study_series
from greentrack.scheduling.times import parse_duration, parse_time
from greentrack.timefmt import format_time
from greentrack.units import J_PER_KWH

H = 3600.0
PROV = Provenance("test", "XX", "average", "unit")


def series(values, step_s=H, start_s=0.0) -> IntensitySeries:
    v = np.asarray(values, dtype=np.float64)
    return IntensitySeries(start_s + np.arange(v.size) * step_s, v, step_s, PROV)


# ---------------------------------------------------------------- hand-worked examples


def test_hand_worked_flexible_start_on_boundary():
    # 1 kW for 2 h: run now = 100 + 50 g; best start 02:00 -> 10 + 10 g.
    s = series([100, 50, 10, 10, 80, 200])
    p = flexible_start(s, 0.0, 2 * H, within_s=3 * H)
    assert p.run_now_co2e_g == pytest.approx(150.0)
    assert p.expected_co2e_g == pytest.approx(20.0)
    assert p.start_s == 2 * H
    assert p.saving_pct == pytest.approx(100 * (1 - 20 / 150))
    assert [(g.start_s, g.end_s) for g in p.segments] == [(2 * H, 4 * H)]


def test_hand_worked_flexible_start_mid_step():
    # [50, 10, 100], 1.5 h job, 1 h slack. Start 00:30 ends on the 02:00 boundary:
    # 0.5·50 + 1·10 = 35 g; start 00:00 -> 50 + 5 = 55 g; start 01:00 -> 10 + 50 = 60 g.
    s = series([50, 10, 100])
    p = flexible_start(s, 0.0, 1.5 * H, within_s=1 * H)
    assert p.start_s == pytest.approx(0.5 * H)
    assert p.expected_co2e_g == pytest.approx(35.0)
    assert p.run_now_co2e_g == pytest.approx(55.0)


def test_hand_worked_pause_resume():
    s = series([10, 100, 10, 100, 10, 100])
    pr = pause_resume(s, 0.0, 3 * H, within_s=3 * H, min_run_s=H)
    assert pr.expected_co2e_g == pytest.approx(30.0)
    assert [(g.start_s / H, g.end_s / H) for g in pr.segments] == [(0, 1), (2, 3), (4, 5)]
    assert pr.pauses == 2
    # min run 2 h: only one contiguous 3 h run fits -> 10 + 100 + 10
    pr2 = pause_resume(s, 0.0, 3 * H, within_s=3 * H, min_run_s=2 * H)
    assert pr2.expected_co2e_g == pytest.approx(120.0)
    # no pauses allowed -> Flexible Start
    pr0 = pause_resume(s, 0.0, 3 * H, within_s=3 * H, max_pauses=0)
    assert pr0.expected_co2e_g == pytest.approx(120.0)
    assert pr0.pauses == 0
    # one pause: two tens and one hundred
    pr1 = pause_resume(s, 0.0, 3 * H, within_s=3 * H, max_pauses=1)
    assert pr1.expected_co2e_g == pytest.approx(120.0)
    assert pr1.pauses <= 1


def test_pause_power_makes_pausing_cost():
    s = series([10, 100, 10, 100, 10, 100])
    # pausing at the job's own power costs as much as running: no pause pays off
    full = pause_resume(s, 0.0, 3 * H, within_s=3 * H, pause_power_w=1000.0)
    assert full.pauses == 0 and full.expected_co2e_g == pytest.approx(120.0)
    # 100 W idle: 30 g of running + 0.1 · (100 + 100) g of pausing
    idle = pause_resume(s, 0.0, 3 * H, within_s=3 * H, pause_power_w=100.0)
    assert idle.expected_co2e_g == pytest.approx(50.0)
    assert idle.pauses == 2


def test_half_step_segments_when_min_run_is_not_whole_steps():
    # 3 h job, min run 1.5 h: two 1.5 h segments, each one full cheap hour plus half of the next.
    s = series([10, 40, 500, 500, 10, 40, 500])
    pr = pause_resume(s, 0.0, 3 * H, within_s=4 * H, min_run_s=1.5 * H)
    assert pr.expected_co2e_g == pytest.approx(2 * (10 + 20))
    assert [(g.start_s / H, g.end_s / H) for g in pr.segments] == [(0, 1.5), (4, 5.5)]


def test_duration_not_whole_steps_is_time_weighted():
    s = series([100, 200, 300])
    p = run_now(s, 0.0, 1.25 * H)
    assert p.expected_co2e_g == pytest.approx(100 + 0.25 * 200)
    p = run_now(s, 0.5 * H, 1.0 * H)
    assert p.expected_co2e_g == pytest.approx(0.5 * 100 + 0.5 * 200)


def test_power_scales_emissions():
    s = series([100, 200, 300])
    assert run_now(s, 0.0, H, power_w=250).expected_co2e_g == pytest.approx(25.0)


def test_to_dict_contract():
    s = series([100, 50, 10, 10, 80, 200], start_s=1646121600.0)  # 2022-03-01T08:00Z
    d = pause_resume(s, 1646121600.0, 2 * H, within_s=3 * H).to_dict()
    for key in (
        "strategy",
        "start",
        "segments",
        "expected_co2e_g",
        "run_now_co2e_g",
        "saving_pct",
        "source",
    ):
        assert key in d
    assert d["start"] == "2022-03-01T10:00:00Z"
    assert d["segments"] == [{"start": "2022-03-01T10:00:00Z", "end": "2022-03-01T12:00:00Z"}]
    assert d["source"]["zone"] == "XX"


# ---------------------------------------------------------------- brute force: Flexible Start


def _fs_grid_min(s, a, d, w, job, res_s):
    t = a + res_s * np.arange(int(np.floor(w / res_s + 1e-9)) + 1)
    t = np.append(t, a + w)
    costs = [evaluate_segments(s, [(x, x + d)], job) for x in t]
    return min(costs), t[int(np.argmin(costs))]


@pytest.mark.parametrize("seed", range(12))
def test_flexible_start_exact_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    step = float(rng.choice([300.0, 900.0, 1800.0, 3600.0]))
    s = series(rng.uniform(20, 500, 60), step_s=step, start_s=1.6e9)
    # every breakpoint on a 60 s grid: a brute-force search on that grid is exact
    a = 1.6e9 + 60.0 * rng.integers(0, 200)
    d = 60.0 * rng.integers(1, 400)
    w = 60.0 * rng.integers(0, 300)
    if a + d + w > s.end_s:
        w = max(0.0, s.end_s - a - d)
    p = flexible_start(s, a, d, within_s=w)
    brute, _ = _fs_grid_min(s, a, d, w, PowerProfile.constant(1000.0, d), 60.0)
    assert p.expected_co2e_g == pytest.approx(brute, rel=1e-9)
    assert p.expected_co2e_g == pytest.approx(
        evaluate_segments(s, [(p.start_s, p.start_s + d)], PowerProfile.constant(1e3, d))
    )


@pytest.mark.parametrize("seed", range(6))
def test_flexible_start_unaligned_never_beaten(seed):
    rng = np.random.default_rng(100 + seed)
    s = series(rng.uniform(20, 500, 40), start_s=0.0)
    a, d, w = rng.uniform(0, 5 * H), rng.uniform(0.3 * H, 7 * H), rng.uniform(0, 20 * H)
    p = flexible_start(s, a, d, within_s=w)
    job = PowerProfile.constant(1000.0, d)
    brute, _ = _fs_grid_min(s, a, d, w, job, 37.0)
    assert p.expected_co2e_g <= brute + 1e-9
    slope = 2 * 500.0 * 1000.0 / J_PER_KWH  # |dE/dt| bound, g per s
    assert brute - p.expected_co2e_g <= slope * 37.0 + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_flexible_start_with_profile_exact(seed):
    rng = np.random.default_rng(200 + seed)
    s = series(rng.uniform(20, 500, 48))
    bins = rng.integers(2, 9)
    prof = PowerProfile(rng.uniform(50, 400, bins), 900.0)
    a, w = 900.0 * rng.integers(0, 8), 900.0 * rng.integers(0, 60)
    p = flexible_start(s, a, within_s=w, profile=prof)
    brute, _ = _fs_grid_min(s, a, prof.duration_s, w, prof, 900.0)
    assert p.expected_co2e_g == pytest.approx(brute, rel=1e-9)
    assert p.energy_kwh == pytest.approx(prof.energy_j / J_PER_KWH)


def test_constant_profile_equals_constant_power():
    rng = np.random.default_rng(7)
    s = series(rng.uniform(20, 500, 48))
    a = flexible_start(s, 0.0, 5 * H, within_s=20 * H, power_w=300.0)
    b = flexible_start(s, 0.0, 5 * H, within_s=20 * H, profile=[300.0] * 7)
    assert a.expected_co2e_g == pytest.approx(b.expected_co2e_g)
    assert a.start_s == b.start_s


def test_profile_stretched_to_duration():
    prof = PowerProfile(np.array([100.0, 300.0]), 600.0)  # 20 min
    st = prof.stretched(3600.0)
    assert st.duration_s == 3600.0 and st.energy_j == pytest.approx(200.0 * 3600)


# ---------------------------------------------------------------- brute force: Pause & Resume DP


def _brute_pr(c, energy, m, cap, idle):
    t_count, n = len(c), len(energy)
    best = math.inf
    for cells in itertools.combinations(range(t_count), n):
        if any(math.isinf(c[i]) for i in cells):
            continue  # unusable cell
        runs = [list(g) for _, g in itertools.groupby(enumerate(cells), lambda x: x[1] - x[0])]
        if any(len(r) < m for r in runs) or (cap is not None and len(runs) > cap):
            continue
        cost = sum(c[i] * energy[j] for j, i in enumerate(cells))
        if idle is not None:
            cost += sum(idle[i] for i in range(cells[0], cells[-1]) if i not in cells)
        best = min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(30))
def test_dp_with_unusable_cells_and_zero_energy(seed):
    rng = np.random.default_rng(1000 + seed)
    t_count = int(rng.integers(2, 10))
    n = int(rng.integers(1, t_count + 1))
    m = int(rng.integers(1, n + 1))
    cap = None if seed % 2 else int(rng.integers(1, 4))
    c = rng.uniform(0, 100, t_count)
    c[rng.random(t_count) < 0.25] = np.inf  # padding / unusable cells anywhere
    energy = rng.uniform(0.1, 2.0, n) if seed % 3 else np.ones(n)
    energy[rng.random(n) < 0.3] = 0.0  # a profile with idle bins
    if seed % 5 == 0:
        energy[:-1] = energy[0]  # constant but for the last cell (a trimmed job)
    idle = c * 0.1 if seed % 4 == 1 else None
    best, paths = pr_dp(
        c[None, :], energy, m, cap, None if idle is None else idle[None, :], backtrack=True
    )
    want = _brute_pr(c, energy, m, cap, idle)
    assert not np.isnan(best[0])
    if math.isinf(want):
        assert math.isinf(best[0]) and paths[0] is None
    else:
        assert best[0] == pytest.approx(want)
        assert all(np.isfinite(c[i]) for i in paths[0])


@pytest.mark.parametrize("seed", range(40))
def test_dp_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    t_count = int(rng.integers(1, 10))
    n = int(rng.integers(1, t_count + 1))
    m = int(rng.integers(1, n + 1))
    cap = None if seed % 2 else int(rng.integers(1, 4))
    c = rng.uniform(0, 100, t_count)
    energy = rng.uniform(0.1, 2.0, n) if seed % 3 == 0 else np.ones(n)
    idle = rng.uniform(0, 20, t_count) if seed % 4 == 1 else None
    best, paths = pr_dp(
        c[None, :], energy, m, cap, None if idle is None else idle[None, :], backtrack=True
    )
    used = paths[0]
    want = _brute_pr(c, energy, m, cap, idle)
    if math.isinf(want):
        assert math.isinf(best[0]) and used is None
        return
    assert best[0] == pytest.approx(want)
    # the backtracked plan is feasible and costs what the DP says
    assert len(used) == n
    got = sum(c[i] * energy[j] for j, i in enumerate(used))
    if idle is not None:
        got += sum(idle[i] for i in range(used[0], used[-1]) if i not in used)
    assert got == pytest.approx(want)


@pytest.mark.parametrize("seed", range(8))
def test_dp_vectorised_over_windows(seed):
    rng = np.random.default_rng(50 + seed)
    c = rng.uniform(0, 100, (7, 8))
    best, _ = pr_dp(c, np.ones(4), 2, None)
    for i in range(7):
        assert best[i] == pytest.approx(_brute_pr(c[i], np.ones(4), 2, None, None))


def test_grid_optimum_is_not_beaten_by_finer_grids():
    """The documented claim: with aligned inputs, cuts on the step grid lose nothing."""
    rng = np.random.default_rng(3)
    for _ in range(150):
        t_count = int(rng.integers(2, 9))
        n = int(rng.integers(1, t_count + 1))
        m = int(rng.integers(1, n + 1))
        cap = None if rng.random() < 0.5 else int(rng.integers(1, 4))
        c = rng.uniform(0, 100, t_count)
        best, _ = pr_dp(c[None, :], np.ones(n), m, cap)
        for r in (2, 3):
            fine, _ = pr_dp(np.repeat(c, r)[None, :], np.ones(n * r) / r, m * r, cap)
            assert fine[0] >= best[0] - 1e-9


@pytest.mark.parametrize("seed", range(10))
def test_pause_resume_plan_against_brute_force(seed):
    rng = np.random.default_rng(300 + seed)
    s = series(rng.uniform(20, 500, 30), start_s=1.6e9)
    n, extra = int(rng.integers(1, 5)), int(rng.integers(0, 5))
    m = int(rng.integers(1, n + 1))
    p = pause_resume(s, 1.6e9 + H, n * H, within_s=extra * H, min_run_s=m * H)
    c = s.g_per_kwh[1 : 1 + n + extra]
    assert p.expected_co2e_g == pytest.approx(_brute_pr(c, np.ones(n), m, None, None))
    assert sum(g.duration_s for g in p.segments) == pytest.approx(n * H)
    assert all(g.duration_s >= m * H - 1e-6 for g in p.segments)
    assert p.segments[0].start_s >= p.submitted_s and p.end_s <= p.deadline_s + 1e-6


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("seed", range(15))
def test_invariants_random(seed):
    rng = np.random.default_rng(400 + seed)
    step = float(rng.choice([300.0, 900.0, 3600.0]))
    s = series(rng.uniform(0, 600, 400), step_s=step)
    a = float(rng.uniform(0, 20 * step))
    d = float(rng.choice([step, 2 * step, 3600.0, 5400.0, 4 * 3600.0, rng.uniform(600, 3 * 3600)]))
    w = float(rng.uniform(0, min(12 * 3600, s.end_s - a - d - 1)))
    m = float(rng.choice([step, 3600.0, 1800.0]))
    now = run_now(s, a, d)
    fs = flexible_start(s, a, d, within_s=w)
    pr = pause_resume(s, a, d, within_s=w, min_run_s=m)
    assert pr.expected_co2e_g <= fs.expected_co2e_g + 1e-9
    assert fs.expected_co2e_g <= now.expected_co2e_g + 1e-9
    assert fs.run_now_co2e_g == pytest.approx(now.expected_co2e_g)
    job = PowerProfile.constant(1000.0, d)
    assert pr.expected_co2e_g == pytest.approx(evaluate_segments(s, pr.segments, job))
    assert sum(g.duration_s for g in pr.segments) == pytest.approx(d)
    assert pr.segments[0].start_s >= a - 1e-6 and pr.end_s <= a + d + w + 1e-6
    for x, y in itertools.pairwise(pr.segments):
        assert y.start_s > x.end_s
    if d <= m:  # one segment: Pause & Resume cannot beat Flexible Start
        assert pr.expected_co2e_g == pytest.approx(fs.expected_co2e_g)


def test_one_step_job_all_equal_with_zero_slack_and_pr_equals_fs():
    rng = np.random.default_rng(9)
    s = series(rng.uniform(0, 600, 48))
    fs = flexible_start(s, 0.0, H, within_s=10 * H)
    pr = pause_resume(s, 0.0, H, within_s=10 * H)  # default min run 1 h = one step
    assert pr.expected_co2e_g == pytest.approx(fs.expected_co2e_g)
    for strat in ("flexible_start", "pause_resume"):
        p = plan_series(s, 0.0, 6 * H, strategy=strat, within_s=0.0)
        assert p.expected_co2e_g == pytest.approx(p.run_now_co2e_g)
        assert p.saving_pct == pytest.approx(0.0)


def test_constant_series_saves_nothing_and_says_so():
    s = series([200.0] * 48)
    p = pause_resume(s, 0.0, 6 * H, within_s=24 * H)
    assert p.saving_pct == pytest.approx(0.0)
    assert p.start_s == 0.0 and p.pauses == 0  # ties go to running now
    assert any("constant" in w for w in p.warnings)


def test_five_minute_series_default_min_run_is_an_hour():
    rng = np.random.default_rng(11)
    s = series(rng.uniform(0, 600, 24 * 12 * 3), step_s=300.0)
    p = pause_resume(s, 0.0, 3 * H, within_s=24 * H)
    assert all(g.duration_s >= H - 1e-6 for g in p.segments)
    q = pause_resume(s, 0.0, 3 * H, within_s=24 * H, min_run_s=300.0)
    assert q.expected_co2e_g <= p.expected_co2e_g + 1e-9


def test_max_pauses_cap_respected():
    rng = np.random.default_rng(12)
    s = series(rng.uniform(0, 600, 72))
    for cap in (0, 1, 2, 3):
        p = pause_resume(s, 0.0, 8 * H, within_s=30 * H, max_pauses=cap)
        assert p.pauses <= cap
    caps = [
        pause_resume(s, 0.0, 8 * H, within_s=30 * H, max_pauses=c).expected_co2e_g
        for c in (0, 1, 2, 3)
    ]
    assert all(x >= y - 1e-9 for x, y in itertools.pairwise(caps))


def test_profile_pause_resume_is_consistent():
    rng = np.random.default_rng(13)
    s = series(rng.uniform(0, 600, 48))
    prof = PowerProfile(np.array([400.0, 100.0, 100.0, 300.0]), 1800.0)  # 2 h
    pr = pause_resume(s, 0.0, within_s=12 * H, profile=prof, min_run_s=1800.0)
    fs = flexible_start(s, 0.0, within_s=12 * H, profile=prof)
    assert pr.expected_co2e_g <= fs.expected_co2e_g + 1e-9
    assert pr.expected_co2e_g == pytest.approx(evaluate_segments(s, pr.segments, prof))


# ---------------------------------------------------------------- helpers for the runner


def test_should_pause_and_resume_at():
    s = series([10, 100, 10, 100, 10, 100])
    p = pause_resume(s, 0.0, 3 * H, within_s=3 * H)
    assert not should_pause(p, 0.5 * H)
    assert should_pause(p, 1.5 * H)
    assert resume_at(p, 1.5 * H) == 2 * H
    assert not should_pause(p, 2.5 * H)
    assert not should_pause(p, 5.5 * H)  # after the plan: an overrunning job keeps going
    d = p.to_dict()
    assert should_pause(d, 3.5 * H) and not should_pause(d, 4.2 * H)
    del d["segments_s"]  # only the ISO strings, as a human might store them
    assert should_pause(d, 1.5 * H)
    assert pause_windows(p) == [(1 * H, 2 * H), (3 * H, 4 * H)]
    assert not should_pause({"segments": []}, 0.0)


# ---------------------------------------------------------------- study


def test_study_matches_per_submission_plans():
    rng = np.random.default_rng(21)
    s = series(rng.uniform(20, 500, 60))
    res = study_series(s, [2 * H, 5 * H], 6 * H)
    rows = {(r.duration_h, r.strategy): r for r in res.rows}
    for d_h in (2, 5):
        count = 60 - d_h - 6 + 1
        e0, efs, epr = [], [], []
        for k in range(count):
            fs = flexible_start(s, k * H, d_h * H, within_s=6 * H)
            pr = pause_resume(s, k * H, d_h * H, within_s=6 * H)
            e0.append(fs.run_now_co2e_g)
            efs.append(fs.expected_co2e_g)
            epr.append(pr.expected_co2e_g)
        e0, efs, epr = map(np.array, (e0, efs, epr))
        for name, e in (("flexible_start", efs), ("pause_resume", epr)):
            row = rows[(float(d_h), name)]
            assert row.submissions == count
            assert row.mean_reduction_pct == pytest.approx(np.mean(100 * (1 - e / e0)))
            assert row.aggregate_reduction_pct == pytest.approx(100 * (1 - e.sum() / e0.sum()))
        assert (
            rows[(float(d_h), "pause_resume")].aggregate_reduction_pct
            >= rows[(float(d_h), "flexible_start")].aggregate_reduction_pct - 1e-9
        )


def test_study_non_whole_step_duration_and_rows():
    rng = np.random.default_rng(22)
    s = series(rng.uniform(20, 500, 40))
    res = study_series(s, [1.5 * H], [0.0, 4 * H], min_run_s=H)
    zero = [r for r in res.rows if r.within_h == 0]
    assert all(r.mean_reduction_pct == pytest.approx(0.0) for r in zero)
    pr = next(r for r in res.rows if r.within_h == 4 and r.strategy == "pause_resume")
    fs = next(r for r in res.rows if r.within_h == 4 and r.strategy == "flexible_start")
    assert pr.aggregate_reduction_pct >= fs.aggregate_reduction_pct - 1e-9
    # a sample submission agrees with the single plan (job starts on step boundaries)
    plan = pause_resume(s, 3 * H, 1.5 * H, within_s=4 * H, min_run_s=H)
    per = res.reductions_pct[(1.5, 4.0, "pause_resume")]
    assert per[3] == pytest.approx(plan.saving_pct)
    md = format_study([res])
    assert md.startswith("| zone |") and "aggregate reduction" in md


def test_study_too_short_data():
    with pytest.raises(ScheduleError, match="shorter than"):
        study_series(series([1.0] * 10), [6 * H], 24 * H)


# ---------------------------------------------------------------- bad input and times


def test_deadline_before_duration():
    s = series([100.0] * 48)
    with pytest.raises(ScheduleError, match="too early") as e:
        flexible_start(s, 0.0, 6 * H, deadline_s=4 * H)
    assert "\n" not in str(e.value)


def test_window_outside_data():
    s = series([100.0, 200.0] * 24, start_s=1.6e9)
    with pytest.raises(ScheduleError, match=r"covers .* but the plan needs"):
        flexible_start(s, 1.6e9 + 40 * H, 6 * H, within_s=24 * H)


def test_within_and_deadline_rules():
    s = series([100.0, 200.0] * 24)
    with pytest.raises(ScheduleError, match="not both"):
        flexible_start(s, 0.0, H, within_s=H, deadline_s=5 * H)
    with pytest.raises(ScheduleError, match="--within"):
        flexible_start(s, 0.0, H)
    p = flexible_start(s, 0.0, H, deadline_s=5 * H)
    assert p.deadline_s == 5 * H and p.within_s == 4 * H
    with pytest.raises(ScheduleError, match="positive"):
        flexible_start(s, 0.0, 0.0, within_s=H)
    with pytest.raises(ScheduleError, match="strategy"):
        plan_series(s, 0.0, H, strategy="nope", within_s=H)
    with pytest.raises(ScheduleError, match="need --pause-resume"):
        plan_series(s, 0.0, H, within_s=H, min_run_s=H)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6h", 21600),
        ("90m", 5400),
        ("1h30m", 5400),
        ("3600s", 3600),
        ("2d", 172800),
        ("PT6H", 21600),
        ("1.5h", 5400),
        ("10min", 600),
        (42, 42),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["6", "six hours", "6hx", "-1h", ""])
def test_parse_duration_bad(bad):
    with pytest.raises(ScheduleError):
        parse_duration(bad)


def test_parse_time_zones_and_dst():
    utc = parse_time("2022-03-01T08:00Z")
    assert utc == 1646121600.0
    assert parse_time("2022-03-01T09:00+01:00") == utc
    assert parse_time("2022-03-01T08:00") == utc  # naive = UTC
    assert parse_time("2022-03-01T09:00", tz="Europe/Madrid") == utc
    assert parse_time("2022-03-01T09:00[Europe/Madrid]") == utc
    assert format_time(utc) == "2022-03-01T08:00:00Z"
    with pytest.raises(ScheduleError, match="does not exist in Europe/Madrid"):
        parse_time("2022-03-27T02:30", tz="Europe/Madrid")
    with pytest.raises(ScheduleError, match="happens twice"):
        parse_time("2022-10-30T02:30[Europe/Madrid]")
    with pytest.raises(ScheduleError, match="unknown time zone"):
        parse_time("2022-10-30T02:30", tz="Europe/Madird")
    with pytest.raises(ScheduleError, match="ISO 8601"):
        parse_time("tomorrow")
    # a day across the spring change is 23 local hours but 24 h of job time are 24 real hours
    a = parse_time("2022-03-26T12:00", tz="Europe/Madrid")
    b = parse_time("2022-03-27T12:00", tz="Europe/Madrid")
    assert b - a == 23 * H
    assert parse_time("now", now_s=5.0) == 5.0 and parse_time(None, now_s=7.0) == 7.0


def test_profile_from_samples_uses_counters():
    t = np.array([0.0, 1, 2, 3, 4, 0, 1, 2, 3, 4]) + 1e9
    energy = np.array([0.0, 100, 200, 300, 400, 0, 50, 50, 50, 50])  # 100 W, then 50 J once
    samples = {
        "t_s": t,
        "device": np.array(["gpu0"] * 5 + ["cpu"] * 5, dtype=object),
        "component": np.array(["gpu"] * 5 + ["cpu"] * 5, dtype=object),
        "rank": np.zeros(10, dtype=np.int64),
        "energy_j": energy,
        "power_w": np.full(10, np.nan),
    }
    prof = profile_from_samples(samples)
    assert prof.duration_s == 4.0
    assert prof.energy_j == pytest.approx(450.0)
    assert prof.power_w.tolist() == pytest.approx([150.0, 100.0, 100.0, 100.0])
    with pytest.raises(ScheduleError):
        profile_from_samples({"t_s": np.array([1.0]), "energy_j": np.array([0.0])})
