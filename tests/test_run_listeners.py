"""Listeners, the run's extension point (greentrack.lifecycle): called off the training thread,
every failure a warning on the run, stop() keeping its deadline; the registry track() consults."""

from __future__ import annotations

import threading
import time

import pytest

import greentrack as gt
from greentrack import lifecycle
from greentrack.errors import ConfigError
from greentrack.meters import ReplayMeter
from greentrack.store import queries
from greentrack.store.checkpoint import Checkpoint
from greentrack.summary import RunSummary

POWER_W = {"gpu:0": 250.0}


def replay() -> ReplayMeter:
    return ReplayMeter([(0.0, POWER_W)])


class Recorder:
    def __init__(self) -> None:
        self.checkpoints: list[tuple[Checkpoint, str]] = []
        self.stops: list[RunSummary] = []

    def on_checkpoint(self, run: gt.Run, checkpoint: Checkpoint) -> None:
        self.checkpoints.append((checkpoint, threading.current_thread().name))

    def on_stop(self, run: gt.Run, summary: RunSummary) -> None:
        self.stops.append(summary)


def _wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_listener_gets_every_checkpoint_off_the_training_thread_and_the_summary(sqlite_url):
    rec = Recorder()
    with gt.track("l", db=sqlite_url, meters=[replay()], checkpoint_s=0.05, interval_s=0.01) as run:
        run.add_listener(rec)
        _wait_for(lambda: len(rec.checkpoints) >= 2)
    assert [s.status for s in rec.stops] == ["finished"]
    assert rec.stops[0].energy_j == pytest.approx(run.summary().energy_j)
    main = threading.main_thread().name
    assert all(name != main for _, name in rec.checkpoints)  # never the training thread
    final = rec.checkpoints[-1][0]
    assert final.run["status"] == "finished"  # the final checkpoint too, once
    assert sum(cp.run["status"] == "finished" for cp, _ in rec.checkpoints) == 1
    assert final.components[0]["energy_j"] == pytest.approx(run.summary().energy_j)


def test_a_failing_listener_is_a_warning_once_and_never_reaches_the_user(sqlite_url):
    class Broken:
        def on_checkpoint(self, run, checkpoint):
            raise RuntimeError("exporter down")

        def on_stop(self, run, summary):
            raise ValueError("no artifact store")

    with gt.track("b", db=sqlite_url, meters=[replay()], checkpoint_s=0.05, interval_s=0.01) as run:
        run.add_listener(Broken())
        run.add_listener(object())  # neither method: ignored
        _wait_for(lambda: any("exporter down" in w for w in run.summary().warnings))
        time.sleep(0.2)  # a few more checkpoints fail the same way
    warnings = run.summary().warnings
    failed_cp = "Broken.on_checkpoint failed: RuntimeError: exporter down"
    assert sum(failed_cp in w for w in warnings) == 1
    assert sum("Broken.on_stop failed: ValueError: no artifact store" in w for w in warnings) == 1
    conn = queries.open_store(sqlite_url)
    try:
        assert queries.get_run(conn, run.id)["status"] == "finished"
    finally:
        conn.close()


def test_a_hanging_listener_does_not_hold_stop_past_its_deadline(sqlite_url):
    release = threading.Event()

    class Hangs:
        def on_stop(self, run, summary):
            release.wait(30)

    run = gt.track("h", db=sqlite_url, meters=[replay()], flush_timeout_s=1.0).start()
    run.add_listener(Hangs())
    t0 = time.monotonic()
    run.stop()
    took_s = time.monotonic() - t0
    release.set()
    assert took_s < 1.0 + 2.0, took_s  # the deadline, plus slack for a loaded machine
    assert any("did not finish within flush_timeout_s" in w for w in run.summary().warnings)
    conn = queries.open_store(sqlite_url)
    try:
        assert queries.get_run(conn, run.id)["status"] == "finished"  # the store got it first
    finally:
        conn.close()


@pytest.fixture
def registry():
    saved = dict(lifecycle.LISTENERS)
    yield lifecycle.LISTENERS
    lifecycle.LISTENERS.clear()
    lifecycle.LISTENERS.update(saved)


def test_track_consults_the_registry_with_the_integrations_keywords(sqlite_url, registry):
    made: list[dict] = []

    def factory(run, options):
        made.append(dict(options))
        return Recorder() if options.get("probe") else None

    lifecycle.register_listener(lifecycle.ListenerSpec("probe", factory, options=("probe",)))
    with gt.track("r", db=sqlite_url, meters=[replay()]) as run:  # not asked for: not consulted
        pass
    assert made == []
    with gt.track("r", db=sqlite_url, meters=[replay()], probe=3) as run:
        pass
    assert made == [{"probe": 3}]
    assert run.summary().status == "finished"
    with pytest.raises(TypeError):  # a keyword no integration takes is still an error
        gt.track("r", db=sqlite_url, meters=[replay()], prob=3).start()


def test_a_factory_string_is_imported_only_when_consulted(sqlite_url, registry, monkeypatch):
    lifecycle.register_listener(
        lifecycle.ListenerSpec("nope", "greentrack_no_such_module:factory", env=("GT_TEST_ON",))
    )
    with gt.track("i", db=sqlite_url, meters=[replay()]) as run:
        pass
    assert not any("nope" in w for w in run.summary().warnings)  # never imported
    monkeypatch.setenv("GT_TEST_ON", "1")
    with gt.track("i", db=sqlite_url, meters=[replay()]) as run:
        pass
    assert any("integration nope not started: ModuleNotFoundError" in w
               for w in run.summary().warnings)  # fmt: skip


def test_a_factory_s_bad_input_error_stops_the_start_before_user_code(sqlite_url, registry):
    def factory(run, options):
        raise ConfigError(f"port={options['port']!r} is not a port number")

    lifecycle.register_listener(lifecycle.ListenerSpec("p", factory, options=("port",)))
    ran = []
    tracker = gt.track("p", db=sqlite_url, meters=[replay()], port="x")
    with pytest.raises(ConfigError, match="is not a port number"), tracker:
        ran.append(1)
    assert ran == [] and gt.active_runs() == []


def _stored_duration_s(url: str, run_id: str) -> float | None:
    conn = queries.open_store(url)
    try:
        return (queries.get_run(conn, run_id) or {}).get("duration_s")
    except Exception:  # not written yet
        return None
    finally:
        conn.close()


def test_no_checkpoint_is_built_before_the_run_has_its_start_time(sqlite_url: str) -> None:
    """The first checkpoint goes out at once, on the checkpoint thread; it must already see the
    run's baseline (before, it could carry the raw monotonic clock as the run's duration)."""
    from greentrack.store.schema import upgrade

    upgrade(sqlite_url)  # the store exists: the test's reader never migrates it under the writer
    for _ in range(10):
        run = gt.track("early", db=sqlite_url, meters=[replay()], checkpoint_s=60).start()
        try:
            _wait_for(lambda r=run: _stored_duration_s(sqlite_url, r.id) is not None)
            duration_s = _stored_duration_s(sqlite_url, run.id)
            assert duration_s is not None and 0.0 <= duration_s < 30.0, duration_s
        finally:
            run.stop()
