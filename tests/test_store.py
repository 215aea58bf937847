"""The store on SQLite and PostgreSQL: migrations, schema checks, idempotent checkpoints, spool."""

from __future__ import annotations

import sqlite3

import pytest
from tests_helpers import checkpoint

from greentrack.errors import DatabaseURLError, SchemaOutdatedError, StoreUnavailableError
from greentrack.store import queries
from greentrack.store.checkpoint import Checkpoint
from greentrack.store.dbapi import PG_LIVENESS, connect, parse_url
from greentrack.store.models import SCHEMA_REVISION as MODELS_REVISION
from greentrack.store.schema import SCHEMA_REVISION, current_revision, migrations_dir, upgrade
from greentrack.store.spool import Spool
from greentrack.store.writer import StoreWriter


def test_schema_revision_is_the_migrations_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_REVISION
    assert MODELS_REVISION == SCHEMA_REVISION


def test_migrations_create_the_models_schema(store_url: str) -> None:
    """Upgrading an empty database gives exactly what the models describe (no diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from greentrack.store.models import Base

    assert upgrade(store_url) == SCHEMA_REVISION
    engine = create_engine(parse_url(store_url).sqlalchemy_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def _cp(run_id: str, seq: int, energy_j: float, status: str = "running", **extra) -> Checkpoint:
    return checkpoint(run_id, seq, energy_j, status, sample=True, **extra)


def test_checkpoints_are_idempotent_and_never_regress(store_url: str) -> None:
    rid = "ab" * 16
    writer = StoreWriter(store_url)
    writer.write(_cp(rid, 1, 100.0))
    writer.write(_cp(rid, 3, 300.0, status="finished"))
    writer.write(_cp(rid, 2, 200.0))  # a late replay of an older checkpoint
    writer.write(_cp(rid, 3, 300.0, status="finished"))  # and a duplicate
    writer.close()
    conn = queries.open_store(store_url)
    obj = queries.get_run(conn, "abab")
    samples = queries.run_samples(conn, rid)
    conn.close()
    assert obj["status"] == "finished"
    assert obj["energy_j"] == 300.0
    assert obj["components"][0]["energy_j"] == 300.0
    assert obj["duration_s"] == 3.0
    assert len(samples["t_s"]) == 3  # seq 1, 2, 3: each written once


def test_new_database_is_created_at_head_and_old_one_refused(sqlite_url: str) -> None:
    conn = queries.open_store(sqlite_url)
    assert current_revision(conn) == SCHEMA_REVISION
    conn.execute("UPDATE alembic_version SET version_num = '0000'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaOutdatedError, match="greentrack db upgrade"):
        queries.open_store(sqlite_url)
    with pytest.raises(SchemaOutdatedError):
        StoreWriter(sqlite_url).write(_cp("cd" * 16, 1, 1.0))


def test_upgrade_from_0001_keeps_the_data_and_widens_metric_steps(store_url: str) -> None:
    """A store made by greentrack 0.1.0 (revision 0001) is refused until upgraded, keeps its runs
    through `greentrack db upgrade`, and then holds steps past 2**31 (tokens seen as the step)."""
    from tests_store_old import write_0001_run

    assert upgrade(store_url, "0001") == "0001"
    conn = connect(store_url)  # what 0.1.0 wrote (its SQL, without the schema check)
    write_0001_run(conn, "01" * 16, 7.0, [("loss", 12, 0.25, 1.7e9)])
    conn.close()
    with pytest.raises(SchemaOutdatedError, match="greentrack db upgrade"):
        StoreWriter(store_url).write(_cp("ef" * 16, 1, 5.0))
    assert upgrade(store_url) == SCHEMA_REVISION == "0005"
    conn = queries.open_store(store_url)
    try:
        kept = queries.get_run(conn, "01" * 16)
    finally:
        conn.close()
    assert kept["energy_j"] == 7.0 and kept["metrics"] == {"loss": 0.25}
    big = 3_000_000_000
    cp = _cp("ef" * 16, 1, 5.0)
    cp.metrics = [{"key": "loss", "step": big, "value": 0.5, "t_s": 1.7e9}]
    StoreWriter(store_url).write(cp)
    conn = queries.open_store(store_url)
    try:
        rows = conn.query("SELECT step FROM metrics WHERE run_id = :r", {"r": "ef" * 16})
        assert rows[0]["step"] == big
    finally:
        conn.close()


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://u@h/db", "unsupported database URL scheme"),
        ("sqlite://", "in-memory"),
        ("sqlite:/x.db", "missing '//'"),
        ("postgresql+psycopg://u:secret@/db", "has no host"),
        ("postgresql://u@host:notaport/db", "port is not a number"),
        ("postgresql://u@host:5432", "names no database"),
    ],
)
def test_malformed_urls_are_one_line_errors(url: str, message: str) -> None:
    with pytest.raises(DatabaseURLError, match=message) as caught:
        parse_url(url)
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


def test_unwritable_sqlite_location_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseURLError, match="cannot create the database file"):
        connect(f"sqlite:///{blocker}/sub/db.sqlite")


def test_unreachable_postgres_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        connect("postgresql+psycopg://u:hunter22@127.0.0.1:1/db", timeout_s=1)
    assert "hunter22" not in str(caught.value)


@pytest.mark.postgres
def test_postgres_connections_notice_a_dead_peer(pg_url: str) -> None:
    """TCP keepalives and a send timeout are on (a silent partition fails in ~30 s, then the
    spool takes over), and a URL's own setting wins."""
    conn = connect(pg_url)
    params = conn.raw.info.get_parameters()
    conn.close()
    assert {k: params.get(k) for k in PG_LIVENESS} == {k: str(v) for k, v in PG_LIVENESS.items()}
    conn = connect(f"{pg_url}&keepalives_idle=60")
    assert conn.raw.info.get_parameters()["keepalives_idle"] == "60"
    conn.close()


def test_sqlite_is_wal_private_and_shared(sqlite_url: str) -> None:
    conn = queries.open_store(sqlite_url)
    path = conn.url.path
    conn.close()
    assert (path.stat().st_mode & 0o777) == 0o600
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_spool_replays_into_the_store(sqlite_url: str, tmp_path) -> None:
    spool = Spool(tmp_path / "spool")
    rid = "ef" * 16
    spool.append(_cp(rid, 1, 10.0))
    spool.append(
        _cp(
            rid,
            2,
            20.0,
            status="finished",
            metrics=[{"key": "acc", "step": 1, "value": 0.5, "t_s": 1.7e9}],
        )
    )
    path = spool.path(rid, 0)
    assert (path.stat().st_mode & 0o777) == 0o600
    with path.open("a") as f:
        f.write('{"torn": ')  # a crash mid-line must not block the rest
    assert spool.replay_all(StoreWriter(sqlite_url)) == 2
    assert spool.pending() == []
    conn = queries.open_store(sqlite_url)
    obj = queries.get_run(conn, rid)
    conn.close()
    assert obj["status"] == "finished" and obj["energy_j"] == 20.0
    assert obj["metrics"] == {"acc": 0.5}


@pytest.mark.parametrize("evil", ["x' OR '1'='1", "'; DROP TABLE runs; --", "%", "a\\b"])
def test_filters_are_bound_parameters(store_url: str, evil: str) -> None:
    writer = StoreWriter(store_url)
    writer.write(_cp("12" * 16, 1, 1.0, tags={"k": "v"}))
    writer.close()
    conn = queries.open_store(store_url)
    assert queries.list_runs(conn, project=evil) == []
    assert queries.list_runs(conn, tags=[(evil, evil)]) == []
    assert len(queries.list_runs(conn, tags=[("k", "v")])) == 1
    with pytest.raises(Exception, match="not a run id"):
        queries.resolve_run_id(conn, evil)
    assert len(queries.list_runs(conn)) == 1  # the table is still there
    conn.close()
