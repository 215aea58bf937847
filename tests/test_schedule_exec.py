"""Running a scheduled command: the waiting loop (fake clock), re-planning, and pausing a child."""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from greentrack.carbon.series import IntensitySeries, Provenance
from greentrack.errors import ScheduleError
from greentrack.scheduling.execute import schedule_command, wait_until_start
from greentrack.scheduling.flexible import flexible_start
from greentrack.scheduling.pause import PauseController
from greentrack.scheduling.profile import PowerProfile
from greentrack.scheduling.replan import Replanner
from greentrack.scheduling.request import PlanRequest
from greentrack.testing.clock import FakeClock
from greentrack.timefmt import format_time

H = 3600.0
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
PROV = Provenance("test-forecast", "XX", "average", "unit")


def series(values, start_s=T0, step_s=H):
    v = np.asarray(values, dtype=np.float64)
    return IntensitySeries(start_s + np.arange(v.size) * step_s, v, step_s, PROV)


class FakeRunner:
    def __init__(self, code=0):
        self.calls = []
        self.code = code

    def __call__(self, argv, **kw):
        self.calls.append((argv, kw))
        return self.code


# ---------------------------------------------------------------- waiting with a fake clock


def test_command_waits_until_start_then_runs_tracked():
    clock = FakeClock(T0)
    runner = FakeRunner(3)
    out = io.StringIO()
    s = series([300, 250, 50, 40, 300, 300])
    code = schedule_command(
        ["python", "train.py"],
        request=PlanRequest(duration="2h", within="4h", series=s),
        project="p",
        name="n",
        clock=clock,
        out=out,
        run_command=runner,
    )
    assert code == 3
    assert clock.t == pytest.approx(T0 + 2 * H)  # waited exactly until the best start
    ((argv, kw),) = runner.calls
    assert argv == ["python", "train.py"]
    assert kw["plan"]["strategy"] == "flexible_start"
    assert kw["plan"]["start"] == format_time(T0 + 2 * H)
    assert kw["project"] == "p" and kw["region"] == "XX" and kw["on_started"] is None
    text = out.getvalue()
    assert "starting in 2:00:00" in text and "Flexible Start plan" in text


def test_pause_resume_command_gets_a_pause_controller_hook():
    clock = FakeClock(T0)
    runner = FakeRunner(0)
    s = series([10, 500, 10, 500, 10, 500])
    schedule_command(
        ["true"],
        request=PlanRequest(duration="2h", within="3h", series=s, strategy="pause_resume"),
        clock=clock,
        out=io.StringIO(),
        run_command=runner,
    )
    ((_, kw),) = runner.calls
    assert kw["plan"]["pauses"] == 1 and kw["plan"]["pause_mode"] == "stop"
    assert callable(kw["on_started"])
    # cooperative mode: no signals, the job follows run.should_pause()
    runner2 = FakeRunner(0)
    schedule_command(
        ["true"],
        request=PlanRequest(duration="2h", within="3h", series=s, strategy="pause_resume"),
        pause_mode="cooperative",
        clock=FakeClock(T0),
        out=io.StringIO(),
        run_command=runner2,
    )
    assert runner2.calls[0][1]["on_started"] is None


def test_ctrl_c_while_waiting_runs_nothing():
    def interrupt(t):
        if t > T0 + 90:
            raise KeyboardInterrupt

    clock = FakeClock(T0, on_sleep=interrupt)
    runner = FakeRunner()
    out = io.StringIO()
    code = schedule_command(
        ["python", "train.py"],
        request=PlanRequest(duration="1h", within="5h", series=series([500, 400, 10] * 3)),
        clock=clock,
        out=out,
        run_command=runner,
    )
    assert code == 130 and runner.calls == []
    assert "cancelled before the start; nothing was run" in out.getvalue()


def test_plan_in_the_past_cannot_run_a_command():
    s = series([100, 50, 10, 10, 80, 200])
    with pytest.raises(ScheduleError, match="in the past"):
        schedule_command(
            ["true"],
            request=PlanRequest(duration="1h", within="3h", series=s, at=T0),
            clock=FakeClock(T0 + 10 * H),
            out=io.StringIO(),
            run_command=FakeRunner(),
        )
    with pytest.raises(ScheduleError, match="no command"):
        schedule_command([], request=PlanRequest(), clock=FakeClock(T0), run_command=FakeRunner())


def test_replan_when_forecast_moves():
    first = series([500, 400, 300, 20, 500, 500, 500, 500])
    moved = series([500, 10, 300, 900, 500, 500, 500, 500])  # hour 3 got dirty, hour 1 clean
    fetched = []

    def fetch(now_s, deadline_s):
        fetched.append(now_s)
        return moved

    clock = FakeClock(T0)
    runner = FakeRunner()
    out = io.StringIO()
    schedule_command(
        ["true"],
        request=PlanRequest(duration="1h", within="4h", series=first),
        clock=clock,
        out=out,
        run_command=runner,
        fetch=fetch,
        replan_every_s=900.0,
    )
    plan = runner.calls[0][1]["plan"]
    assert fetched and fetched[0] == pytest.approx(T0 + 900.0)
    assert plan["replans"][0]["reason"].endswith("re-planned")
    assert plan["start"] == format_time(T0 + 1 * H)  # the new clean hour
    assert "re-planned" in out.getvalue()


def test_small_forecast_change_keeps_the_plan():
    s = series([500, 400, 300, 20, 500, 500, 500, 500])
    nudged = series([500, 400, 300, 21, 500, 500, 500, 500])  # +5 %: under the 10 % threshold
    job = PowerProfile.constant(1000.0, H)
    p = flexible_start(s, T0, H, within_s=4 * H)
    rp = Replanner(fetch=lambda now, dl: nudged, job=job, options={"duration_s": H})
    new, why = rp(p, T0 + 900)
    assert new is None and "kept" in why
    rp2 = Replanner(
        fetch=lambda now, dl: nudged, job=job, options={"duration_s": H}, threshold_pct=1.0
    )
    new2, _ = rp2(p, T0 + 900)
    assert new2 is not None and new2.deadline_s == p.deadline_s


# ---------------------------------------------------------------- re-planning between segments
def test_profile_tail_keeps_the_energy_left():
    prof = PowerProfile(np.array([100.0, 300.0, 200.0]), H, 2.5 * H)
    tail = prof.tail(0.75 * H)
    assert tail.duration_s == pytest.approx(1.75 * H)
    assert tail.energy_j == pytest.approx(prof.energy_j - float(prof.cumulative_j(0.75 * H)))
    assert tail.power_w[0] == pytest.approx(100 * 0.25 + 300 * 0.75)  # mean over its first bin
    assert PowerProfile.constant(50.0, 3 * H).tail(H).energy_j == pytest.approx(50.0 * 2 * H)
    with pytest.raises(ScheduleError, match="no work is left"):
        prof.tail(2.5 * H)


def _pr_replanner(forecast, **options):
    job = PowerProfile.constant(1000.0, 3 * H)
    opts = {"strategy": "pause_resume", "duration_s": 3 * H, "min_run_s": H, **options}
    return Replanner(fetch=lambda now, dl: forecast, job=job, options=opts)


def test_work_left_is_replanned_on_a_fresh_forecast_when_it_saves_enough():
    # Planned: run 0-1 h, pause, run 2-4 h. At 1 h (paused, 1 h done) the fresh forecast says
    # hours 2-3 turned dirty and hours 5-6 are clean: the 2 h left move there.
    fresh = series([100, 500, 900, 900, 500, 50, 50, 500])
    new, why = _pr_replanner(fresh).remaining(T0 + H, T0 + 8 * H, H, [(T0 + 2 * H, T0 + 4 * H)], 1)
    assert new == [(T0 + 5 * H, T0 + 7 * H)] and "re-planned" in why
    # exact figures: 2 h x 1 kW at 900 g/kWh vs at 50 g/kWh
    assert why.startswith(f"a new timetable saves {100 * (1 - 50 / 900):.1f} %")
    # the same forecast as planned: nothing to gain, the timetable stays
    same = series([100, 500, 50, 50, 500, 500, 500, 500])
    kept, why = _pr_replanner(same).remaining(T0 + H, T0 + 8 * H, H, [(T0 + 2 * H, T0 + 4 * H)], 1)
    assert kept is None and "kept the timetable" in why
    # the pauses already taken count against --max-pauses: none left, the rest runs in one piece
    gappy = series([100, 500, 900, 50, 900, 50, 900, 900])
    rest = [(T0 + 6 * H, T0 + 8 * H)]  # 900 g/kWh throughout
    free, _ = _pr_replanner(gappy).remaining(T0 + H, T0 + 8 * H, H, rest, 1)
    assert free == [(T0 + 3 * H, T0 + 4 * H), (T0 + 5 * H, T0 + 6 * H)]
    capped, _ = _pr_replanner(gappy, max_pauses=1).remaining(T0 + H, T0 + 8 * H, H, rest, 1)
    assert capped is not None and len(capped) == 1


def test_replanning_between_segments_keeps_the_timetable_when_the_forecast_fails():
    from greentrack.errors import ProviderError

    def down(now, deadline):
        raise ProviderError("HTTP 503 from the forecast")

    rp = _pr_replanner(series([1.0] * 8))
    rp.fetch = down
    new, why = rp.remaining(T0 + H, T0 + 8 * H, H, [(T0 + 2 * H, T0 + 4 * H)], 1)
    assert new is None and "HTTP 503" in why and "kept the timetable" in why


def test_pause_controller_replans_the_work_left_when_a_pause_begins(tmp_path):
    """A real child, the real controller: when the first pause begins the controller asks for a
    new timetable with the child's progress, installs it, and resumes the child at once when the
    new timetable starts now."""
    counter = tmp_path / "n"
    child = subprocess.Popen([sys.executable, "-c", COUNTER, str(counter)])
    asked = []

    def replan(now, done, rest, pauses):
        asked.append((now, done, rest, pauses))
        return [(now, now + 100)]  # the rest, at once

    try:
        _count(counter)
        now = time.time()
        segments = [(now - 1, now + 0.3), (now + 50, now + 100)]
        with PauseController(child.pid, segments, replan=replan).start(interval_s=0.05) as ctl:
            deadline = time.time() + 5
            while not asked and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            assert [e for e, _ in ctl.events] == ["pause", "replan", "resume"]
            (t, done, rest, pauses) = asked[0]
            assert done == pytest.approx(t - ctl._t_first, abs=0.01) and done > 0.2
            assert rest == [(now + 50, now + 100)] and pauses == 1
            assert ctl.segments == [(t, t + 100)] and ctl.pauses == [] and not ctl.paused
            b = _count(counter)
            time.sleep(0.3)
            assert _count(counter) > b, "the child runs on under the new timetable"
    finally:
        child.kill()
        child.wait()


def test_countdown_on_a_terminal_is_rewritten_in_place():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    p = flexible_start(series([500, 10, 500]), T0, H, within_s=H)
    clock = FakeClock(T0)
    final, replans = wait_until_start(p, clock=clock, out=out)
    assert final is p and replans == []
    assert out.getvalue().count("\r") == 3600  # one update a second
    assert clock.t == pytest.approx(T0 + H)


# ---------------------------------------------------------------- pausing a real child

COUNTER = textwrap.dedent(
    """
    import os, sys, time
    path = sys.argv[1]
    n = 0
    while True:  # atomic rewrite: a reader (or a SIGSTOP) never sees a half-written file
        n += 1
        with open(path + ".tmp", "w") as f:
            f.write(str(n))
        os.replace(path + ".tmp", path)
        time.sleep(0.01)
    """
)


def _count(path: Path) -> int:
    for _ in range(50):
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.01)
    raise AssertionError("counter file never appeared")


def _state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return text.rsplit(")", 1)[1].split()[0]


def _wait_state(pid: int, want: str, timeout_s: float = 5.0) -> bool:
    end = time.time() + timeout_s
    while time.time() < end:
        if _state(pid) == want:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_pause_controller_stops_and_resumes_a_real_child(tmp_path):
    counter = tmp_path / "n"
    child = subprocess.Popen([sys.executable, "-c", COUNTER, str(counter)])
    try:
        _count(counter)
        now = time.time()
        segments = [(now - 1, now + 0.3), (now + 1.3, now + 100)]
        with PauseController(child.pid, segments).start(interval_s=0.05) as ctl:
            assert _wait_state(child.pid, "T"), "child was not stopped in the pause"
            time.sleep(0.2)
            a = _count(counter)
            time.sleep(0.4)
            assert _count(counter) == a, "a stopped child must not progress"
            assert ctl.paused
            time.sleep(max(0.0, now + 1.5 - time.time()))
            assert _state(child.pid) in ("S", "R", "D")  # running (D: brief disk wait)
            b = _count(counter)
            time.sleep(0.3)
            assert _count(counter) > b, "the child must resume after the pause"
            assert [e for e, _ in ctl.events] == ["pause", "resume"]
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_release_resumes_a_stopped_child(tmp_path):
    counter = tmp_path / "n"
    child = subprocess.Popen([sys.executable, "-c", COUNTER, str(counter)])
    try:
        _count(counter)
        ctl = PauseController.from_pause_windows(child.pid, [(time.time() - 1, time.time() + 60)])
        ctl.poll()
        assert _wait_state(child.pid, "T")
        ctl.release()
        assert _wait_state(child.pid, "S") or _state(child.pid) in ("R", "D")
        ctl.poll()  # released: the timetable no longer applies
        time.sleep(0.1)
        assert _state(child.pid) != "T"
    finally:
        child.kill()
        child.wait()


PARENT = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    from greentrack.scheduling.pause import PauseController
    counter_code, path = sys.argv[1], sys.argv[2]
    child = subprocess.Popen([sys.executable, "-c", counter_code, path])
    now = time.time()
    ctl = PauseController(child.pid, [(now - 1, now + 0.2), (now + 600, now + 700)])
    def forward(sig, frame):  # what the runner does: release (SIGCONT), then forward
        ctl.forward(sig)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(child.pid, flush=True)
    while child.poll() is None:
        ctl.poll()
        time.sleep(0.05)
    ctl.release()
    sys.exit(0 if child.returncode == -signal.SIGTERM or child.returncode == -signal.SIGINT
             else 1)
    """
)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_parent_while_child_stopped_leaves_no_stopped_orphan(tmp_path, sig):
    counter = tmp_path / "n"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, COUNTER, str(counter)], stdout=subprocess.PIPE, text=True
    )
    child_pid = int(parent.stdout.readline())
    try:
        assert _wait_state(child_pid, "T"), "the child should be stopped in its pause"
        parent.send_signal(sig)
        assert parent.wait(timeout=10) == 0, "the child must die of the forwarded signal"
        assert _state(child_pid) is None, "no child (stopped or zombie) may remain"
    finally:
        if _state(child_pid) is not None:
            os.kill(child_pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


TICKER = textwrap.dedent(
    """
    import sys, time
    with open(sys.argv[1], "w") as f:
        for _ in range(int(sys.argv[2])):  # a fixed amount of work, whatever the wall time
            f.write(f"{time.time()}\\n")
            f.flush()
            time.sleep(0.02)
    """
)


def _run_ticker(tmp_path: Path, planned: IntensitySeries, **kw) -> tuple[dict, list[float]]:
    """A 2 s ticker scheduled Pause & Resume on 1-second steps through the real runner: the plan
    stored on its run, and when it ticked."""
    from greentrack.store.queries import get_run, list_runs, open_store

    ticks = tmp_path / "ticks"
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    out = io.StringIO()
    # the run is accounted in the plan's zone, which must be a real one (XX is refused at start)
    zone = Provenance("test-forecast", "ES", "average", "unit")
    planned = IntensitySeries(planned.start_s, planned.g_per_kwh, planned.step_s, zone)
    code = schedule_command(
        [sys.executable, "-c", TICKER, str(ticks), "60"],
        request=PlanRequest(
            duration="2s",
            within="4s",
            series=planned,
            strategy="pause_resume",
            min_run="1s",
        ),
        db_url=url,
        out=out,
        **kw,
    )
    assert code == 0, out.getvalue()
    conn = open_store(url)
    try:
        plan = get_run(conn, list_runs(conn)[0]["id"])["plan"]
    finally:
        conn.close()
    times = [float(x) for x in ticks.read_text().split()]
    assert len(times) == 60
    return plan, times


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_real_runner_pauses_the_child_on_the_plan(tmp_path):
    """End to end: plan on 1-second steps, wait, run tracked, SIGSTOP through the pause."""
    f = math.floor(time.time())
    # cells f+1 and f+4 are clean: a 2 s job runs 1 s, pauses 2 s, runs 1 s
    plan, times = _run_ticker(
        tmp_path, series([900, 10, 900, 900, 10, 900, 900, 900, 900], start_s=f, step_s=1.0)
    )
    (a0, a1), (b0, b1) = plan["segments_s"]
    assert (a0, a1, b0, b1) == (f + 1, f + 2, f + 4, f + 5)
    assert [e["event"] for e in plan["applied"]] == ["pause", "resume"]
    # no progress while stopped (the runner polls every 0.2 s: allow for that at the start)
    inside = [t for t in times if a1 + 0.45 < t < b0 - 0.05]
    assert inside == [], f"the child ran during the pause: {inside}"
    assert times[-1] > b0, "the child must resume after the pause"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_real_runner_replans_the_work_left_during_a_pause(tmp_path):
    """End to end on 1-second steps: planned run 1 s, pause 2 s, run 1 s; when the pause begins
    the fresh forecast makes the next second the clean one, so the child resumes a second early,
    and the stored plan says why."""
    f = math.floor(time.time())
    planned = series([900, 10, 900, 900, 10, 900, 900, 900, 900], start_s=f, step_s=1.0)
    fresh = series([900, 10, 900, 5, 900, 900, 900, 900, 900], start_s=f, step_s=1.0)
    plan, times = _run_ticker(tmp_path, planned, fetch=lambda now, deadline: fresh)
    assert [e["event"] for e in plan["applied"]] == ["pause", "replan", "resume"]
    (entry,) = [r for r in plan["replans"] if r.get("during") == "pause"]
    assert "re-planned" in entry["note"] and 0.7 < entry["done_s"] < 1.3
    assert entry["segments"][0]["start"] == format_time(f + 3)
    assert [t for t in times if f + 2.45 < t < f + 2.95] == [], "ran during the shortened pause"
    assert any(f + 3.2 < t < f + 3.9 for t in times), "the child must resume at the new start"


def test_a_stored_profile_is_replanned_on_a_live_forecast(tmp_path):
    """``schedule --profile-run RUN -- CMD`` on a live forecast: the re-planner gets the stored
    run's profile too (before, it had no duration and the command failed)."""
    from datetime import datetime

    from greentrack.store.checkpoint import Checkpoint
    from greentrack.store.writer import StoreWriter

    T_START = datetime(2026, 1, 1, 12, 0, 0)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    rid = "ab" * 16
    samples = [  # 2 h at 300 W, a sample every 10 min
        {"device": "gpu:0", "component": "gpu", "t_s": 1.7e9 + 600.0 * k,
         "energy_j": 300.0 * 600.0 * k, "power_w": None}
        for k in range(13)
    ]  # fmt: skip
    StoreWriter(url).write(
        Checkpoint(run_id=rid, rank=0, seq=1, samples=samples,
                   run={"project": "p", "name": "n", "status": "finished", "duration_s": 7200.0,
                        "started_at": T_START, "heartbeat_at": T_START, "pue": 1.0})
    )  # fmt: skip
    first = series([500, 400, 300, 20, 20, 500, 500, 500])
    moved = series([500, 10, 10, 900, 900, 500, 500, 500])
    runner = FakeRunner()
    schedule_command(
        ["true"],
        request=PlanRequest(profile_run=rid, db_url=url, within="4h", series=first),
        clock=FakeClock(T0),
        out=io.StringIO(),
        run_command=runner,
        fetch=lambda now_s, deadline_s: moved,
        replan_every_s=900.0,
    )
    plan = runner.calls[0][1]["plan"]
    assert plan["replans"][0]["reason"].endswith("re-planned")
    assert plan["start"] == format_time(T0 + 1 * H)  # the two clean hours of the new forecast
