"""Pause & Resume: run the job in the lowest-intensity time before its deadline, in segments.

A dynamic programme over cells of length ``q`` (the planning quantum: ``q = gcd(step, D, min_run,
W)`` in whole seconds, so ``q`` is the step itself for whole-hour jobs on hourly data, 30 min for
a 90 min job). It chooses the cells the job runs in so that every run segment lasts at least
``min_run`` (rounded up to whole cells, clipped to ``D``), there are at most ``max_pauses``
pauses, and the emissions — plus ``pause_power_w`` drawn while paused between segments — are
minimal. State: (work cells done, segments started, running or idle); work cell ``w`` carries its
energy ``E_w``, so a power profile costs ``c_i·E_w`` in cell ``i``. The DP is exact over plans
whose starts and pauses lie on the grid aligned to the data's steps (brute-force tested). For
constant power with the submission time on that grid (always in the study; ``--at`` on the hour
for hourly data) that is the optimum over *all* plans: inside each choice of steps the cost is
linear in the segment end points, and the constraints are bounds on grid points, differences of
consecutive end points (segments ≥ ``min_run``, pauses ≥ 0) and one total (= ``D``), so every
vertex lies on the grid (tests also check that finer grids never do better). For an off-grid
submission time the DP also runs on the same grid shifted to the submission time (cells straddling
steps, costed at their exact mean), both in one vectorised pass; the better plan — or the exact
Flexible Start plan, which has no pause and is always feasible — is returned, so ``pause_resume ≤
flexible_start ≤ run_now`` always holds.

**Duration not a whole number of cells**: when ``q`` would be too fine for the DP's size budget
(e.g. a 3 h 17 min 23 s profiled run), the quantum drops ``W`` then ``D`` from the gcd; the job
then occupies ``ceil(D / q)`` cells and its last cell is used only for the remainder (the plan's
final segment ends early by that much and may be shorter than ``min_run`` by less than one cell).
For very long jobs on fine data the cells may span several steps (costed at their mean; the
plan's ``warnings`` say so).

:func:`pr_dp` and :func:`quantum_options` are shared with the study
(:mod:`greentrack.scheduling.study`), which runs the same DP for every submission of a history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from greentrack.carbon.series import IntensitySeries
from greentrack.errors import ScheduleError
from greentrack.scheduling.cost import contiguous_g, evaluate_segments
from greentrack.scheduling.flexible import best_start, make_plan
from greentrack.scheduling.plan import Plan
from greentrack.scheduling.profile import EPS_S, PowerProfile, binned_for, job_profile
from greentrack.scheduling.window import check_window, resolve_slack, window_warnings
from greentrack.units import J_PER_KWH

__all__ = ["DEFAULT_MIN_RUN_S", "pause_resume", "pr_dp", "quantum_options"]

DEFAULT_MIN_RUN_S = 3600.0
"""Shortest run segment of a Pause & Resume plan (real jobs cannot stop every 5 minutes)."""
_DP_BUDGET = 3_000_000
"""Largest DP size (cells × work cells × segment counts) before the planning quantum coarsens."""


def _hankel(energy: np.ndarray, m: int) -> np.ndarray:
    """``H[u, n] = energy[n + u]`` for u < m, n ≤ N - m: block costs as one matrix product."""
    n_work = energy.size
    idx = np.arange(m)[:, None] + np.arange(n_work - m + 1)[None, :]
    return energy[idx]


def pr_dp(
    cell_c: np.ndarray,
    energy_kwh: np.ndarray,
    min_cells: int,
    max_segments: int | None,
    idle_g: np.ndarray | None = None,
    backtrack: bool = False,
) -> tuple[np.ndarray, list[list[int] | None] | None]:
    """Minimum emissions of running N work cells in T time cells, for S windows at once.

    States after cell ``i``: ``off[n, k, s]`` (cell i-1 idle: not started, paused or finished)
    and ``on[n, k, s]`` (cell i-1 runs, in a segment already ≥ m cells long), with ``n`` work
    cells done and ``k`` segments started. A segment starts from ``off`` with a block of exactly
    ``m`` cells (arriving ``m`` cells later) and then extends one cell at a time; a paused cell
    (0 < n < N) costs ``idle_g``. O(T·N·K·S) time, O(m·N·K·S) memory.

    Args:
        cell_c: (S, T) intensity of each time cell. Units: g/kWh. ``inf`` marks unusable cells.
        energy_kwh: (N,) energy of each work cell (the job's elapsed-time chunks). Units: kWh.
        min_cells: shortest segment, in cells (1 ≤ min_cells ≤ N).
        max_segments: cap on segments (None: unlimited).
        idle_g: (S, T) emissions of a paused cell between segments, or None. Units: g.
        backtrack: also return, per window, the used time cells (None where infeasible).

    Returns:
        (S,) minimum emissions in g (inf where infeasible), and the used cells when asked.
    """
    s_count, t_count = cell_c.shape
    n_work, m = energy_kwh.size, min_cells
    kd = (max_segments + 1) if max_segments is not None else 1
    k_step = 1 if max_segments is not None else 0
    # layout (work done n, segments k, window s): the windows axis is contiguous
    c_t = np.ascontiguousarray(cell_c.T)  # (T, S)
    bad_t = ~np.isfinite(c_t)  # unusable cells (padding): never run in them
    has_bad = bool(bad_t.any())
    if has_bad:  # keep inf out of sums and products (inf - inf, 0 W x inf are NaN)
        c_t = np.where(bad_t, 0.0, c_t)
        cum_bad = np.concatenate((np.zeros((1, s_count)), np.cumsum(bad_t, axis=0)))
    idle_t = None if idle_g is None else np.ascontiguousarray(idle_g.T)
    shape = (n_work + 1, kd, s_count)
    off = np.full(shape, np.inf)
    off[0, 0, :] = 0.0
    on = np.full(shape, np.inf)
    pending: dict[int, np.ndarray] = {}  # blocks of m cells arriving at a later i
    width = n_work - m + 1
    # block costs without BLAS (OpenBLAS threads small products and crawls on busy machines):
    # constant power (but maybe a shorter last cell) is a window sum; a profile accumulates.
    e0 = float(energy_kwh[0])
    constant = bool(np.all(energy_kwh[:-1] == e0))
    cum_c = np.concatenate((np.zeros((1, s_count)), np.cumsum(c_t, axis=0))) if constant else None
    e_last_extra = float(energy_kwh[-1]) - e0
    hank = _hankel(energy_kwh, m)[:, :, None]  # (m, N - m + 1, 1)
    block = np.empty((width, s_count))
    shifted = np.empty((n_work, kd, s_count))
    work = np.empty((n_work, 1, s_count))  # cost of cell i as work cell n
    energy_col = energy_kwh[:, None, None]
    src_block: list[np.ndarray | None] = []  # per i: where on[m:, k_step:] came from a block
    src_off: list[np.ndarray] = []  # per i: where off came from on
    for i in range(t_count):
        # a new segment of exactly m cells starting at cell i, after a pause (or at the start)
        if i + m <= t_count:
            if cum_c is not None:  # block[n] = e0·Σc over the m cells (+ the last cell's excess)
                block[:] = e0 * (cum_c[i + m] - cum_c[i])
                if e_last_extra:
                    block[width - 1] += e_last_extra * c_t[i + m - 1]
            else:  # block[n] = Σ_u E[n + u]·c[i + u]
                np.multiply(hank[0], c_t[i], out=block)
                for u in range(1, m):
                    block += hank[u] * c_t[i + u]
            if has_bad:
                block[:, cum_bad[i + m] > cum_bad[i]] = np.inf
            arrive = off[:width, : kd - k_step, :] + block[:, None, :]
            prev = pending.get(i + m)
            pending[i + m] = arrive if prev is None else np.minimum(prev, arrive, out=prev)
        if backtrack:
            src_off.append(on < off)
        np.minimum(off, on, out=off)  # cell i idle
        if idle_t is not None and n_work > 1:
            off[1:n_work] += idle_t[i]  # paused between segments
        # cell i extends the running segment
        np.multiply(energy_col, c_t[i], out=work)
        if has_bad:
            work[:, :, bad_t[i]] = np.inf
        np.add(on[:-1], work, out=shifted)
        on[1:] = shifted
        on[0] = np.inf
        arrived = pending.pop(i + 1, None)
        if arrived is not None:
            target = on[m:, k_step:, :]
            if backtrack:
                src_block.append(arrived < target)
            np.minimum(target, arrived, out=target)
        elif backtrack:
            src_block.append(None)
    final = np.minimum(off[n_work], on[n_work])  # (kd, S)
    best = final.min(axis=0)
    if not backtrack:
        return best, None
    paths: list[list[int] | None] = []
    for s_i in range(s_count):
        if not np.isfinite(best[s_i]):
            paths.append(None)
            continue
        k = int(np.argmin(final[:, s_i]))  # fewest segments among equal costs
        state = "on" if on[n_work, k, s_i] <= off[n_work, k, s_i] else "off"
        used: list[int] = []
        i, n = t_count, n_work
        while i > 0:
            mask = src_block[i - 1]
            if state == "off":
                state = "on" if src_off[i - 1][n, k, s_i] else "off"
                i -= 1
            elif mask is not None and n >= m and k >= k_step and mask[n - m, k - k_step, s_i]:
                used.extend(range(i - m, i))
                n -= m
                k -= k_step
                i -= m
                state = "off"
            else:
                used.append(i - 1)
                n -= 1
                i -= 1
        assert n == 0, "Pause & Resume backtrack must end with no work left"
        paths.append(sorted(used))
    return best, paths


def quantum_options(step_s: float, d: float, m: float, w: float) -> list[tuple[float, str]]:
    """Planning quanta from finest (exact) to coarsest, with what each gives up."""

    def s(x: float) -> int:
        return round(x)

    step_i = max(1, s(step_s))
    opts = [
        (math.gcd(step_i, s(d), s(m), s(w)), ""),
        (math.gcd(step_i, s(d), s(m)), "the last partial cell of the window is not used"),
        (math.gcd(step_i, s(m)), "the duration is rounded up to whole cells"),
        (step_i, "segments are whole steps"),
    ]
    mult = 2
    while mult <= 1 << 20:
        opts.append((step_i * mult, f"cells of {mult} steps (mean intensity per cell)"))
        mult *= 2
    out: list[tuple[float, str]] = []
    for q, note in opts:
        if q > 0 and all(q != o for o, _ in out):
            out.append((float(q), note))
    return out


def _work_energy_kwh(job: PowerProfile, q: float) -> np.ndarray:
    n_work = max(1, math.ceil(job.duration_s / q - 1e-9))
    edges = np.minimum(np.arange(n_work + 1) * q, job.duration_s)
    return np.diff(job.cumulative_j(edges)) / J_PER_KWH


def _pr_on_grids(
    series: IntensitySeries,
    origins_s: Sequence[float],
    t_hi: float,
    q: float,
    job: PowerProfile,
    min_run_s: float,
    max_pauses: int | None,
    pause_power_w: float,
) -> list[list[tuple[float, float]] | None]:
    """DP plans on cells ``[g0 + iq, g0 + (i+1)q)`` up to ``t_hi``, one per origin ``g0``.

    All grids go through one vectorised DP (shorter ones padded with unusable cells).
    """
    energy = _work_energy_kwh(job, q)
    n_work = energy.size
    counts = [math.floor((t_hi - g0) / q + 1e-9) for g0 in origins_s]
    t_count = max(counts)
    if t_count < n_work:
        return [None] * len(origins_s)
    m = min(n_work, max(1, math.ceil(min_run_s / q - 1e-9)))
    cell_c = np.full((len(origins_s), t_count), np.inf)
    for row, (g0, count) in enumerate(zip(origins_s, counts, strict=True)):
        edges = g0 + np.arange(count + 1) * q
        cell_c[row, :count] = series.mean(edges[:-1], edges[1:])
    idle = cell_c * (pause_power_w * q / J_PER_KWH) if pause_power_w > 0 else None
    kcap = None if max_pauses is None else max_pauses + 1
    _, paths = pr_dp(cell_c, energy, m, kcap, idle, backtrack=True)
    rem = job.duration_s - (n_work - 1) * q
    out: list[list[tuple[float, float]] | None] = []
    for g0, used in zip(origins_s, paths or [], strict=True):
        if used is None:
            out.append(None)
            continue
        segs: list[list[float]] = []
        for c in used:
            start = g0 + c * q
            if segs and abs(segs[-1][1] - start) < EPS_S:
                segs[-1][1] = start + q
            else:
                segs.append([start, start + q])
        segs[-1][1] -= q - rem  # the last cell holds only the remainder of the job
        out.append([(a, b) for a, b in segs])
    return out


def pause_resume(
    series: IntensitySeries,
    at_s: float,
    duration_s: float | None = None,
    *,
    within_s: float | None = None,
    deadline_s: float | None = None,
    min_run_s: float | None = None,
    max_pauses: int | None = None,
    power_w: float | None = None,
    profile: PowerProfile | Sequence[float] | None = None,
    pause_power_w: float = 0.0,
) -> Plan:
    """Run in the lowest-intensity time before the deadline, in segments of at least ``min_run_s``.

    Args:
        min_run_s: shortest run segment (default :data:`DEFAULT_MIN_RUN_S`, clipped to the job).
        max_pauses: most pauses allowed (None: no cap; 0: equals Flexible Start).
        pause_power_w: power drawn while paused between segments (a stopped process on a GPU
            still draws idle power). Units: W.
    """
    job = binned_for(job_profile(duration_s, power_w, profile), series.step_s)
    d = job.duration_s
    w = resolve_slack(at_s, d, within_s, deadline_s)
    w, deadline = check_window(series, at_s, d, w)
    m_s = DEFAULT_MIN_RUN_S if min_run_s is None else float(min_run_s)
    if m_s < 0:
        raise ScheduleError(f"--min-run must not be negative (got {min_run_s})")
    if max_pauses is not None and max_pauses < 0:
        raise ScheduleError(f"--max-pauses must be 0 or more (got {max_pauses})")
    if pause_power_w < 0:
        raise ScheduleError(f"--pause-power-w must not be negative (got {pause_power_w})")
    m_eff = min(m_s, d)
    e0 = float(contiguous_g(series, np.array([at_s]), job)[0])
    t_fs, e_fs = best_start(series, at_s, w, job)
    if e_fs >= e0:
        t_fs, e_fs = at_s, e0
    best_segs: list[tuple[float, float]] = [(t_fs, t_fs + d)]
    best_e = e_fs
    note = ""
    q_used = None
    kd = 1 if max_pauses is None else max_pauses + 2
    for q, why in quantum_options(series.step_s, d, m_eff, w):
        n_work = math.ceil(d / q - 1e-9)
        t_count = math.floor((d + w) / q + 1e-9)
        if t_count * (n_work + 1) * kd <= _DP_BUDGET:
            q_used, note = q, why
            break
    warnings = window_warnings(series, at_s, deadline)
    if q_used is not None:
        s0 = float(series.start_s[0])
        step_grid = s0 + math.ceil((at_s - s0) / q_used - 1e-9) * q_used
        grids = [step_grid]
        if abs(step_grid - at_s) > EPS_S:
            grids.append(at_s)  # the same grid shifted to the submission time
        plans = _pr_on_grids(series, grids, deadline, q_used, job, m_eff, max_pauses, pause_power_w)
        for segs in plans:
            if segs is None:
                continue
            e = evaluate_segments(series, segs, job, pause_power_w)
            if e < best_e * (1 - 1e-9) - 1e-12:
                best_e, best_segs = e, segs
        if note:
            warnings.append(f"Pause & Resume planned on {q_used:g} s cells: {note}")
    else:  # pragma: no cover - only for absurd sizes
        warnings.append("Pause & Resume grid too large; returned the Flexible Start plan")
    grid_text = f"{q_used:g} s cells" if q_used else "no grid"
    return make_plan(
        "pause_resume",
        best_segs,
        series,
        job,
        at_s,
        deadline,
        best_e,
        e0,
        alternatives={"run_now": e0, "flexible_start": e_fs, "pause_resume": best_e},
        method=(
            f"dynamic programme over {grid_text} (exact over plans whose starts and pauses fall on "
            "the cells, aligned to the data's steps or to the submission time); never worse than "
            "the exact Flexible Start plan"
        ),
        min_run_s=m_s,
        max_pauses=max_pauses,
        pause_power_w=pause_power_w,
        warnings=warnings,
    )
