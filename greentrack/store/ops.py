"""Store operations behind ``greentrack sync`` and ``greentrack db``."""

from __future__ import annotations

from dataclasses import dataclass

from greentrack.config import Config
from greentrack.store.dbapi import connect
from greentrack.store.schema import SCHEMA_REVISION, current_revision, upgrade
from greentrack.store.writer import Spool, StoreWriter

__all__ = ["DbState", "db_current", "db_upgrade", "sync"]


@dataclass(frozen=True)
class DbState:
    url: str
    revision: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.revision == self.head


def db_current(url: str) -> DbState:
    """The database's schema revision and the one this greentrack expects."""
    conn = connect(url)
    try:
        return DbState(conn.url.display, current_revision(conn), SCHEMA_REVISION)
    finally:
        conn.close()


def db_upgrade(url: str) -> DbState:
    """Migrate the database to head (creating it if new)."""
    upgrade(url)
    return db_current(url)


@dataclass(frozen=True)
class SyncResult:
    written: int
    files: int
    crashed: list[str]


def sync(config: Config, url: str | None = None) -> SyncResult:
    """Write every spooled checkpoint to the store, then mark dead runs ``crashed``."""
    from greentrack.store.queries import open_store, reconcile

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
    return SyncResult(written, len(files), crashed)
