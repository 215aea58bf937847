"""Carbon-aware scheduling: Flexible Start and Pause & Resume over an intensity series.

Follows Dodge et al., "Measuring the Carbon Intensity of AI in Cloud Instances" (FAccT 2022),
§5: *Flexible Start* shifts the start of a job inside a window; *Pause & Resume* runs it in the
lowest-intensity time before its deadline. Both are compared with starting at submission time.

Conventions (all times epoch seconds UTC, ``t_s``; all durations seconds):

* ``a`` is the submission time, ``D`` the job's duration, ``W`` the slack (``--within``): the job
  may start up to ``W`` after ``a`` and must finish by the deadline ``a + D + W``. Pause & Resume
  uses the same deadline. An absolute ``deadline_s`` gives ``W = deadline_s - a - D``.
* Emissions of running power ``p(τ)`` (τ = the job's elapsed time) during wall-clock time ``t`` are
  ``∫ p(τ) c(t) dt / 3.6e6`` g with ``c`` in g/kWh — the exact integral of the step series
  (:meth:`IntensitySeries.integral`), so partly covered steps are time-weighted. Every figure a
  :class:`~greentrack.scheduling.plan.Plan` reports is recomputed this way from its segments.
* The power is constant (1 kW unless ``power_w`` is given), or the power profile of a past run
  (:class:`~greentrack.scheduling.profile.PowerProfile`, averaged into at most ~256 equal bins,
  energy kept exactly per bin).

Invariants (tested): ``pause_resume ≤ flexible_start ≤ run_now``; ``pause_resume ==
flexible_start`` when the job is no longer than ``min_run`` (one segment; with hourly data and the
default 1 h ``min_run`` this is "the job is one step long") or ``max_pauses == 0``; all three are
equal when ``W == 0`` or the intensity is constant.

One job per module, lowest first (this package file imports nothing, so that importing
:mod:`~greentrack.scheduling.plan` stays light):

=================  ==========================================================================
``plan``           Plan, Segment, should_pause, pause_windows, resume_at — no numpy: the only part
                   the tracker and a child process import
``times``          time and duration parsing (ScheduleError) and the short duration format
``profile``        the job's power: PowerProfile, profiles of stored runs
``cost``           exact emissions of run segments and of uninterrupted runs
``window``         the window: slack, deadline, data coverage, the constant-intensity note
``flexible``       Run now and Flexible Start (and the Plan built from their figures)
``pause_resume``   the Pause & Resume dynamic programme
``sources``        where a plan's intensity comes from: CSV files, a source's history or forecast
``request``        PlanRequest: everything a plan is asked with (CLI, :func:`plan`, the executor)
``planner``        plan_for / plan / plan_series (strategy dispatch) and format_plan
``study``          every submission of a history (and its table); ``study_plot`` its bar chart
``clock``          Clock, SystemClock (test clock: :class:`greentrack.testing.clock.FakeClock`)
``pause``          PauseController: SIGSTOP/SIGCONT a child on the plan's timetable
``replan``         Replanner: a fresh forecast, re-planned when the figure moved
``execute``        wait until the start (countdown, re-plans) and launch the command tracked
=================  ==========================================================================
"""
