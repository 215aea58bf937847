"""PlanRequest: everything a plan is asked with, as one typed value.

The CLI builds one from its options, :func:`greentrack.plan` from its keyword arguments, and the
executor (:func:`greentrack.scheduling.execute.schedule_command`) plans, re-plans and accounts the
run from the same request. Values are kept as the user gave them (``"6h"``, ISO text, epoch
seconds): :func:`greentrack.scheduling.planner.plan_for` parses them, so every error names the
option the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greentrack.carbon.series import IntensitySeries
    from greentrack.scheduling.profile import PowerProfile

__all__ = ["PlanRequest"]


@dataclass(frozen=True, kw_only=True, eq=False)
class PlanRequest:
    """A job to plan, and where its intensity comes from.

    Attributes:
        duration: the job's run time (``"6h"`` or seconds); optional with a profile.
        within: slack after submission (``"24h"`` or seconds); or ``deadline``, an absolute
            finish time (ISO text, datetime or epoch seconds). Exactly one of the two.
        at: submission time (default now).
        strategy: ``flexible_start`` (default), ``pause_resume`` or ``run_now``.
        region: grid zone (``ES``); default from the configuration.
        source: intensity source name (``uk``, ``electricitymaps``...); None: the configured one.
        csv: CSV file(s) to plan against (history), read with ``csv_options``
            (:func:`~greentrack.carbon.csvsource.load_csv`'s layout options: ``time_column``,
            ``value_column``, ``tz``, ``signal``, ``max_gap_steps``); a command run on the plan
            is accounted on the same files read the same way.
        series: an intensity series to plan on directly (instead of a source or CSV files).
        min_run, max_pauses, pause_power_w: Pause & Resume constraints (``pause_power_w`` in W).
        power_w: the job's constant power (default 1 kW). Units: W. Or ``profile`` (W per
            elapsed bin, or a PowerProfile), or ``profile_run`` (a stored run's measured profile).
        tz: IANA zone of naive times (``at``, ``deadline``).
        db_url: the store ``profile_run`` is read from (default: the configured one).
        config: a :class:`~greentrack.config.Config` (default: loaded when needed).
    """

    duration: float | str | None = None
    within: float | str | None = None
    deadline: float | str | datetime | None = None
    at: float | str | datetime | None = None
    strategy: str = "flexible_start"
    region: str | None = None
    source: str | None = None
    csv: str | Path | Sequence[str | Path] | None = None
    csv_options: Mapping[str, Any] | None = None
    series: IntensitySeries | None = None
    min_run: float | str | None = None
    max_pauses: int | None = None
    power_w: float | None = None
    profile: PowerProfile | Sequence[float] | None = None
    profile_run: str | None = None
    pause_power_w: float = 0.0
    tz: str | None = None
    db_url: str | None = None
    config: Any = None

    @property
    def csv_files(self) -> list[str | Path]:
        """The CSV files as a list (empty: none)."""
        if not self.csv:
            return []
        return [self.csv] if isinstance(self.csv, str | Path) else list(self.csv)
