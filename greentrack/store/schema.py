"""Schema version checks and Alembic migrations.

A new (empty) database is created at the head revision by running the migrations. An existing one
must be at :data:`~greentrack.store.models.SCHEMA_REVISION`: the store refuses to write to an older
schema and tells the user to run ``greentrack db upgrade``. The check itself is one cheap query
and does not import SQLAlchemy; only creating or upgrading does.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

from greentrack.errors import SchemaOutdatedError, StoreError
from greentrack.store.dbapi import Connection, StoreURL, connect, parse_url

__all__ = [
    "SCHEMA_REVISION",
    "current_revision",
    "ensure_schema",
    "migrations_dir",
    "open_store",
    "upgrade",
]

SCHEMA_REVISION = "0002"  # kept equal to models.SCHEMA_REVISION and the migrations' head (tested)
_PG_LOCK_KEY = 0x67726E74  # "grnt": serialises concurrent first-time creation on PostgreSQL


def migrations_dir() -> Path:
    """The Alembic scripts: ``greentrack.migrations`` when installed, else ``migrations/``."""
    try:
        spec = importlib.util.find_spec("greentrack.migrations")
    except ModuleNotFoundError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "env.py").is_file():
            return Path(location)
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise StoreError("greentrack's migrations are missing from this installation; reinstall it")


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision, or None when it has no greentrack schema."""
    if "alembic_version" not in conn.table_names():
        return None
    return conn.scalar("SELECT version_num FROM alembic_version")


@contextlib.contextmanager
def _creation_lock(url: StoreURL) -> Iterator[None]:
    """Only one process creates or upgrades a schema at a time."""
    if url.dialect == "sqlite" and url.path is not None:
        lock_path = url.path.with_name(url.path.name + ".lock")
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    else:
        yield


def upgrade(url: str, revision: str = "head") -> str:
    """Run the migrations up to ``revision``; returns the new revision. Safe to run concurrently."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    parsed = parse_url(url)
    if parsed.dialect == "sqlite":
        connect(parsed).close()  # creates the file privately, sets WAL
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", parsed.sqlalchemy_url.replace("%", "%%"))
    engine = create_engine(parsed.sqlalchemy_url, poolclass=NullPool)
    with _creation_lock(parsed), engine.begin() as sa_conn:
        if parsed.dialect == "postgresql":
            sa_conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        cfg.attributes["connection"] = sa_conn
        command.upgrade(cfg, revision)
    engine.dispose()
    conn = connect(parsed)
    try:
        return current_revision(conn) or ""
    finally:
        conn.close()


def open_store(url: str) -> Connection:
    """Connect and check the schema (a new database is created at head)."""
    conn = connect(url)
    try:
        ensure_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def ensure_schema(conn: Connection) -> None:
    """Create a new database at head, accept one at head, refuse an older or newer one."""
    rev = current_revision(conn)
    if rev == SCHEMA_REVISION:
        return
    if rev is None:
        tables = conn.table_names()
        if tables & {"runs", "samples"}:
            raise SchemaOutdatedError(
                f"{conn.url.display} has greentrack tables but no schema version; "
                "run `greentrack db upgrade`"
            )
        conn.rollback()
        upgrade(conn.url.sqlalchemy_url)
        return
    if rev < SCHEMA_REVISION:
        raise SchemaOutdatedError(
            f"the database {conn.url.display} is at schema {rev}, this greentrack needs "
            f"{SCHEMA_REVISION}: run `greentrack db upgrade`"
        )
    raise SchemaOutdatedError(
        f"the database {conn.url.display} is at schema {rev}, newer than this greentrack "
        f"({SCHEMA_REVISION}): upgrade greentrack (pip install -U greentrack)"
    )
