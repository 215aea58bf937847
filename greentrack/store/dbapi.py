"""The store's connection layer: portable SQL over the plain DB-API drivers.

The schema belongs to SQLAlchemy (``models.py``) and Alembic (``migrations/``). Reading and writing
runs goes through this thin layer instead, because importing SQLAlchemy costs ~250 ms — more than
greentrack's whole start-up budget — and the tracker must cost the training loop nothing. The SQL
here is the common subset of SQLite (>= 3.24) and PostgreSQL, with ``:name`` parameters (always
bound, never interpolated). ``tests/test_store.py`` checks it against the models on both backends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from greentrack.errors import DatabaseURLError, StoreUnavailableError
from greentrack.security import mask_url

__all__ = ["Connection", "StoreURL", "connect", "parse_url"]

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


class StoreURL(NamedTuple):
    """A parsed store location (immutable).

    Attributes:
        dialect: ``sqlite`` or ``postgresql``.
        sqlalchemy_url: the URL for SQLAlchemy / Alembic.
        path: the SQLite file (None for PostgreSQL or in-memory).
        conninfo: the libpq connection string (PostgreSQL only).
    """

    dialect: str
    sqlalchemy_url: str
    path: Path | None = None
    conninfo: str | None = None

    @property
    def display(self) -> str:
        """The URL with any password masked."""
        return mask_url(self.sqlalchemy_url)


def parse_url(url: str) -> StoreURL:
    """Parse a SQLAlchemy-style URL or a plain SQLite file path.

    Accepts ``sqlite:///relative.db``, ``sqlite:////abs/path.db``, a bare path, and
    ``postgresql://``, ``postgresql+psycopg://`` or ``postgres://`` URLs.
    """
    url = url.strip()
    if not url:
        raise DatabaseURLError("empty database URL; use sqlite:///path.db or postgresql+psycopg://")
    if "://" not in url:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+]*:(?!\\)", url) and len(url.split(":", 1)[0]) > 1:
            raise DatabaseURLError(
                f"malformed database URL {mask_url(url)!r}: missing '//' after the scheme; use "
                "sqlite:///path.db or postgresql+psycopg://user@host/db"
            )
        path = Path(url).expanduser().resolve()
        return StoreURL("sqlite", f"sqlite:///{path}", path=path)
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "sqlite":
        if rest in ("", "/", "/:memory:"):
            raise DatabaseURLError(
                "in-memory SQLite cannot hold runs across processes; give a file: sqlite:///runs.db"
            )
        if not rest.startswith("/"):
            raise DatabaseURLError(
                f"malformed SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db"
            )
        path = Path(rest[1:]).expanduser().resolve()
        return StoreURL("sqlite", f"sqlite:///{path}", path=path)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parts = urlsplit("postgresql://" + rest)
        try:
            _ = parts.port
        except ValueError:
            raise DatabaseURLError(
                f"malformed PostgreSQL URL {mask_url(url)!r}: the port is not a number"
            ) from None
        if not parts.hostname and "host=" not in parts.query:
            raise DatabaseURLError(
                f"PostgreSQL URL {mask_url(url)!r} has no host: use "
                "postgresql+psycopg://user@host:5432/dbname"
            )
        if not parts.path.strip("/"):
            raise DatabaseURLError(
                f"PostgreSQL URL {mask_url(url)!r} names no database: add /dbname at the end"
            )
        return StoreURL(
            "postgresql",
            "postgresql+psycopg://" + rest,
            conninfo="postgresql://" + rest,
        )
    raise DatabaseURLError(
        f"unsupported database URL scheme {scheme!r} in {mask_url(url)!r}: use "
        "sqlite:///path.db or postgresql+psycopg://user@host/db"
    )


class Connection:
    """A DB-API connection with ``:name`` parameters on both backends, and type adapters."""

    def __init__(self, raw: Any, url: StoreURL) -> None:
        self.raw = raw
        self.url = url
        self.dialect = url.dialect
        self._lock = threading.RLock()
        self._tx_depth = 0

    # -- parameters and types ------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))

    def _value(self, v: Any) -> Any:
        if isinstance(v, datetime):
            return v.strftime(_SQLITE_TIME) if self.dialect == "sqlite" else v
        if isinstance(v, (dict, list)):
            return json.dumps(v, default=str)
        return v

    def _params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: self._value(v) for k, v in (params or {}).items()}

    # -- execution -----------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic transaction (committed at the end, rolled back on any exception)."""
        with self._lock:
            self._tx_depth += 1
            try:
                yield
            except BaseException:
                self._tx_depth = 0
                self.rollback()
                raise
            self._tx_depth -= 1
            if self._tx_depth == 0:
                self.raw.commit()

    def _end_read(self) -> None:
        # Outside a transaction, a read must not leave PostgreSQL "idle in transaction"
        # (that would hold locks against migrations and other writers).
        if self._tx_depth == 0 and self.dialect == "postgresql":
            self.raw.commit()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        with self._lock:
            cur = self.raw.cursor()
            cur.execute(self._sql(sql), self._params(params))
            return cur

    def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        with self._lock:
            cur = self.raw.cursor()
            cur.executemany(self._sql(sql), [self._params(r) for r in rows])

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT; rows as dicts."""
        with self._lock:
            cur = self.execute(sql, params)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            self._end_read()
            return rows

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        with self._lock:
            row = self.execute(sql, params).fetchone()
            self._end_read()
            return None if row is None else row[0]

    def commit(self) -> None:
        with self._lock:
            self.raw.commit()

    def rollback(self) -> None:
        with self._lock:
            try:
                self.raw.rollback()
            except Exception:
                pass

    def close(self) -> None:
        """Close; when another thread is stuck in a call on this connection (a sick store) for
        more than a second, shut its socket down instead (:meth:`abort`): exit never waits."""
        if not self._lock.acquire(timeout=1.0):
            self.abort()
            return
        try:
            self.raw.close()
        except Exception:
            pass
        finally:
            self._lock.release()

    def abort(self) -> None:
        """From any thread, without the lock: shut the PostgreSQL socket down, so that a call
        blocked on a server that stopped answering (a frozen network path that still
        acknowledges) fails at once; the caller that was blocked discards the connection."""
        if self.dialect != "postgresql":
            return
        import socket

        try:
            fd = int(self.raw.pgconn.socket)
        except Exception:  # closed already
            return
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            s.close()

    def table_names(self) -> set[str]:
        if self.dialect == "sqlite":
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self.query(
                "SELECT table_name AS name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        return {r["name"] for r in rows}

    def insert_sql(
        self,
        table: str,
        columns: Iterable[str],
        conflict: Sequence[str],
        update: Iterable[str] = (),
    ) -> str:
        """``INSERT ... ON CONFLICT (conflict) DO NOTHING | DO UPDATE SET col = excluded.col``."""
        cols = list(columns)
        head = (
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) "
            f"ON CONFLICT ({', '.join(conflict)}) "
        )
        upd = list(update)
        if not upd:
            return head + "DO NOTHING"
        return head + "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in upd)


def decode_json(value: Any) -> Any:
    """JSON column value -> Python (SQLite returns text, psycopg returns parsed objects)."""
    if value is None or isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def decode_time(value: Any) -> datetime | None:
    """DateTime column value -> naive UTC datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _ensure_private_file(path: Path) -> None:
    """Create the SQLite file (and its folder) readable by the user only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    except OSError as e:
        raise DatabaseURLError(
            f"cannot create the database file {path} ({e.strerror}); choose a writable location "
            "with --db or GREENTRACK_DB"
        ) from None
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise DatabaseURLError(
            f"the database file {path} is not writable by this user; fix its permissions or "
            "choose another with --db or GREENTRACK_DB"
        )


#: libpq settings that notice a dead server or a silent network partition within about 30 s
#: instead of the OS's default of two hours: TCP keepalive probes while waiting for an answer
#: (10 s idle, then 3 probes 5 s apart) and a limit on unacknowledged sends (``tcp_user_timeout``,
#: ms). Without them a cut cable blocks the checkpoint thread, and the spool never takes over.
#: A URL that sets any of them (``?keepalives_idle=60``) keeps its own value.
PG_LIVENESS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


#: Server-side deadlines greentrack sets on its own PostgreSQL sessions (libpq ``options``, no
#: extra round trip), so that no statement of ours waits without end: a statement runs at most
#: 30 s, waits for a lock at most 5 s (a session orphaned by a network cut mid-transaction holds
#: the run row's lock until the server notices), and a session of ours left idle inside a
#: transaction (that orphan) is ended by the server after 10 s, releasing its locks. A URL that
#: sets any of them (``?options=-c%20lock_timeout%3D20s``) keeps its own value.
PG_DEADLINES = {
    "statement_timeout": "30s",
    "lock_timeout": "5s",
    "idle_in_transaction_session_timeout": "10s",
}
PG_CONNECT_TIMEOUT_S = 5
"""Longest wait for a PostgreSQL connection to open (libpq ``connect_timeout``). Units: s."""
SQLITE_BUSY_TIMEOUT_S = 30.0
"""Longest wait of a SQLite statement for another process's write lock. Units: s."""


def _pg_options(given: Mapping[str, Any]) -> str:
    """The libpq ``options`` value: the URL's own, plus each :data:`PG_DEADLINES` setting it
    does not set itself."""
    own = str(given.get("options") or "")
    named = set(re.findall(r"(?:-c\s*|--)([a-z_]+)\s*=", own))
    extra = [f"-c {k}={v}" for k, v in PG_DEADLINES.items() if k not in named]
    return " ".join([own, *extra]).strip()


def connect(
    url: str | StoreURL, *, timeout_s: float = SQLITE_BUSY_TIMEOUT_S, create: bool = True
) -> Connection:
    """Open a connection. SQLite gets WAL mode and a busy timeout (``timeout_s``) so processes
    can share it; PostgreSQL gets liveness settings (:data:`PG_LIVENESS`), server-side
    deadlines (:data:`PG_DEADLINES`) and a connect timeout of at most
    :data:`PG_CONNECT_TIMEOUT_S`; values the URL sets win.

    Raises:
        DatabaseURLError: malformed URL or unusable file location.
        StoreUnavailableError: the server cannot be reached (connection refused, auth, ...).
    """
    parsed = url if isinstance(url, StoreURL) else parse_url(url)
    if parsed.dialect == "sqlite":
        assert parsed.path is not None
        if create:
            _ensure_private_file(parsed.path)
        elif not parsed.path.exists():
            raise DatabaseURLError(f"no greentrack database at {parsed.path}")
        try:
            raw = sqlite3.connect(
                str(parsed.path), timeout=timeout_s, check_same_thread=False, isolation_level=None
            )
            raw.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            raw.execute("PRAGMA journal_mode = WAL")
            raw.execute("PRAGMA synchronous = NORMAL")
            raw.execute("PRAGMA foreign_keys = ON")
            raw.isolation_level = "DEFERRED"
        except sqlite3.Error as e:
            raise StoreUnavailableError(f"cannot open SQLite database {parsed.path}: {e}") from None
        return Connection(raw, parsed)
    try:
        import psycopg
    except ImportError:
        raise DatabaseURLError(
            "PostgreSQL needs the psycopg driver: pip install 'greentrack[postgres]'"
        ) from None
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(parsed.conninfo)
    settings: dict[str, Any] = {k: v for k, v in PG_LIVENESS.items() if k not in given}
    settings["options"] = _pg_options(given)  # the URL's own win
    if "connect_timeout" not in given:
        settings["connect_timeout"] = max(1, min(PG_CONNECT_TIMEOUT_S, int(timeout_s)))
    try:
        raw = psycopg.connect(parsed.conninfo, **settings)
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StoreUnavailableError(
            f"cannot connect to {parsed.display}: {mask_url(unquote(first))}"
        ) from None
    return Connection(raw, parsed)


def data_errors() -> tuple[type[BaseException], ...]:
    """The driver exceptions that mean 'the database refuses these values' (not 'it is down')."""
    errors: list[type[BaseException]] = [sqlite3.IntegrityError, sqlite3.DataError]
    try:
        import psycopg

        errors += [psycopg.IntegrityError, psycopg.DataError]
    except ImportError:
        pass
    return tuple(errors)


def driver_errors() -> tuple[type[BaseException], ...]:
    """The driver exceptions that mean 'the store failed' (as opposed to our own bugs)."""
    errors: list[type[BaseException]] = [sqlite3.Error, OSError]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:
        pass
    return tuple(errors)
