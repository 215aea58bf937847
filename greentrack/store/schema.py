"""Schema version checks and Alembic migrations.

A new (empty) database is created at the head revision by running the migrations. An existing one
must be at :data:`~greentrack.store.models.SCHEMA_REVISION`: the store refuses to write to an older
schema and tells the user to run ``greentrack db upgrade``. The check itself is one cheap query
and does not import SQLAlchemy; only creating or upgrading does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from greentrack.errors import SchemaOutdatedError, StoreError
from greentrack.security import mask_url
from greentrack.store.dbapi import Connection, StoreURL, connect, parse_url

__all__ = [
    "SCHEMA_REVISION",
    "current_revision",
    "ensure_schema",
    "migrations_dir",
    "open_reader",
    "open_store",
    "upgrade",
]

SCHEMA_REVISION = "0005"  # kept equal to models.SCHEMA_REVISION and the migrations' head (tested)
_PG_LOCK_KEY = 0x67726E74  # "grnt": serialises concurrent first-time creation on PostgreSQL


def migrations_dir() -> Path:
    """The Alembic scripts: ``greentrack.migrations`` when installed, else ``migrations/``."""
    import importlib.util  # (only to create or upgrade a schema: not on a run's path)

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
    """Run the migrations up to ``revision``; returns the new revision. Safe to run concurrently.

    Raises:
        StoreUnavailableError: the database cannot be reached (one line).
        StoreError: the database refused a migration step (one line).
    """
    with _UPGRADE_LOCK:  # one thread at a time imports SQLAlchemy (a concurrent first import
        return _upgrade_locked(url, revision)  # can see its half-initialised modules)


_UPGRADE_LOCK = threading.RLock()


def _upgrade_locked(url: str, revision: str) -> str:
    from sqlalchemy.exc import DBAPIError

    parsed = parse_url(url)
    connect(parsed).close()  # one-line errors: creates the SQLite file privately (WAL), or
    # says why PostgreSQL cannot be reached, before SQLAlchemy gets a chance to
    try:
        _upgrade(parsed, revision)
    except DBAPIError as e:
        first = str(e.orig or e).strip().splitlines()[0] if str(e.orig or e).strip() else ""
        raise StoreError(
            f"cannot upgrade {parsed.display}: {type(e.orig or e).__name__}: {mask_url(first)}"
        ) from None
    conn = connect(parsed)
    try:
        return current_revision(conn) or ""
    finally:
        conn.close()


def _upgrade(parsed: StoreURL, revision: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

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


def _writable(path: Path) -> bool:
    """Whether this user can write the SQLite file and create its journal files beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _connect_read_only(url: StoreURL) -> Connection:
    """Open an existing SQLite file this user cannot write, for reading only.

    ``mode=ro`` first (it sees a live writer's committed transactions, where the WAL index can
    be shared); where SQLite cannot use the WAL there (a read-only directory or file system, no
    ``-shm``), ``immutable=1``: the file as it is on disk, without locking. Both refuse writes.
    """
    import sqlite3
    from urllib.parse import quote

    assert url.path is not None
    base = "file:" + quote(str(url.path))
    last: Exception | None = None
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        raw = None
        try:
            raw = sqlite3.connect(
                f"{base}?{flags}", uri=True, timeout=30.0, check_same_thread=False,
                isolation_level=None,
            )  # fmt: skip
            raw.execute("SELECT count(*) FROM sqlite_master").fetchone()
            raw.isolation_level = "DEFERRED"
            return Connection(raw, url)
        except sqlite3.Error as e:
            last = e
            if raw is not None:
                raw.close()
    raise StoreError(f"cannot read the SQLite database {url.path} (read-only here): {last}")


def open_reader(url: str) -> Connection:
    """Connect for reading (``runs``, ``show``, ``report``, exports): like :func:`open_store`,
    except that an existing SQLite file this user cannot write (an archive, a colleague's store,
    a read-only file system) is opened read-only instead of refused. Only writers need write
    access; such a store must already be at this greentrack's schema (it cannot be upgraded
    here)."""
    parsed = parse_url(url)
    if parsed.dialect != "sqlite" or parsed.path is None or not parsed.path.is_file():
        return open_store(url)
    if _writable(parsed.path):
        return open_store(url)
    conn = _connect_read_only(parsed)
    try:
        rev = current_revision(conn)
        if rev != SCHEMA_REVISION:
            have = f"at schema {rev}" if rev else "not a greentrack store (no schema version)"
            raise SchemaOutdatedError(
                f"the read-only store {parsed.path} is {have}; this greentrack reads "
                f"{SCHEMA_REVISION}: ask its owner to run `greentrack db upgrade`, or upgrade a "
                "copy (cp it, then greentrack db upgrade --db COPY)"
            )
    except BaseException:
        conn.close()
        raise
    return conn


def integrity_problem(conn: Connection) -> str | None:
    """For SQLite, the first line of ``PRAGMA quick_check`` when it is not ``ok`` (a damaged
    file); None when the file is sound, and for PostgreSQL. Reads the whole file (O(size))."""
    import sqlite3

    if conn.dialect != "sqlite":
        return None
    try:
        rows = conn.raw.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as e:
        return " ".join(str(e).split())
    first = " ".join(str(rows[0][0]).split()) if rows else "no answer"
    return None if first == "ok" else first


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
