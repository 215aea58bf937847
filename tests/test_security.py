"""Secrets and files: database passwords and provider tokens never reach output, logs, the run or
the spool; every CLI filter is a bound parameter; the store and spool are private to the user."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.metadata import mask_argv
from greentrack.meters import ReplayMeter
from greentrack.store import queries

PASSWORD = "S3cret-pw-4711"
TOKEN = "tok-5f0e9a7c-secret"


def _with_password(url: str, password: str = PASSWORD) -> str:
    return url.replace("://postgres@", f"://postgres:{password}@", 1)


def _files_text(root: Path) -> str:
    return "".join(
        p.read_text(errors="replace") for p in root.rglob("*") if p.is_file() and not p.is_symlink()
    )


def _stored(url: str, run_id: str) -> dict:
    """The run object with events and metadata, and every row of the run's own tables."""
    conn = queries.open_store(url)
    try:
        obj = queries.get_run(conn, run_id)
        obj["rows"] = {
            t: conn.query(f"SELECT * FROM {t} WHERE {'id' if t == 'runs' else 'run_id'} = :id",
                          {"id": run_id})
            for t in ("runs", "components", "events", "params", "tags", "phases")
        }  # fmt: skip
    finally:
        conn.close()
    return obj


def test_mask_argv() -> None:
    argv = ["train.py", "--db", "postgresql://u:pw123@h/db", "--token", "abc123",
            "--api-key=k9k9", "--lr", "0.1", f"--note={TOKEN}",
            "postgresql+psycopg://x:y@h/z?password=p4p4"]  # fmt: skip
    masked = mask_argv(argv, [TOKEN])
    text = " ".join(masked)
    for secret in ("pw123", "abc123", "k9k9", TOKEN, ":y@", "p4p4"):
        assert secret not in text, secret
    assert masked[:4] == ["train.py", "--db", "postgresql://u:***@h/db", "--token"]
    assert "--lr" in masked and "0.1" in masked  # ordinary arguments stay


@pytest.mark.postgres
def test_cli_run_with_a_password_url_stores_and_prints_no_secret(
    pg_url: str, gt_home: Path
) -> None:
    """`greentrack run --db postgresql://u:pw@... -- CMD secret-args` as a user types it."""
    url = _with_password(pg_url)
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home), ELECTRICITYMAPS_TOKEN=TOKEN)
    child = [sys.executable, "-c", "import sys; print('child ok')",
             "postgresql://app:other-pw-99@db/x", "--token", "tt-xyz-123", TOKEN]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "greentrack", "run", "--db", url, "--project", "sec", "--", *child],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    conn = queries.open_store(pg_url)
    run_id = queries.list_runs(conn, project="sec")[0]["id"]
    conn.close()
    obj = _stored(pg_url, run_id)
    stored = json.dumps(obj, default=str)
    for secret in (PASSWORD, "other-pw-99", "tt-xyz-123", TOKEN):
        assert secret not in output, secret
        assert secret not in stored, secret
        assert secret not in _files_text(gt_home), secret
    assert "postgres:***@" in " ".join(obj["meta"]["command"])  # masked, not dropped
    assert "app:***@db" in obj["tags"]["command"] and "--token ***" in obj["tags"]["command"]


def test_unreachable_password_url_is_masked_in_warnings_logs_and_spool(
    gt_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql+psycopg://user:{PASSWORD}@127.0.0.1:1/test"  # nothing listens on port 1
    caplog.set_level(logging.DEBUG)
    meter = ReplayMeter([(0.0, {"gpu:0": 10.0})])
    with gt.track("offline", db=url, meters=[meter], checkpoint_s=0.05) as run:
        time.sleep(0.15)
    s = run.summary()
    assert any("spooled" in w for w in s.warnings)
    text = json.dumps(s.to_dict(), default=str) + caplog.text + _files_text(gt_home)
    assert PASSWORD not in text
    assert "user:***@" in caplog.text or "***" in " ".join(s.warnings)


# -- CLI filters are bound parameters ------------------------------------------------------------
INJECTIONS = [
    "x' OR '1'='1",
    'x" OR "1"="1',
    "'; DROP TABLE runs; --",
    "%",
    "x') OR 1=1 --",
    "cifar' UNION SELECT id, id, id FROM runs --",
]


def _make_runs(url: str) -> list[str]:
    ids = []
    for i, project in enumerate(["cifar", "imagenet"]):
        meter = ReplayMeter([(0.0, {"gpu:0": 10.0 * (i + 1)})])
        with gt.track(f"r{i}", project=project, db=url, meters=[meter], tags={"t": "a"}) as run:
            pass
        ids.append(run.id)
    return ids


def _runs_json(*args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["runs", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_every_runs_filter_treats_injection_as_data(store_url: str) -> None:
    ids = _make_runs(store_url)
    for evil in INJECTIONS:
        assert _runs_json("--db", store_url, "--project", evil) == []
        assert _runs_json("--db", store_url, "--tag", f"t={evil}") == []
        assert _runs_json("--db", store_url, "--tag", f"{evil}=a") == []
        assert _runs_json("--db", store_url, "--project", evil, "--tag", f"{evil}={evil}") == []
        for opt in ("--since", "--status", "--sort", "--limit"):  # validated, one-line errors
            result = CliRunner().invoke(main, ["runs", "--db", store_url, opt, evil])
            assert result.exit_code in (1, 2) and "Traceback" not in result.output, (opt, evil)
        result = CliRunner().invoke(main, ["show", evil, "--db", store_url])
        assert result.exit_code == 1 and result.output.startswith("Error:")
    assert {o["id"] for o in _runs_json("--db", store_url)} == set(ids)  # nothing dropped
    assert [o["id"] for o in _runs_json("--db", store_url, "--project", "cifar")] == [ids[0]]


# -- files readable by the user only -------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_wal_and_spool_are_private_whatever_the_umask(tmp_path: Path, gt_home: Path) -> None:
    old = os.umask(0)  # the most permissive umask: modes must not rely on it
    try:
        url = f"sqlite:///{tmp_path / 'db' / 'runs.db'}"
        meter = ReplayMeter([(0.0, {"gpu:0": 10.0})])
        with gt.track("private", db=url, meters=[meter], checkpoint_s=0.05) as run:
            time.sleep(0.15)
            db = tmp_path / "db" / "runs.db"
            for suffix in ("", "-wal", "-shm"):  # while open, WAL and SHM exist
                f = db.with_name(db.name + suffix)
                assert f.exists() and _mode(f) == 0o600, (suffix, oct(_mode(f)))
        lock = db.with_name(db.name + ".lock")
        assert not lock.exists() or _mode(lock) == 0o600

        blocker = tmp_path / "mnt"
        blocker.write_text("not a folder")
        with gt.track("spooled", db=f"sqlite:///{blocker}/x.db", meters=[meter],
                      checkpoint_s=0.05) as run:  # fmt: skip
            time.sleep(0.15)
        spool_files = list((gt_home / "spool").rglob("*.jsonl"))
        assert spool_files and all(_mode(p) == 0o600 for p in spool_files)
        for d in {gt_home, gt_home / "spool", *(p.parent for p in spool_files)}:
            assert _mode(d) == 0o700, (d, oct(_mode(d)))
        assert run.summary().status == "finished"
    finally:
        os.umask(old)
