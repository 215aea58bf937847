"""Faults while a real tracker runs: the database dropping out and coming back (through a TCP proxy
we cut), a full spool disk, a GPU lost to NVML, a RAPL counter becoming unreadable, the wall
clock jumping, and processes racing on one spool. Nothing measured may be lost, and training never
notices. (SIGKILL / SIGTERM: test_cli_runs.py; a store away for the whole run: test_spool.py.)
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from fakes.nvml import FakeGpu

import greentrack as gt
from greentrack.config import load_config
from greentrack.meters import ReplayMeter
from greentrack.store import queries
from greentrack.store import spool as spool_mod
from greentrack.store.checkpoint import Checkpoint
from greentrack.store.schema import upgrade
from greentrack.store.spool import Spool

POWER_W = {"gpu:0": 250.0, "cpu:package-0": 40.0}


def replay() -> ReplayMeter:
    return ReplayMeter([(0.0, POWER_W)])


def kept_samples(run: gt.Run) -> int:
    """Points the run's sampler kept, i.e. what the store must hold (white-box count)."""
    return sum(len(s.t_s) for s in run._sampler.series.values())


def stored(url: str, run_id: str) -> tuple[dict, dict]:
    conn = queries.open_store(url)
    try:
        return queries.get_run(conn, run_id), queries.run_samples(conn, run_id)
    finally:
        conn.close()


# -- the database goes away mid-run and comes back ------------------------------------------------
class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in threads. ``cut()`` kills every open connection and answers new
    ones by closing them (a server that went away); ``restore()`` forwards again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.accepted = 0
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._socks |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def cut(self) -> None:
        self.up = False
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            self._close(s)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._stopped = True
        self.cut()
        self.listener.close()


@pytest.fixture
def proxy(pg_url: str):
    parts = urlsplit(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    p = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{p.port}")
    yield p, pg_url.replace(parts.netloc, netloc, 1)
    p.close()


@pytest.mark.postgres
def test_database_goes_away_mid_run_and_comes_back(pg_url: str, proxy) -> None:
    cut, url = proxy
    upgrade(pg_url)  # the schema exists; the run's connection goes through the proxy
    spool = Spool.for_store(load_config().spool_dir, url)
    steps = 0
    with gt.track("outage", db=url, meters=[replay()], interval_s=0.02, checkpoint_s=0.1) as run:
        with run.phase("before"):
            time.sleep(0.5)
        before = stored(pg_url, run.id)[1]["t_s"].size
        assert before > 0 and cut.accepted >= 1  # written live, through the proxy
        cut.cut()  # the server goes away: the open connection dies
        t_cut = time.time()
        with run.phase("outage"):
            while time.time() - t_cut < 0.6:
                time.sleep(0.01)
                steps += 1  # training goes on
        run.log(step=1, acc=0.5)
        assert any("store unreachable" in w and "will retry" in w for w in run.summary().warnings)
        assert spool.pending(run.id)  # readings of the outage are on disk
        assert stored(pg_url, run.id)[1]["t_s"].size == before  # and not in the store
        cut.restore()
        deadline = time.monotonic() + 15  # the next retry, max(2 s, checkpoint_s) after the cut
        while spool.pending(run.id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert spool.pending(run.id) == []  # reconciled while the run goes on
        mid = stored(pg_url, run.id)[1]
        assert mid["t_s"].size > before and mid["t_s"].min() < t_cut < mid["t_s"].max()
        with run.phase("after"):
            time.sleep(0.2)
    s = run.summary()
    obj, samples = stored(pg_url, run.id)
    assert s.status == obj["status"] == "finished" and steps > 20
    assert obj["energy_j"] == pytest.approx(s.energy_j, rel=1e-12)  # nothing lost
    assert obj["energy_j"] == pytest.approx(sum(POWER_W.values()) * s.duration_s, rel=1e-9)
    assert samples["t_s"].size == kept_samples(run)  # every sample, once
    assert sorted({p["name"] for p in obj["phases"]}) == ["after", "before", "outage"]
    assert obj["metrics"] == {"acc": 0.5}
    assert any("store unreachable" in e["message"] for e in obj["events"]) or s.warnings


# -- the spool's disk is full ---------------------------------------------------------------------
class _FullDisk:
    """``os`` for greentrack.store.spool, whose ``write`` fails like a full disk."""

    def __getattr__(self, name: str):
        return getattr(os, name)

    @staticmethod
    def write(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_spool_disk_full_keeps_readings_in_memory_until_the_store_is_back(
    tmp_path, monkeypatch
) -> None:
    blocker = tmp_path / "mnt"
    blocker.write_text("the database volume is not mounted")  # the store is unusable
    url = f"sqlite:///{blocker}/runs.db"
    monkeypatch.setattr(spool_mod, "os", _FullDisk())  # and the spool's disk is full
    steps = 0
    with gt.track("diskfull", db=url, meters=[replay()], interval_s=0.02, checkpoint_s=0.05) as run:
        with run.phase("train"):
            t = time.perf_counter()
            while time.perf_counter() - t < 0.5:
                time.sleep(0.01)
                steps += 1
        run.log(step=1, loss=0.25)
        full = [w for w in run.summary().warnings if "cannot write the spool" in w]
        assert len(full) == 1 and "No space left on device" in full[0]  # said once, clearly
        deadline = time.monotonic() + 5  # the checkpoint thread may be retrying it just now
        while (held := run._delivery.held) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held is not None and len(held.samples) > 0  # kept in memory
        blocker.unlink()  # the store is back; the disk is still full
        blocker.mkdir()
    s = run.summary()
    assert s.status == "finished" and steps > 20
    obj, samples = stored(url, run.id)  # the final checkpoint carried everything held
    assert obj["status"] == "finished"
    assert obj["energy_j"] == pytest.approx(s.energy_j, rel=1e-12)
    assert samples["t_s"].size == kept_samples(run)
    assert [p["name"] for p in obj["phases"]] == ["train"] and obj["metrics"] == {"loss": 0.25}
    assert any("cannot write the spool" in e["message"] for e in obj["events"])


def test_spool_disk_full_then_freed_spools_what_was_held(tmp_path, monkeypatch) -> None:
    """The disk frees up before the store returns: the held readings go to the spool, and
    ``greentrack sync`` writes them later."""
    from click.testing import CliRunner

    from greentrack.cli import main

    blocker = tmp_path / "mnt"
    blocker.write_text("x")
    url = f"sqlite:///{blocker}/runs.db"
    monkeypatch.setattr(spool_mod, "os", _FullDisk())
    with gt.track("freed", db=url, meters=[replay()], interval_s=0.02, checkpoint_s=0.05) as run:
        time.sleep(0.3)
        monkeypatch.setattr(spool_mod, "os", os)  # space freed
        time.sleep(0.3)
        assert run._delivery.held is None
    s = run.summary()
    blocker.unlink()
    blocker.mkdir()
    result = CliRunner().invoke(main, ["sync", "--db", url])
    assert result.exit_code == 0, result.output
    obj, samples = stored(url, run.id)
    assert obj["status"] == "finished" and obj["energy_j"] == pytest.approx(s.energy_j, rel=1e-12)
    assert samples["t_s"].size == kept_samples(run)


def test_a_broken_store_install_never_reaches_the_users_code(tmp_path, monkeypatch) -> None:
    """Not a database error but a broken environment (alembic missing when a new database has to
    be created): every checkpoint, the final one included, is spooled with a warning; stop()
    returns normally, and ``greentrack sync`` writes the run once the install is fixed."""
    from click.testing import CliRunner

    from greentrack.cli import main
    from greentrack.store import schema

    def missing(url: str) -> None:
        raise ModuleNotFoundError("No module named 'alembic'")

    url = f"sqlite:///{tmp_path}/runs.db"
    real_upgrade = schema.upgrade
    monkeypatch.setattr(schema, "upgrade", missing)
    with gt.track("broken", db=url, meters=[replay()], interval_s=0.02, checkpoint_s=0.05) as run:
        time.sleep(0.3)
    s = run.summary()
    assert s.status == "finished" and s.energy_j > 0
    assert any("store unusable" in w and "alembic" in w for w in s.warnings)
    assert Spool.for_store(load_config().spool_dir, url).pending(run.id)  # measured: on disk
    monkeypatch.setattr(schema, "upgrade", real_upgrade)  # the install is fixed
    result = CliRunner().invoke(main, ["sync", "--db", url])
    assert result.exit_code == 0, result.output
    obj, samples = stored(url, run.id)
    assert obj["status"] == "finished" and obj["energy_j"] == pytest.approx(s.energy_j, rel=1e-12)
    assert samples["t_s"].size == kept_samples(run)


# -- hardware failing mid-run ---------------------------------------------------------------------
def test_gpu_lost_mid_run_freezes_that_gpu_and_records_why(
    sqlite_url, fake_nvml, no_powercap
) -> None:
    fake_nvml.set_gpus([FakeGpu("NVIDIA H100", power_w=300.0, fail_at_s=0.4),
                        FakeGpu("NVIDIA H100", power_w=100.0)])  # fmt: skip
    with fake_nvml, gt.track("gpu-lost", db=sqlite_url, interval_s=0.02) as run:
        time.sleep(0.9)
    s = run.summary()
    obj, samples = stored(sqlite_url, run.id)
    assert s.status == obj["status"] == "finished"
    got = {c["device"]: c["energy_j"] for c in obj["components"]}
    t0 = fake_nvml.fake_time_at(run.t0_mono)
    t1 = fake_nvml.fake_time_at(run.t1_mono)
    # gpu:0 stops at its failure (0.4 s on the fake clock), within one sampling interval
    assert got["gpu:0"] == pytest.approx(300.0 * (0.4 - t0), abs=300.0 * 0.05)
    assert got["gpu:1"] == pytest.approx(100.0 * (t1 - t0), abs=100.0 * 0.05)  # continues
    lost = [e for e in obj["events"] if "gpu:0" in e["message"] and "failed" in e["message"]]
    assert len(lost) == 1 and "GPU_IS_LOST" in lost[0]["message"].upper().replace(" ", "_")
    gpu0 = samples["energy_j"][samples["device"] == "gpu:0"]
    assert gpu0.max() == pytest.approx(got["gpu:0"])  # frozen, not reset
    assert s.energy_j == pytest.approx(obj["energy_j"], rel=1e-12)


def test_rapl_unreadable_mid_run_keeps_the_energy_so_far(
    sqlite_url, fake_powercap, no_nvml, monkeypatch
) -> None:
    """The counters are held still around each event the figures depend on (start, failure,
    stop), so the expected energy is exact whatever the machine's load does to the threads."""
    fake = fake_powercap
    t0 = fake.now_s()  # not started yet: the counters hold still while the run takes its baseline
    with gt.track("rapl-lost", db=sqlite_url, interval_s=0.02) as run:
        fake.start()
        time.sleep(0.3)
        fake.stop()  # the counters hold still ...
        with run.phase("probe"):  # ... and a fresh read of every meter sees them
            pass
        t_fail = fake.now_s()
        fake.deny(monkeypatch, zones=["intel-rapl:1"])  # permissions changed
        dram0 = next(z for z, d in fake.domains.items() if d.device == "dram:package-0")
        fake.break_zone(dram0)  # the DRAM zone of socket 0 vanished
        fake.start()
        time.sleep(0.4)
        fake.stop()
        t1 = fake.now_s()
    obj, _ = stored(sqlite_url, run.id)
    assert obj["status"] == "finished"
    assert t_fail - t0 > 0.05 and t1 - t_fail > 0.05  # the fake ran (its thread may lag)
    got = {c["device"]: c["energy_j"] for c in obj["components"]}
    exact = 1e-3  # the counters' µJ truncation
    assert got["cpu:package-1"] == pytest.approx(50.0 * (t_fail - t0), abs=exact)
    assert got["dram:package-0"] == pytest.approx(7.0 * (t_fail - t0), abs=exact)
    assert got["cpu:package-0"] == pytest.approx(50.0 * (t1 - t0), abs=exact)  # goes on
    assert got["dram:package-1"] == pytest.approx(7.0 * (t1 - t0), abs=exact)
    failed = {e["message"].split()[0] for e in obj["events"] if "failed" in e["message"]}
    assert failed == {"cpu:package-1", "dram:package-0"}


# -- the wall clock jumps -------------------------------------------------------------------------
@pytest.mark.parametrize("jump_s", [3600.0, -3600.0])
def test_wall_clock_jump_changes_neither_duration_nor_energy(
    sqlite_url, monkeypatch, jump_s
) -> None:
    real_time = time.time
    offset = [0.0]
    monkeypatch.setattr(time, "time", lambda: real_time() + offset[0])
    t = time.perf_counter()
    with gt.track("jump", db=sqlite_url, meters=[replay()], interval_s=0.02,
                  checkpoint_s=0.1) as run:  # fmt: skip
        with run.phase("a"):
            time.sleep(0.3)
        offset[0] = jump_s  # NTP step, VM resume, an operator
        with run.phase("b"):
            time.sleep(0.3)
    elapsed = time.perf_counter() - t
    s = run.summary()
    assert s.duration_s == pytest.approx(elapsed, abs=0.1)
    assert s.energy_j == pytest.approx(sum(POWER_W.values()) * s.duration_s, rel=1e-9)
    obj, samples = stored(sqlite_url, run.id)
    assert obj["duration_s"] == pytest.approx(s.duration_s)
    from datetime import datetime

    span = datetime.fromisoformat(obj["ended_at"][:-1]) - datetime.fromisoformat(
        obj["started_at"][:-1]
    )
    assert span.total_seconds() == pytest.approx(s.duration_s, abs=1e-3)
    assert samples["t_s"].max() - samples["t_s"].min() <= s.duration_s + 1e-6
    gpu = samples["power_w"][samples["device"] == "gpu:0"]
    # no 0 W or 10^5 W artefact at the jump (epoch-second floats: ~1e-5 relative per interval)
    assert gpu == pytest.approx([250.0] * gpu.size, rel=1e-2)
    phases = {p["name"]: p for p in obj["phases"]}
    assert phases["b"]["duration_s"] == pytest.approx(0.3, abs=0.1)


# -- processes racing on one spool ----------------------------------------------------------------
class _Collect:
    """A store that keeps the samples written to it."""

    def __init__(self) -> None:
        self.t_s: list[float] = []

    def write(self, cp: Checkpoint) -> None:
        self.t_s += [x["t_s"] for x in cp.samples]


def test_concurrent_append_and_replay_lose_no_checkpoint(tmp_path) -> None:
    """A process appends while others replay (a shared spool): every line is replayed."""
    spool = Spool(tmp_path / "spool")
    n = 300
    done = threading.Event()
    sink = _Collect()

    def appender() -> None:
        for i in range(1, n + 1):
            sample = {"device": "gpu:0", "component": "gpu", "t_s": float(i), "energy_j": 1.0 * i,
                      "power_w": 1.0}  # fmt: skip
            spool.append(Checkpoint(run_id="ab" * 16, rank=0, seq=i, samples=[sample]))
        done.set()

    def replayer() -> None:
        while not done.is_set():
            for path in spool.pending():
                spool.replay(sink, path)

    threads = [threading.Thread(target=appender)] + [
        threading.Thread(target=replayer) for _ in range(2)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    for path in spool.pending():
        spool.replay(sink, path)
    assert sorted(set(sink.t_s)) == [float(i) for i in range(1, n + 1)]
    assert spool.pending() == []


# -- values the database refuses -------------------------------------------------------------------
@pytest.mark.postgres
def test_values_the_database_refuses_never_block_the_run_or_the_next_ones(pg_url: str) -> None:
    """PostgreSQL refuses text with a NUL byte. Before, such a checkpoint went to the spool and
    was retried forever: the run never reached the store, and every later run on the machine
    replayed it first. Now the NUL is escaped where it is given (U+FFFD), so the whole checkpoint
    lands at once, and the next run does not notice."""
    with gt.track("refused", db=pg_url, meters=[replay()], interval_s=0.02, checkpoint_s=0.05) as a:
        a.log_params(note="binary\x00garbage")
        a.log(step=1, loss=0.25)
        time.sleep(0.2)
        a.log(step=2, loss=0.125)  # a later checkpoint: written as usual
    s = a.summary()
    # the NUL is escaped where it was given (README: text the store cannot hold), so nothing is
    # refused any more; the refused-part path stays for old spools (see the test below)
    assert [w for w in s.warnings if "refused" in w] == []
    obj, samples = stored(pg_url, a.id)
    assert obj["status"] == "finished"
    assert obj["energy_j"] == pytest.approx(s.energy_j, rel=1e-12)
    assert samples["t_s"].size == kept_samples(a)
    assert obj["params"] == {"note": "binary\ufffdgarbage"} and obj["metrics"] == {"loss": 0.125}
    spool = Spool.for_store(load_config().spool_dir, pg_url)
    assert spool.pending() == []  # nothing left to retry forever
    assert not list((spool.dir / "rejected").glob(f"{a.id}.*.jsonl"))
    with gt.track("next", db=pg_url, meters=[replay()], interval_s=0.02, checkpoint_s=0.05) as b:
        time.sleep(0.1)
    assert [w for w in b.summary().warnings if "store" in w] == []
    assert stored(pg_url, b.id)[0]["status"] == "finished"


@pytest.mark.postgres
def test_a_spooled_checkpoint_with_refused_values_is_synced_without_them(pg_url: str) -> None:
    from click.testing import CliRunner
    from tests_helpers import checkpoint

    from greentrack.cli import main

    spool = Spool.for_store(load_config().spool_dir, pg_url)
    rid = "5e" * 16
    bad = checkpoint(rid, 1, 42.0, "finished", sample=True)
    bad.params = {"note": "a\x00b"}
    spool.append(bad)
    result = CliRunner().invoke(main, ["sync", "--db", pg_url])
    assert result.exit_code == 0, result.output
    obj, _ = stored(pg_url, rid)
    assert obj["energy_j"] == 42.0 and obj["params"] == {}
    assert spool.pending() == [] and list((spool.dir / "rejected").glob(f"{rid}.*.jsonl"))
