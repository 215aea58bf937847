"""Store operations behind ``greentrack sync`` and ``greentrack db``."""

from __future__ import annotations

from dataclasses import dataclass, field

from greentrack.config import Config
from greentrack.store.dbapi import Connection, StoreURL, connect, parse_url
from greentrack.store.schema import SCHEMA_REVISION, current_revision, integrity_problem, upgrade
from greentrack.store.spool import Spool
from greentrack.store.writer import StoreWriter

__all__ = ["DbState", "db_current", "db_upgrade", "sync"]


@dataclass(frozen=True)
class DbState:
    url: str
    revision: str | None
    head: str
    #: What is wrong with the database file itself (SQLite ``quick_check``), if anything.
    damage: str | None = None

    @property
    def at_head(self) -> bool:
        return self.revision == self.head and self.damage is None


def db_current(url: str) -> DbState:
    """The database's schema revision and the one this greentrack expects; for SQLite, also
    whether the file is sound (``PRAGMA quick_check``: a damaged file is never "up to date")."""
    import sqlite3

    parsed = parse_url(url)
    if parsed.dialect == "sqlite" and parsed.path is not None and parsed.path.is_file():
        conn = open_reader_raw(parsed)
    else:
        conn = connect(parsed)
    try:
        damage = integrity_problem(conn)
        try:
            revision = current_revision(conn)
        except sqlite3.DatabaseError as e:
            revision, damage = None, damage or str(e)
        return DbState(conn.url.display, revision, SCHEMA_REVISION, damage)
    finally:
        conn.close()


def open_reader_raw(parsed: StoreURL) -> Connection:
    """A SQLite file opened without a schema check: read-write where this user may write it,
    else read-only."""
    from greentrack.store.schema import _connect_read_only, _writable

    assert parsed.path is not None
    return connect(parsed) if _writable(parsed.path) else _connect_read_only(parsed)


def db_upgrade(url: str) -> DbState:
    """Migrate the database to head (creating it if new)."""
    upgrade(url)
    return db_current(url)


@dataclass(frozen=True)
class SyncResult:
    written: int
    files: int
    crashed: list[str]
    #: One line per spool file that was kept because it holds lines that were not written
    #: (a newer spool format, or lines that do not parse); ``greentrack sync`` then fails.
    kept: list[str] = field(default_factory=list)


def sync(config: Config, url: str | None = None) -> SyncResult:
    """Write every spooled checkpoint to the store, then mark dead runs ``crashed``."""
    from greentrack.store.queries import reconcile
    from greentrack.store.schema import open_store

    url = url or config.db_url
    spool = Spool.for_store(config.spool_dir, url)
    files = spool.pending()
    writer = StoreWriter(url)
    try:
        written = spool.replay_all(writer)
    finally:
        writer.close()
    conn = open_store(url)
    try:
        crashed = reconcile(conn)
    finally:
        conn.close()
    kept = list(spool.problems)
    named = " ".join(kept)
    for path in spool.unreadable():  # set aside by this or an earlier replay
        if str(path) not in named:
            kept.append(
                f"{path} holds line(s) greentrack cannot parse (set aside by an earlier replay; "
                "its readable checkpoints were written): look at it, then delete it"
            )
    return SyncResult(written, len(files), crashed, kept)
