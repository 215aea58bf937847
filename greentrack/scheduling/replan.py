"""Re-planning on a live forecast: while waiting for the start, and between run segments.

While waiting, the forecast is fetched again every :data:`REPLAN_EVERY_S` (15 min); if the current
plan's expected emissions under the new forecast moved by more than :data:`REPLAN_THRESHOLD_PCT`
(10 %), the job is re-planned from now to the same deadline (:meth:`Replanner.__call__`). At each
pause of a Pause & Resume job, the work left is re-planned (:meth:`Replanner.remaining`): the new
timetable replaces the old one when it saves more than the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greentrack.errors import GreentrackError, ScheduleError
from greentrack.scheduling.cost import evaluate_segments
from greentrack.scheduling.planner import plan_series
from greentrack.units import J_PER_KWH

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries
    from greentrack.scheduling.plan import Plan
    from greentrack.scheduling.profile import PowerProfile

__all__ = ["REPLAN_EVERY_S", "REPLAN_THRESHOLD_PCT", "Replanner"]

REPLAN_EVERY_S = 900.0
"""How often a live forecast is fetched again while waiting. Units: s."""
REPLAN_THRESHOLD_PCT = 10.0
"""Re-plan when the current plan's expected emissions move by more than this. Units: %."""


@dataclass
class Replanner:
    """Fetches a fresh forecast and re-plans when the current plan's figure moved too much.

    Args:
        fetch: ``fetch(now_s, deadline_s) -> IntensitySeries`` (a fresh forecast).
        job: the job's power profile (to re-evaluate the current plan exactly).
        options: keyword arguments of :func:`greentrack.scheduling.planner.plan_series` (strategy,
            min_run_s, max_pauses, power_w/profile, pause_power_w).
        threshold_pct: re-plan when ``|new estimate / planned - 1|`` exceeds this. Units: %.
    """

    fetch: Callable[[float, float], IntensitySeries]
    job: PowerProfile
    options: Mapping[str, Any]
    threshold_pct: float = REPLAN_THRESHOLD_PCT

    def __call__(self, current: Plan, now_s: float) -> tuple[Plan | None, str]:
        series = self.fetch(now_s, current.deadline_s)
        if not series.covers(now_s, current.deadline_s) and len(series) > 1:
            return None, "fresh forecast does not cover the window; kept the plan"
        estimate = evaluate_segments(series, current.segments, self.job, current.pause_power_w)
        base = current.expected_co2e_g
        moved = 100.0 * (estimate / base - 1.0) if base > 0 else 0.0
        if abs(moved) <= self.threshold_pct:
            return None, f"forecast moved {moved:+.1f} %; kept the plan"
        new = plan_series(series, now_s, deadline_s=current.deadline_s, **self.options)
        return new, f"forecast moved {moved:+.1f} %; re-planned"

    def remaining(
        self,
        now_s: float,
        deadline_s: float,
        done_s: float,
        rest: Sequence[tuple[float, float]],
        pauses_done: int = 0,
    ) -> tuple[list[tuple[float, float]] | None, str]:
        """Between two run segments of a Pause & Resume job: re-plan the work that is left.

        The rest of the current timetable and a new Pause & Resume plan for the work left
        (``job.tail(done_s)``, from now to the same deadline, same minimum run and pause power,
        the pauses already taken counted against ``max_pauses``) are both judged on a fresh
        forecast, the wait from now to each one's first segment at the pause power included; the
        new timetable is taken when it saves more than ``threshold_pct``.

        Args:
            now_s: now; the job is paused. Units: epoch s.
            deadline_s: when the job must be done. Units: epoch s.
            done_s: how long the job has run so far (its progress). Units: s.
            rest: the current timetable's run segments after now.
            pauses_done: pauses taken so far, this one included.

        Returns:
            ``(new run segments or None to keep the timetable, what was decided in words)``.
        """
        if done_s >= self.job.duration_s - 1e-3 or not rest:
            return None, "no work left to re-plan"
        try:
            series = self.fetch(now_s, deadline_s)
        except GreentrackError as e:
            return None, f"no fresh forecast ({str(e).splitlines()[0]}); kept the timetable"
        if not series.covers(now_s, deadline_s) and len(series) > 1:
            return None, "fresh forecast does not cover the window; kept the timetable"
        job = self.job.tail(done_s)
        rest = _stretch_to(sorted(rest), job.duration_s)
        pause_w = float(self.options.get("pause_power_w") or 0.0)

        def from_now_g(segments: Sequence[tuple[float, float]]) -> float:
            """Emissions from now: the wait for the first segment (paused), then the timetable."""
            wait = float(series.integral(segments[0][0]) - series.integral(now_s))
            return evaluate_segments(series, segments, job, pause_w) + pause_w * wait / J_PER_KWH

        options = {
            k: v
            for k, v in self.options.items()
            if k in ("min_run_s", "pause_power_w") and v is not None
        }
        max_pauses = self.options.get("max_pauses")
        if max_pauses is not None:
            options["max_pauses"] = max(0, int(max_pauses) - pauses_done)
        try:
            new = plan_series(series, now_s, strategy="pause_resume", deadline_s=deadline_s,
                              profile=job, **options)  # fmt: skip
        except ScheduleError as e:
            return None, f"cannot re-plan the work left ({e}); kept the timetable"
        segments = [(s.start_s, s.end_s) for s in new.segments]
        old_g, new_g = from_now_g(rest), from_now_g(segments)
        saving = 100.0 * (1.0 - new_g / old_g) if old_g > 0 else 0.0
        if saving <= self.threshold_pct:
            return None, f"a new timetable would save {saving:.1f} %; kept the timetable"
        return segments, f"a new timetable saves {saving:.1f} % of the rest; re-planned"


def _stretch_to(segments: list[tuple[float, float]], work_s: float) -> list[tuple[float, float]]:
    """``segments`` with the last one moved so that they hold exactly ``work_s`` of running (the
    job's real progress differs from the plan by the timetable's polling, a fraction of a s)."""
    total = sum(b - a for a, b in segments)
    a, b = segments[-1]
    return [*segments[:-1], (a, max(a, b + work_s - total))]
