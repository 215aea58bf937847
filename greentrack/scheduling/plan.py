"""The plan model: Plan, Segment, and the questions a running job asks of its plan.

``should_pause``, ``pause_windows`` and ``resume_at`` accept a :class:`Plan` or its ``to_dict()``
form (what ``run.should_pause()`` reads from the run, and what a child process receives through
``GREENTRACK_PLAN``). This module imports no numpy and nothing heavy: it is the only part of
:mod:`greentrack.scheduling` the tracker and a child process import (a test checks it).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greentrack import timefmt
from greentrack.errors import ScheduleError
from greentrack.timefmt import format_time

if TYPE_CHECKING:
    from greentrack.carbon.provenance import Provenance

__all__ = ["Plan", "Segment", "pause_windows", "resume_at", "segments_of", "should_pause"]


@dataclass(frozen=True)
class Segment:
    """One run segment ``[start_s, end_s)`` (epoch seconds UTC)."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, str]:
        return {"start": format_time(self.start_s), "end": format_time(self.end_s)}


@dataclass(frozen=True)
class Plan:
    """A scheduling decision and what it is expected to emit.

    Attributes:
        strategy: ``run_now``, ``flexible_start`` or ``pause_resume``.
        start_s: when the job starts (epoch s UTC).
        segments: the run segments, in order (one for run-now / Flexible Start).
        expected_co2e_g: emissions of the plan (job energy during segments, plus the pause power
            between them). Units: g CO₂e.
        run_now_co2e_g: emissions when started at submission time. Units: g CO₂e.
        saving_pct: ``100 · (1 - expected / run_now)``.
        provenance: the intensity data used.
        submitted_s, deadline_s: the window (epoch s). ``deadline_s = submitted_s + D + W``.
        duration_s: the job's run time ``D``. Units: s.
        energy_kwh: the job's energy (pause power excluded). Units: kWh.
        power_w: the job's mean power. Units: W.
        alternatives: emissions of every strategy evaluated (g), e.g. ``{"run_now": ...}``.
        method: how the plan was computed (exactness statement).
        warnings: one-line notes (constant intensity, coarse grid, ...).
    """

    strategy: str
    start_s: float
    segments: tuple[Segment, ...]
    expected_co2e_g: float
    run_now_co2e_g: float
    saving_pct: float
    provenance: Provenance
    submitted_s: float
    deadline_s: float
    duration_s: float
    energy_kwh: float
    power_w: float
    min_run_s: float | None = None
    max_pauses: int | None = None
    pause_power_w: float = 0.0
    alternatives: Mapping[str, float] = field(default_factory=dict)
    method: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def end_s(self) -> float:
        """When the job finishes (epoch s)."""
        return self.segments[-1].end_s

    @property
    def pauses(self) -> int:
        return len(self.segments) - 1

    @property
    def within_s(self) -> float:
        """The slack W. Units: s."""
        return self.deadline_s - self.submitted_s - self.duration_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: strategy, start, segments, expected/run-now g, saving_pct, source."""
        return {
            "strategy": self.strategy,
            "start": format_time(self.start_s),
            "end": format_time(self.end_s),
            "segments": [s.to_dict() for s in self.segments],
            "expected_co2e_g": self.expected_co2e_g,
            "run_now_co2e_g": self.run_now_co2e_g,
            "saving_pct": self.saving_pct,
            "source": self.provenance.to_dict(),
            "submitted": format_time(self.submitted_s),
            "deadline": format_time(self.deadline_s),
            "duration_s": self.duration_s,
            "within_s": self.within_s,
            "energy_kwh": self.energy_kwh,
            "power_w": self.power_w,
            "pauses": self.pauses,
            "min_run_s": self.min_run_s,
            "max_pauses": self.max_pauses,
            "pause_power_w": self.pause_power_w,
            "alternatives": dict(self.alternatives),
            "method": self.method,
            "warnings": list(self.warnings),
            # exact epoch seconds for machines (the ISO strings are rounded to the second)
            "segments_s": [[s.start_s, s.end_s] for s in self.segments],
        }


def segments_of(plan: Plan | Mapping[str, Any]) -> list[tuple[float, float]]:
    """The run segments of a plan or its ``to_dict()`` form: ``[(start_s, end_s), ...]``."""
    if isinstance(plan, Plan):
        return [(s.start_s, s.end_s) for s in plan.segments]
    exact = plan.get("segments_s")
    if exact:
        return [(float(a), float(b)) for a, b in exact]
    out = []
    for seg in plan.get("segments") or []:
        if isinstance(seg, Mapping):
            out.append((_parse_time(seg["start"]), _parse_time(seg["end"])))
        else:
            out.append((_parse_time(seg[0]), _parse_time(seg[1])))
    return out


def pause_windows(plan: Plan | Mapping[str, Any]) -> list[tuple[float, float]]:
    """The pauses of a plan: ``[(start_s, end_s), ...]`` between consecutive run segments."""
    segs = segments_of(plan)
    return [(a[1], b[0]) for a, b in itertools.pairwise(segs) if b[0] > a[1]]


def should_pause(plan: Plan | Mapping[str, Any], now_s: float) -> bool:
    """True while ``now_s`` is before the plan's first segment or inside one of its pauses.

    After the last segment's end it is False: a job that overruns its plan keeps running. Accepts a
    :class:`Plan` or its ``to_dict()`` form (what ``run.should_pause()`` reads from the run).
    """
    segs = segments_of(plan)
    if not segs or now_s >= segs[-1][1]:
        return False
    return not any(s <= now_s < e for s, e in segs)


def resume_at(plan: Plan | Mapping[str, Any], now_s: float) -> float | None:
    """When the job should next run, if ``should_pause(plan, now_s)``; else None (epoch s)."""
    if not should_pause(plan, now_s):
        return None
    return min(s for s, _ in segments_of(plan) if s > now_s)


def _parse_time(value: Any) -> float:
    """Epoch seconds of a segment's ISO time (a plan dict without ``segments_s``)."""
    return timefmt.parse_time(value, error=ScheduleError)
