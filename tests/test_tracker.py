"""The tracker on real code: decorator, context manager, phases, failures, signals."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

import greentrack as gt
from greentrack.errors import DatabaseURLError, MeterError
from greentrack.meters import ReplayMeter
from greentrack.store import queries

POWER_W = {"gpu:0": 250.0, "cpu:package-0": 40.0}


def replay() -> ReplayMeter:
    return ReplayMeter([(0.0, POWER_W)])


def stored(url: str, run_id: str) -> dict:
    conn = queries.open_store(url)
    try:
        return queries.get_run(conn, run_id)
    finally:
        conn.close()


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_context_manager_measures_energy_and_phases(store_url: str) -> None:
    with gt.track(
        "finetune",
        project="cifar",
        db=store_url,
        meters=[replay()],
        interval_s=0.05,
        params={"lr": 3e-4},
        tags={"seed": 1},
    ) as run:
        for epoch in range(2):
            with run.phase("epoch"):
                with run.phase("eval"):
                    busy(0.05)
                busy(0.1)
            run.log(step=epoch, val_acc=0.9 + epoch / 100)
    s = run.summary()
    assert s.status == "finished"
    total_w = sum(POWER_W.values())
    # Replayed power is constant: energy = power x the meter's window, which is the run's window.
    assert s.energy_j == pytest.approx(total_w * s.duration_s, rel=0.02)
    by_device = {c.device: c for c in s.components}
    assert by_device["gpu:0"].energy_j == pytest.approx(250.0 * s.duration_s, rel=0.02)
    assert by_device["gpu:0"].method == "sampled"
    phases = {p.name: p for p in s.phases}
    assert phases["epoch"].count == 2 and phases["epoch/eval"].count == 2
    # Phase energy comes from reads at the boundaries: power x phase duration, exactly.
    assert phases["epoch"].energy_j == pytest.approx(total_w * phases["epoch"].duration_s, rel=1e-6)
    assert phases["epoch/eval"].energy_j < phases["epoch"].energy_j

    obj = stored(store_url, run.id[:6])
    assert obj["status"] == "finished"
    assert obj["energy_j"] == pytest.approx(s.energy_j)
    assert obj["energy_kwh"] == pytest.approx(s.energy_j / 3.6e6)
    assert {c["device"]: c["method"] for c in obj["components"]} == {
        "gpu:0": "sampled",
        "cpu:package-0": "sampled",
    }
    assert obj["params"] == {"lr": "0.0003"} and obj["tags"] == {"seed": "1"}
    assert obj["metrics"] == {"val_acc": pytest.approx(0.91)}
    assert [p["name"] for p in obj["phase_totals"]] == ["epoch", "epoch/eval"]
    assert obj["ended_at"].endswith("Z") and obj["started_at"] < obj["ended_at"]
    assert sum(p["energy_j"] for p in obj["phases"] if p["path"] == "epoch") == pytest.approx(
        phases["epoch"].energy_j
    )


def test_user_exception_propagates_unchanged_and_run_failed(sqlite_url: str) -> None:
    class Boom(Exception):
        pass

    err = Boom("diverged at step 7")
    with pytest.raises(Boom) as caught, gt.track("x", db=sqlite_url, meters=[replay()]) as run:
        raise err
    assert caught.value is err
    obj = stored(sqlite_url, run.id)
    assert obj["status"] == "failed"
    assert "diverged at step 7" in obj["error"]


def test_keyboard_interrupt_marks_interrupted(sqlite_url: str) -> None:
    with pytest.raises(KeyboardInterrupt), gt.track("x", db=sqlite_url, meters=[replay()]) as run:
        raise KeyboardInterrupt
    assert stored(sqlite_url, run.id)["status"] == "interrupted"


def test_decorator_keeps_function_identity_and_tracks_each_call(sqlite_url: str) -> None:
    @gt.track(project="p", db=sqlite_url, meters=[replay()])
    def train(epochs: int, lr: float = 0.1) -> float:
        """Train for a while."""
        return epochs * lr

    assert train.__name__ == "train"
    assert train.__doc__ == "Train for a while."
    assert str(inspect.signature(train)) == "(epochs: 'int', lr: 'float' = 0.1) -> 'float'"
    assert train(3) == pytest.approx(0.3)
    conn = queries.open_store(sqlite_url)
    rows = queries.list_runs(conn, project="p")
    conn.close()
    assert [r["name"] for r in rows] == ["train"]


def test_bare_decorator_methods_and_async(sqlite_url: str, monkeypatch) -> None:
    monkeypatch.setenv("GREENTRACK_DB", sqlite_url)

    @gt.track
    def plain() -> str:
        return "ok"

    class Trainer:
        def __init__(self) -> None:
            self.steps = 0

        @gt.track(project="methods")
        def fit(self, n: int) -> int:
            self.steps += n
            return self.steps

    @gt.track(project="async")
    async def fit_async(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    assert plain() == "ok"
    assert Trainer().fit(4) == 4
    assert inspect.iscoroutinefunction(fit_async)
    assert asyncio.run(fit_async(21)) == 42
    conn = queries.open_store(sqlite_url)
    names = sorted((r["project"], r["name"]) for r in queries.list_runs(conn))
    conn.close()
    assert names == [("async", "fit_async"), ("default", "plain"), ("methods", "fit")]


def test_start_stop_and_summary_text(sqlite_url: str) -> None:
    run = gt.track("manual", db=sqlite_url, meters=[replay()]).start()
    busy(0.05)
    summary = run.stop()
    assert summary.status == "finished"
    assert run.stop() == summary or run.stop().status == "finished"  # idempotent
    text = str(summary)
    assert "gpu:0" in text and "[sampled]" in text and "kWh" in text


class FailingMeter(ReplayMeter):
    name = "flaky"

    def __init__(self, fail_after: int) -> None:
        super().__init__([(0.0, {"gpu:1": 100.0})])
        self.calls = 0
        self.fail_after = fail_after

    def read(self, t_mono: float):
        self.calls += 1
        if self.calls > self.fail_after:
            raise MeterError("GPU is lost (NVML_ERROR_GPU_IS_LOST)")
        return super().read(t_mono)


def test_meter_failure_is_a_warning_on_the_run_not_an_exception(sqlite_url: str) -> None:
    with gt.track("x", db=sqlite_url, meters=[replay(), FailingMeter(2)], interval_s=0.02) as run:
        busy(0.2)
    obj = stored(sqlite_url, run.id)
    assert obj["status"] == "finished"
    assert any("GPU is lost" in e["message"] for e in obj["events"])
    devices = {c["device"]: c["energy_j"] for c in obj["components"]}
    assert devices["gpu:1"] > 0  # energy before the failure is kept
    assert devices["gpu:0"] == pytest.approx(250.0 * obj["duration_s"], rel=0.05)


def test_bad_db_url_is_one_line_error_before_training() -> None:
    ran = []
    with (
        pytest.raises(DatabaseURLError) as caught,
        gt.track("x", db="mysql://nope/db", meters=[replay()]),
    ):
        ran.append(1)
    assert not ran
    assert "\n" not in str(caught.value) and "sqlite:///" in str(caught.value)


def test_progress_forecast_and_budget(sqlite_url: str) -> None:
    steps_run = 0
    budget_kwh = 290.0 * 0.5 / 3.6e6  # ~0.5 s of the replayed power
    with gt.track(
        "b", db=sqlite_url, meters=[replay()], budget_kwh=budget_kwh, interval_s=0.02
    ) as run:
        for step in range(1000):
            if run.over_budget:
                break
            busy(0.02)
            steps_run += 1
            run.progress(step + 1, 1000)
    assert 5 < steps_run < 1000
    assert run.summary().energy_j * 1.0 / 3.6e6 <= budget_kwh * 1.02
    obj = stored(sqlite_url, run.id)
    assert obj["forecast"]["fraction"] == pytest.approx(steps_run / 1000)
    assert obj["forecast"]["predicted_energy_j"] > obj["energy_j"]
    assert any(e["source"] == "budget" for e in obj["events"])


def test_no_internal_errors_recorded(sqlite_url: str) -> None:
    with gt.track("x", db=sqlite_url, meters=[replay()]) as run:
        busy(0.02)
    assert not [w for w in run.summary().warnings if "internal error" in w]


def test_metadata_records_git_and_slurm(sqlite_url: str, tmp_path, monkeypatch) -> None:
    import subprocess

    from greentrack import metadata

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "f.txt").write_text("1")
    subprocess.run([*git, "add", "f.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    (repo / "f.txt").write_text("2")  # dirty
    monkeypatch.chdir(repo)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    metadata.static_metadata.cache_clear()
    with gt.track("meta", db=sqlite_url, meters=[replay()]) as run:
        pass
    meta = stored(sqlite_url, run.id)["meta"]
    assert len(meta["git"]["commit"]) == 40 and meta["git"]["dirty"] is True
    assert meta["slurm"]["job_id"] == "4242"
    assert meta["cpu_count"] >= 1 and meta["cpu_model"] and meta["os"] and meta["host"]


def test_what_the_store_cannot_hold_is_refused_at_the_call(store_url: str) -> None:
    """Names longer than the store keeps, or a step that is not a 64-bit integer, are a one-line
    error where the user wrote them — not a checkpoint the database refuses later. Steps past
    2**31 (tokens seen) are fine, on SQLite and PostgreSQL."""
    from greentrack.errors import ConfigError, GreentrackError

    long = "x" * 201
    with pytest.raises(ConfigError, match=r"run name 'xxx.*' is 201 characters long; use 1 to 200"):
        gt.track(long, db=store_url, meters=[replay()]).start()
    with gt.track("limits", db=store_url, meters=[replay()], interval_s=0.05) as run:
        with pytest.raises(GreentrackError, match=r"metric name .* 201 characters"):
            run.log(step=1, **{long: 1.0})
        with pytest.raises(GreentrackError, match="step must be an integer"):
            run.log(step=1.5, loss=1.0)
        with pytest.raises(GreentrackError, match="64 bits"):
            run.log(step=2**63, loss=1.0)
        with pytest.raises(GreentrackError, match="tag name"):
            run.set_tags(**{long: "v"})
        with pytest.raises(GreentrackError, match="phase name"):
            run.phase(long).__enter__()
        deep = [run.phase(c * 200) for c in "abcde"]  # 5 x 200 + 4 separators
        with pytest.raises(GreentrackError, match=r"phase path .* 1004 characters"):  # noqa: SIM117
            with deep[0], deep[1], deep[2], deep[3], deep[4]:
                pass
        run.log(step=3_000_000_000, loss=0.5)  # 3e9 tokens seen
    obj = stored(store_url, run.id)
    assert obj["status"] == "finished" and obj["metrics"] == {"loss": 0.5}
    assert not [w for w in run.summary().warnings if "store" in w]
