"""Attacks on the store and the spool (issue 11 items 2-5, 12; issue 17 items 2-3), each against
the real thing: a tmpfs filled to the byte, spool files replayed twice and a `sync` SIGKILLed
half-way, spool lines from a newer greentrack, NaN/inf metrics and text the store cannot hold on
SQLite and PostgreSQL, a SQLite file with garbage in its middle, an unreachable server, and
stores this user cannot write."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests_helpers import checkpoint
from tests_store_old import write_0001_run

import greentrack as gt
from greentrack.cli import main
from greentrack.config import load_config
from greentrack.meters import ReplayMeter
from greentrack.store import queries
from greentrack.store.checkpoint import Checkpoint
from greentrack.store.dbapi import connect
from greentrack.store.schema import SCHEMA_REVISION, upgrade
from greentrack.store.spool import SPOOL_FORMAT, Spool, from_line, to_line
from greentrack.store.writer import StoreWriter

REPO = Path(__file__).resolve().parents[1]


# -- a real tmpfs ------------------------------------------------------------------------------
def _cannot_attack(reason: str) -> None:
    """Skip with the reason; under CI (CI=true) the attack must run, so fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: this attack must run)")
    pytest.skip(reason)


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        _cannot_attack(
            f"cannot mount a tmpfs ({done.stderr.strip() or done.returncode}); run as root"
        )


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path):
    mounts: list[Path] = []

    def make(path: Path, size: str = "1m") -> Path:
        _mount_tmpfs(path, size)
        mounts.append(path)
        return path

    yield make
    for m in reversed(mounts):
        _umount(m)


def _fill_to_the_byte(folder: Path) -> Path:
    """Fill the file system of ``folder`` until a 1-byte write fails with ENOSPC."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 512, b"\0"):
            while True:
                try:
                    if os.write(fd, chunk) < len(chunk):
                        break
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    with pytest.raises(OSError) as caught, open(folder / "probe", "wb", buffering=0) as f:
        f.write(b"x" * 8192)
    assert caught.value.errno == errno.ENOSPC
    (folder / "probe").unlink(missing_ok=True)
    return filler


def _lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]


def test_full_disk_append_is_rolled_back_to_the_byte(tmpfs, tmp_path: Path, sqlite_url) -> None:
    """On a tmpfs filled to the byte the first failed append is a short write; it must leave the
    spool file exactly as it was, so that the next append after space returns is intact."""
    disk = tmpfs(tmp_path / "disk", "256k")
    spool = Spool(disk / "spool")
    rid = "aa" * 16
    first = checkpoint(rid, 1, 10.0, "running", sample=True)
    path = spool.append(first)
    size_before = path.stat().st_size
    assert size_before % 4096 != 0  # the file's last page has room: the next write is short
    filler = _fill_to_the_byte(disk)
    big = checkpoint(rid, 2, 20.0, "running")
    big.metrics = [
        {"key": "loss", "step": None, "value": 0.5, "t_s": 1.7e9 + i} for i in range(200)
    ]
    with pytest.raises(OSError) as caught:
        spool.append(big)
    assert caught.value.errno == errno.ENOSPC
    assert path.stat().st_size == size_before  # rolled back: no torn fragment
    filler.unlink()  # space is back
    spool.append(big)
    assert all(json.loads(ln) for ln in _lines(path))  # every line is a whole checkpoint
    writer = StoreWriter(sqlite_url)
    assert spool.replay(writer, path) == 2
    writer.close()
    assert spool.pending() == [] and spool.problems == []
    conn = queries.open_store(sqlite_url)
    n = conn.scalar("SELECT COUNT(*) FROM metrics WHERE run_id = :r", {"r": rid})
    conn.close()
    assert n == 200


def test_full_disk_during_a_run_loses_nothing(tmpfs, gt_home: Path, tmp_path: Path) -> None:
    """A run whose store is away and whose spool disk fills up mid-run, then frees: every spool
    line parses, `sync` writes all of it, and the stored energy and samples are the run's."""
    spool_mount = tmpfs(gt_home / "spool", "512k")
    blocker = tmp_path / "mnt"
    blocker.write_text("the database volume is not mounted")
    url = f"sqlite:///{blocker}/runs.db"
    spool = Spool.for_store(load_config().spool_dir, url)
    meter = ReplayMeter([(0.0, {"gpu:0": 100.0})])
    filler = None
    with gt.track("fulldisk", db=url, meters=[meter], interval_s=0.02, checkpoint_s=0.05) as run:
        deadline = time.monotonic() + 20
        while not spool.pending(run.id) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert spool.pending(run.id), "the run never spooled"
        filler = _fill_to_the_byte(spool_mount)
        while time.monotonic() < deadline:  # until an append failed on the full disk
            run.log(loss=1.0)
            if any("cannot write the spool" in w for w in run.summary().warnings):
                break
            time.sleep(0.01)
        assert any("cannot write the spool" in w for w in run.summary().warnings)
        for _ in range(20):
            run.log(loss=2.0)  # metrics without step, held in memory meanwhile
        filler.unlink()
        size = sum(p.stat().st_size for p in spool.pending(run.id))
        while time.monotonic() < deadline:  # until the held state reached the spool
            if sum(p.stat().st_size for p in spool.pending(run.id)) > size + 1000:
                break
            time.sleep(0.01)
    summary = run.summary()
    files = spool.pending(run.id)
    lines = [ln for p in files for ln in _lines(p)]
    torn = [ln[:60] for ln in lines if not _parses(ln)]
    assert torn == [], f"{len(torn)} of {len(lines)} spool lines torn: {torn[:2]}"
    n_samples = sum(len(json.loads(ln)["samples"]) for ln in lines)
    blocker.unlink()
    blocker.mkdir()
    result = CliRunner().invoke(main, ["sync", "--db", url])
    assert result.exit_code == 0, result.output
    conn = queries.open_store(url)
    obj = queries.get_run(conn, run.id)
    stored = conn.scalar("SELECT COUNT(*) FROM samples WHERE run_id = :r", {"r": run.id})
    conn.close()
    assert obj["energy_j"] == summary.energy_j
    assert stored == n_samples > 0


def _parses(line: bytes) -> bool:
    try:
        from_line(line.decode())
        return True
    except ValueError:
        return False


# -- replay is idempotent ------------------------------------------------------------------
def _stepless_checkpoints(rid: str, n: int) -> list[Checkpoint]:
    cps = []
    for seq in range(1, n + 1):
        cp = checkpoint(rid, seq, float(seq), "running" if seq < n else "finished", sample=True)
        cp.metrics = [
            {"key": "loss", "step": None, "value": 1.0 / seq, "t_s": 1.7e9 + seq},
            {"key": "acc", "step": seq, "value": 0.5, "t_s": 1.7e9 + seq},
        ]
        cps.append(cp)
    return cps


def _metric_count(url: str, rid: str) -> int:
    conn = queries.open_store(url)
    try:
        return int(conn.scalar("SELECT COUNT(*) FROM metrics WHERE run_id = :r", {"r": rid}))
    finally:
        conn.close()


def test_spool_replayed_twice_stores_every_metric_once(store_url: str, tmp_path: Path) -> None:
    """A crash between COMMIT and unlink replays a spool file again: nothing is doubled
    (metrics logged without `step=` included)."""
    rid = "ab" * 16
    spool = Spool(tmp_path / "spool")
    for cp in _stepless_checkpoints(rid, 30):
        spool.append(cp)
    [path] = spool.pending()
    copy = tmp_path / "copy.jsonl"
    shutil.copy(path, copy)
    writer = StoreWriter(store_url)
    assert spool.replay(writer, path) == 30
    shutil.copy(copy, path)  # the file survived the crash after COMMIT
    assert spool.replay(writer, path) == 30
    writer.close()
    assert _metric_count(store_url, rid) == 60
    conn = queries.open_store(store_url)
    obj = queries.get_run(conn, rid)
    conn.close()
    assert obj["metrics"] == {"loss": 1.0 / 30, "acc": 0.5}


_KILLABLE_SYNC = """
import sys, time
import greentrack.store.spool as spool
import greentrack.store.writer as w
spool._REPLAY_BATCH_SAMPLES = 1  # one transaction per checkpoint
real_write, done, half = w.StoreWriter.write, [], int(sys.argv[2])
def write(self, cp):
    out = real_write(self, cp)
    done.append(1)
    if len(done) == half:  # committed: now wait for the SIGKILL, half-way
        print("HALF", flush=True)
        time.sleep(600)
    return out
w.StoreWriter.write = write
from greentrack.cli import main
sys.argv = ["greentrack", "sync", "--db", sys.argv[1]]
main()
"""


def test_sync_killed_half_way_then_rerun_stores_every_metric_once(store_url: str) -> None:
    """A real `greentrack sync` process SIGKILLed after it committed half of a spool file (its
    claimed file stays), then run again: every metric once."""
    rid = "cd" * 16
    n = 40
    spool = Spool.for_store(load_config().spool_dir, store_url)
    for cp in _stepless_checkpoints(rid, n):
        spool.append(cp)
    upgrade(store_url)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_SYNC, store_url, str(n // 2)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "HALF"  # blocks until half is committed
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert _metric_count(store_url, rid) == n  # half of the checkpoints (2 metrics each)
    assert spool.pending(), "the killed sync's claimed file must stay for the next one"
    result = CliRunner().invoke(main, ["sync", "--db", store_url])
    assert result.exit_code == 0, result.output
    assert spool.pending() == []
    assert _metric_count(store_url, rid) == 2 * n


def test_migration_removes_the_doubles_already_stored(store_url: str) -> None:
    """A store where replays doubled step-less metrics (as greentrack <= 0.2 did) is cleaned by
    `greentrack db upgrade`; metrics with a step were never doubled and stay."""
    rid = "ef" * 16
    assert upgrade(store_url, "0002") == "0002"
    metrics = [("loss", None, 1.0 / i, 1.7e9 + i) for i in range(1, 51)]
    metrics += [("acc", i, 0.5, 1.7e9 + i) for i in range(1, 51)]
    conn = connect(store_url)
    write_0001_run(conn, rid, 5.0, metrics, replays=3)
    before = conn.scalar("SELECT COUNT(*) FROM metrics")
    conn.close()
    assert before == 50 * 3 + 50  # the doubles (tripled: three replays)
    result = CliRunner().invoke(main, ["db", "upgrade", "--db", store_url])
    assert result.exit_code == 0, result.output
    assert f"schema at {SCHEMA_REVISION}" in result.output
    assert _metric_count(store_url, rid) == 100
    conn = queries.open_store(store_url)
    obj = queries.get_run(conn, rid)
    conn.close()
    assert obj["metrics"] == {"loss": 1.0 / 50, "acc": 0.5}
    # and replaying the same metrics through today's writer adds nothing
    cp = checkpoint(rid, 9, 5.0, "finished")
    cp.metrics = [{"key": k, "step": s, "value": v, "t_s": t} for k, s, v, t in metrics]
    StoreWriter(store_url).write(cp)
    assert _metric_count(store_url, rid) == 100


# -- spool files greentrack cannot fully read are kept --------------------------------------
def test_newer_spool_format_is_kept_and_sync_fails_with_the_version(sqlite_url: str) -> None:
    spool = Spool.for_store(load_config().spool_dir, sqlite_url)
    spool.append(checkpoint("12" * 16, energy_j=3.0))  # a line this greentrack reads
    path = spool.pending()[0]
    newer = json.loads(to_line(checkpoint("12" * 16, 2, energy_j=9.0)))
    newer["v"] = SPOOL_FORMAT + 7
    with path.open("a") as f:
        f.write(json.dumps(newer) + "\n")
    for _attempt in range(2):  # kept: the next sync says it again
        result = CliRunner().invoke(main, ["sync", "--db", sqlite_url])
        assert result.exit_code == 1, result.output
        assert f"spool format {SPOOL_FORMAT + 7}" in result.stderr
        assert "upgrade greentrack" in result.stderr
        [kept] = spool.pending()
        assert kept.name.startswith("12" * 16) and str(kept) in result.stderr
        assert _lines(kept)[-1] == json.dumps(newer).encode()
    conn = queries.open_store(sqlite_url)
    assert queries.get_run(conn, "1212")["energy_j"] == 3.0  # the readable line was written
    conn.close()


def test_unparsable_line_keeps_the_file_and_sync_fails_naming_it(sqlite_url: str) -> None:
    spool = Spool.for_store(load_config().spool_dir, sqlite_url)
    spool.append(checkpoint("34" * 16, 1, energy_j=1.0, status="running"))
    path = spool.pending()[0]
    with path.open("ab") as f:
        f.write(b'{"v":2,"run_id":"3434","rank":0,"se' + b"\n")  # a torn fragment
    spool.append(checkpoint("34" * 16, 2, energy_j=2.0))
    result = CliRunner().invoke(main, ["sync", "--db", sqlite_url])
    assert result.exit_code == 1, result.output
    [kept] = spool.unreadable()
    assert str(kept) in result.stderr and "line 2" in result.stderr
    assert len(_lines(kept)) == 3  # the whole file, untouched
    assert spool.pending() == []  # out of the way of later replays
    conn = queries.open_store(sqlite_url)
    assert queries.get_run(conn, "3434")["energy_j"] == 2.0  # both whole lines were written
    conn.close()
    again = CliRunner().invoke(main, ["sync", "--db", sqlite_url])
    assert again.exit_code == 1 and str(kept) in again.stderr  # until the user deals with it
    kept.unlink()
    assert CliRunner().invoke(main, ["sync", "--db", sqlite_url]).exit_code == 0


def test_old_spool_lines_without_a_version_replay(sqlite_url: str) -> None:
    spool = Spool.for_store(load_config().spool_dir, sqlite_url)
    spool.append(checkpoint("56" * 16, energy_j=4.0))
    path = spool.pending()[0]
    data = json.loads(path.read_text())
    del data["v"]  # what greentrack <= 0.2 wrote
    path.write_text(json.dumps(data) + "\n")
    result = CliRunner().invoke(main, ["sync", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert spool.pending() == []


# -- one bad value takes nothing with it; every JSON output is JSON ----------------------------
def _strict(text: str):
    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_nan_metric_keeps_its_neighbours_and_json_stays_json(store_url: str, tmp_path) -> None:
    meter = ReplayMeter([(0.0, {"gpu:0": 100.0})])
    with gt.track(
        "nan", db=store_url, meters=[meter], params={"lr": "0.1"}, tags={"t": "x"}
    ) as run:
        run.log(ok=1.0, bad=float("nan"), up=float("inf"), down=float("-inf"))
        time.sleep(0.05)
    assert not any("refused" in w for w in run.summary().warnings), run.summary().warnings
    conn = queries.open_store(store_url)
    obj = queries.get_run(conn, run.id)
    conn.close()
    assert obj["params"] == {"lr": "0.1"} and obj["tags"] == {"t": "x"}
    m = obj["metrics"]
    assert m["ok"] == 1.0 and math.isnan(m["bad"]) and m["up"] == math.inf
    assert m["down"] == -math.inf
    runner = CliRunner()
    outputs = {
        "show": ["show", run.id, "--format", "json"],
        "runs": ["runs", "--format", "json"],
        "report": ["report", run.id, "--format", "json"],
        "export": ["export", "--format", "json"],
    }
    for name, args in outputs.items():
        result = runner.invoke(main, [*args, "--db", store_url])
        assert result.exit_code == 0, (name, result.output, result.stderr)
        data = _strict(result.stdout)  # no NaN / Infinity tokens
        assert data, name
    show = runner.invoke(main, ["show", run.id, "--format", "json", "--db", store_url])
    shown = _strict(show.stdout)
    assert shown["metrics"] == {"ok": 1.0, "bad": None, "up": None, "down": None}


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b"])
def test_text_the_store_cannot_hold_never_rejects_the_energy(store_url: str, bad: str) -> None:
    """A NUL byte (PostgreSQL refuses it) or a lone surrogate (no UTF-8 for it) in the run's
    name and in a param, as an old spool line has them: the energy is written at once (the run
    row with that text escaped: NUL -> U+FFFD, surrogate -> backslash escape); the user's
    metrics, params and tags are left out and the reason returned (the caller keeps them in
    rejected/); the energy never is."""
    rid = "78" * 16
    cp = checkpoint(rid, 1, 42.0, "finished", sample=True)
    cp.run["name"] = bad
    cp.params = {"p": bad, "ok": "1"}
    cp.metrics = [{"key": "fine", "step": 1, "value": 1.0, "t_s": 1.7e9}]
    writer = StoreWriter(store_url)
    reason = writer.write(cp)
    writer.close()
    conn = queries.open_store(store_url)
    obj = queries.get_run(conn, rid)
    n = conn.scalar("SELECT COUNT(*) FROM samples WHERE run_id = :r", {"r": rid})
    conn.close()
    assert obj["energy_j"] == 42.0 and n == 1 and obj["status"] == "finished"
    if store_url.startswith("sqlite") and "\x00" in bad:  # SQLite holds a NUL byte as it is
        assert reason is None and obj["name"] == bad and obj["params"]["p"] == bad
    else:
        assert reason is not None and "refused" in reason
        escaped = "a\ufffdb" if "\x00" in bad else "a\\ud800b"  # as security.storable
        assert obj["name"] == escaped and obj["params"] == {} and obj["metrics"] == {}


def test_spooled_surrogate_replays_and_sync_writes_the_other_runs(sqlite_url: str) -> None:
    spool = Spool.for_store(load_config().spool_dir, sqlite_url)
    poisoned = checkpoint("9a" * 16, energy_j=5.0)
    poisoned.params = {"p": "\ud800"}
    spool.append(poisoned)
    spool.append(checkpoint("9b" * 16, energy_j=6.0))
    result = CliRunner().invoke(main, ["sync", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert list((spool.dir / "rejected").glob("9a9a*.jsonl"))  # the refused param, kept aside
    conn = queries.open_store(sqlite_url)
    assert queries.get_run(conn, "9a9a")["energy_j"] == 5.0
    assert queries.get_run(conn, "9b9b")["energy_j"] == 6.0
    conn.close()
    assert spool.pending() == []


# -- damaged, unreachable and read-only stores: one line, and readers read ---------------------
def _make_store(url: str, n_runs: int = 3) -> str:
    meter = ReplayMeter([(0.0, {"gpu:0": 100.0})])
    rid = ""
    for i in range(n_runs):
        with gt.track(f"r{i}", db=url, meters=[meter], interval_s=0.02) as run:
            for k in range(300):
                run.log(step=k, loss=0.1 * k)
            time.sleep(0.05)
        rid = run.id
    from greentrack.store.writer import _close_shared

    _close_shared()  # as after the process exits: the WAL is checkpointed into the file
    return rid


def _one_line_error(result) -> str:
    text = (result.stderr or "") + (result.output or "")
    assert "Traceback" not in text, text[-2000:]
    assert result.exception is None or isinstance(result.exception, SystemExit), text[-2000:]
    err = result.stderr.strip()
    assert err.count("\n") == 0, err
    return err


def test_sqlite_with_garbage_in_the_middle_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    rid = _make_store(url)
    import sqlite3

    raw = sqlite3.connect(db)
    page_b = raw.execute("PRAGMA page_size").fetchone()[0]
    root = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = 'metrics'").fetchone()[0]
    raw.close()
    size = db.stat().st_size
    with db.open("r+b") as f:  # the schema stays readable; the metrics table's root is garbage
        for offset in ((root - 1) * page_b, size // 2 // page_b * page_b):
            f.seek(offset)
            f.write(os.urandom(2 * page_b))
    runner = CliRunner()
    for args in (["runs"], ["show", rid], ["report", rid], ["runs", "--format", "json"]):
        result = runner.invoke(main, [*args, "--db", url])
        err = _one_line_error(result)
        if result.exit_code != 0:
            assert "damaged" in err or "malformed" in err, err
    result = runner.invoke(main, ["db", "current", "--db", url])
    err = _one_line_error(result)
    assert result.exit_code == 1 and ("damaged" in err or "malformed" in err), err
    assert "up to date" not in result.stdout
    runs = runner.invoke(main, ["runs", "--db", url])
    assert runs.exit_code == 1 and ("damaged" in runs.stderr or "malformed" in runs.stderr)


def test_db_upgrade_of_an_unreachable_server_is_one_line() -> None:
    result = CliRunner().invoke(
        main, ["db", "upgrade", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/x"]
    )
    assert result.exit_code == 1
    err = _one_line_error(result)
    assert "cannot connect" in err and "127.0.0.1" in err


def _read_commands(rid: str) -> list[list[str]]:
    return [
        ["runs"],
        ["runs", "--format", "json"],
        ["show", rid],
        ["show", rid, "--format", "json"],
        ["report", rid],
        ["report", rid, "--format", "json"],
        ["export", "--format", "csv"],
    ]


def test_read_only_directory_store_can_be_read(tmpfs, tmp_path: Path) -> None:
    """A store on a read-only file system (an archive): readers read it; writers are told."""
    made = tmp_path / "made.db"
    rid = _make_store(f"sqlite:///{made}", 1)
    folder = tmpfs(tmp_path / "archive", "16m")
    shutil.copy(made, folder / "store.db")
    url = f"sqlite:///{folder / 'store.db'}"
    done = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True)
    assert done.returncode == 0, done.stderr
    with pytest.raises(OSError):
        (folder / "x").write_text("x")
    runner = CliRunner()
    for args in _read_commands(rid):
        result = runner.invoke(main, [*args, "--db", url])
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert rid[:8] in result.stdout or args[0] == "export", args
    shown = _strict(runner.invoke(main, ["show", rid, "--format", "json", "--db", url]).stdout)
    assert shown["metrics"]["loss"] == pytest.approx(29.9)
    sync = runner.invoke(main, ["db", "current", "--db", url])
    assert sync.exit_code == 0 and "up to date" in sync.stdout


def test_read_only_file_can_be_read_by_a_user_who_cannot_write_it(tmp_path: Path) -> None:
    """File mode 0444 (a colleague's file, an immutable archive) read by a process without
    root's override of file permissions (setpriv drops every capability)."""
    if shutil.which("setpriv") is None:
        _cannot_attack("setpriv (util-linux) is not installed")
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    rid = _make_store(url, 1)
    db.chmod(0o444)
    for sidecar in (tmp_path / "store.db-wal", tmp_path / "store.db-shm"):
        if sidecar.exists():
            sidecar.chmod(0o444)
    env = {**os.environ, "CI": os.environ.get("CI", "")}
    drop = ["setpriv", "--bounding-set", "-all", "--inh-caps", "-all"]
    probe = subprocess.run([*drop, sys.executable, "-c", f"open({str(db)!r}, 'r+b')"], env=env,
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode == 0:
        _cannot_attack("this process can write a 0444 file even without capabilities")
    for args in _read_commands(rid):
        done = subprocess.run(
            [*drop, sys.executable, "-m", "greentrack", *args, "--db", url],
            env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, (args, done.stdout, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
        assert rid[:8] in done.stdout or args[0] == "export", args


def test_component_notes_and_phase_methods_are_stored_and_shown(store_url: str) -> None:
    """Schema 0003: a component's assumption note and a phase's own method reach `show`."""
    from datetime import datetime

    rid = "ac" * 16
    note = "TDP 240 W (codecarbon cpu_power.csv: AMD EPYC 7763) scaled to 2 of 128 threads"
    cp = checkpoint(rid, 1, 12.0, "finished")
    cp.components[0]["note"] = note
    t0 = datetime(2026, 1, 1, 12, 0, 0)
    cp.phases = [
        {
            "id": "ph" * 16,
            "name": "eval",
            "path": "eval",
            "depth": 0,
            "started_at": t0,
            "ended_at": t0,
            "t0_s": 1.7e9,
            "t1_s": 1.7e9 + 0.01,
            "duration_s": 0.01,
            "energy_j": 1.5,
            "components": {"gpu:0": 1.5},
            "co2e_g": None,
            "method": "sampled",
        }
    ]
    spool = Spool(Path(load_config().spool_dir) / "notes")
    spool.append(cp)  # through a spool line, as a replay would
    writer = StoreWriter(store_url)
    assert spool.replay(writer, spool.pending()[0]) == 1
    writer.close()
    result = CliRunner().invoke(main, ["show", rid, "--format", "json", "--db", store_url])
    assert result.exit_code == 0, result.output
    shown = _strict(result.stdout)
    assert shown["components"][0]["note"] == note
    assert shown["processes"][0]["components"][0]["note"] == note
    assert shown["phases"][0]["method"] == "sampled"


def test_the_shared_json_encoder_writes_strict_json() -> None:
    import numpy as np

    from greentrack.jsonout import dumps

    data = {
        "a": math.nan,
        "b": [math.inf, -math.inf, 1.5],
        "c": np.float32("nan"),
        "d": np.int64(3),
    }
    assert _strict(dumps(data)) == {"a": None, "b": [None, None, 1.5], "c": None, "d": 3}


def test_a_store_slow_to_connect_holds_up_neither_other_stores_nor_exit(sqlite_url: str) -> None:
    """A PostgreSQL server that accepts and never answers: opening the shared connection to it
    waits for its connect timeout, but meanwhile another store's runs connect at once and the
    exit hook returns at once (before, both waited on the registry's lock)."""
    import socket
    import threading

    from greentrack.store import writer

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # the kernel accepts; nobody ever answers
    slow = f"postgresql+psycopg://x@127.0.0.1:{server.getsockname()[1]}/test?connect_timeout=3"
    failed: list[BaseException] = []

    def connect_slow() -> None:
        try:
            writer._shared_connection(slow)
        except BaseException as e:  # the connect timeout, as the writer sees it
            failed.append(e)

    t = threading.Thread(target=connect_slow, daemon=True)
    t.start()
    time.sleep(0.5)  # the slow connect is under way
    t0 = time.monotonic()
    writer._shared_connection(sqlite_url)
    other_s = time.monotonic() - t0
    t0 = time.monotonic()
    writer._close_shared()
    exit_s = time.monotonic() - t0
    assert t.is_alive(), "the slow connect should still be waiting"
    assert other_s < 1.0 and exit_s < 1.0, (other_s, exit_s)
    t.join(15)
    server.close()
    assert failed and not t.is_alive()
