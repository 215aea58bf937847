"""Writing checkpoints to the store, and spooling them to disk when the store is away.

A :class:`Checkpoint` is everything new since the previous one (samples, metrics, events, phases)
plus the latest cumulative state (components, run fields). Every write is idempotent — rows have
natural unique keys and ``ON CONFLICT`` clauses, run fields are guarded by a sequence number — so a
checkpoint can be replayed from the spool any number of times, in any order, without double
counting or regressing a run.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from greentrack.errors import StoreError, StoreRejectedError, StoreUnavailableError
from greentrack.store.dbapi import Connection, data_errors, driver_errors
from greentrack.store.schema import open_store

log = logging.getLogger("greentrack")

__all__ = ["SPOOL_FORMAT", "Checkpoint", "Spool", "SpoolFormatError", "StoreWriter", "metric_id"]


def metric_id(run_id: str, key: str, step: int | None, t_s: float) -> str:
    """The deterministic primary key of a metric row (schema 0003): the first 32 hex digits of
    the SHA-256 of ``[run_id, key, step, t_s]`` as JSON (ASCII, step an int or null, t_s a float
    in its shortest round-trip form). Computed from the row itself, so a spool line written by
    any version replays onto the same key, and a metric without a step conflicts like any other.
    """
    text = json.dumps([run_id, key, None if step is None else int(step), float(t_s)])
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


def _metric_value(value: Any) -> float | None:
    """A metric value as stored: NaN -> None (NULL); ±inf and finite floats as they are."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


_RUN_INSERT = (
    "id",
    "project",
    "name",
    "status",
    "started_at",
    "heartbeat_at",
    "energy_j",
    "pue",
    "region",
    "region_origin",
    "host",
    "pid",
    "world_size",
    "checkpoint_s",
    "checkpoint_seq",
    "meta",
)
_RUN_UPDATE = (  # written by the run's owner (rank 0); whoever inserted the row first
    "started_at",
    "host",
    "pid",
    "status",
    "ended_at",
    "heartbeat_at",
    "duration_s",
    "pue",
    "region",
    "region_origin",
    "co2e_g",
    "co2e_g_annual",
    "intensity_source",
    "intensity_series",
    "world_size",
    "meta",
    "error",
    "flops",
    "plan",
    "forecast",
)


@dataclass
class Checkpoint:
    """A batch for the store. Lists hold only rows new since the last checkpoint.

    ``run`` holds the run row's latest fields (times as naive UTC datetimes); ``components``
    the latest cumulative energy per device of this process.
    """

    run_id: str
    rank: int
    seq: int
    run: dict[str, Any] = field(default_factory=dict)
    owner: bool = True  # whether this process may update the run row (rank 0)
    components: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: phase path -> g CO2e per joule for this rank's rows of that path still without CO2e (the
    #: occurrences past those accounted one by one; see ``tracker._SPANS_MAX``)
    phase_fill: dict[str, float] = field(default_factory=dict)

    def merge(self, newer: Checkpoint) -> Checkpoint:
        """One checkpoint equivalent to writing ``self`` then ``newer``."""
        phases = {p["id"]: p for p in self.phases}
        phases.update({p["id"]: p for p in newer.phases})
        return Checkpoint(
            run_id=self.run_id,
            rank=self.rank,
            seq=max(self.seq, newer.seq),
            run={**self.run, **newer.run},
            owner=self.owner,
            components=newer.components or self.components,
            samples=self.samples + newer.samples,
            phases=list(phases.values()),
            metrics=self.metrics + newer.metrics,
            events=self.events + newer.events,
            params={**self.params, **newer.params},
            tags={**self.tags, **newer.tags},
            phase_fill={**self.phase_fill, **newer.phase_fill},
        )

    @classmethod
    def combine(cls, cps: Sequence[Checkpoint]) -> Checkpoint:
        """One checkpoint equivalent to writing ``cps`` in order (like chained :meth:`merge`,
        in linear time). ``cps`` must be non-empty and of one run and rank."""
        first, last = cps[0], cps[-1]
        run: dict[str, Any] = {}
        phases: dict[str, dict[str, Any]] = {}
        params: dict[str, str] = {}
        tags: dict[str, str] = {}
        components: list[dict[str, Any]] = []
        fill: dict[str, float] = {}
        for cp in cps:
            fill.update(cp.phase_fill)
            run.update(cp.run)
            phases.update({p["id"]: p for p in cp.phases})
            params.update(cp.params)
            tags.update(cp.tags)
            components = cp.components or components
        return cls(
            run_id=first.run_id,
            rank=first.rank,
            seq=max(cp.seq for cp in cps),
            run=run,
            owner=last.owner,
            components=components,
            samples=[x for cp in cps for x in cp.samples],
            phases=list(phases.values()),
            metrics=[x for cp in cps for x in cp.metrics],
            events=[x for cp in cps for x in cp.events],
            params=params,
            tags=tags,
            phase_fill=fill,
        )

    # -- spool format: one JSON object per line ---------------------------------------------
    def split_user_data(self) -> tuple[Checkpoint, Checkpoint | None]:
        """``(this checkpoint without the user's metrics, params and tags, a checkpoint of only
        those)``; the second is None when there are none. Energy, samples and phases stay in the
        first: they are what a store that refuses the user's values must still get."""
        if not (self.metrics or self.params or self.tags):
            return self, None
        core = dataclasses.replace(self, metrics=[], params={}, tags={})
        user = Checkpoint(self.run_id, self.rank, self.seq, owner=False, metrics=self.metrics,
                          params=self.params, tags=self.tags)  # fmt: skip
        return core, user

    def to_json(self) -> str:
        """One spool line: the checkpoint's fields and ``"v"``, the spool format version."""
        data = {"v": SPOOL_FORMAT, **asdict(self)}
        return json.dumps(data, default=_encode, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Checkpoint:
        """Parse one spool line (a line without ``"v"`` is format 1, greentrack <= 0.2).

        Raises:
            SpoolFormatError: the line was written by a newer greentrack.
            ValueError, KeyError, TypeError: the line is not a checkpoint (torn, garbled).
        """
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = data.pop("v", 1)
        if not isinstance(version, int) or version > SPOOL_FORMAT:
            raise SpoolFormatError(version)
        for key in ("started_at", "ended_at", "heartbeat_at"):
            if data["run"].get(key):
                data["run"][key] = datetime.fromisoformat(data["run"][key])
        for p in data["phases"]:
            for key in ("started_at", "ended_at"):
                if p.get(key):
                    p[key] = datetime.fromisoformat(p[key])
        return cls(**data)


#: The spool line format this greentrack writes and the newest it reads. 1: no "v" field;
#: 2: "v" field, metrics and components may carry "note"/"method" (schema 0003).
SPOOL_FORMAT = 2


class SpoolFormatError(ValueError):
    """A spool line written by a newer greentrack (its format version is ``version``)."""

    def __init__(self, version: Any) -> None:
        super().__init__(f"spool format {version!r}")
        self.version = version


def _encode(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


_SHARED: OrderedDict[str, tuple[int, Connection]] = OrderedDict()
_SHARED_LOCK = threading.Lock()
_SHARED_MAX = 8


def _shared_connection(url: str) -> Connection:
    """One connection per store and process, kept open between runs.

    Closing the last connection to a WAL-mode SQLite file checkpoints the WAL and syncs the
    file (~20 ms), and a PostgreSQL connection takes a round trip or three to open; runs in the
    same process therefore share one. Its lock serialises their transactions. A forked child
    never uses its parent's connection.
    """
    with _SHARED_LOCK:
        entry = _SHARED.get(url)
        if entry is not None and entry[0] == os.getpid():
            _SHARED.move_to_end(url)
            return entry[1]
        conn = open_store(url)
        _SHARED[url] = (os.getpid(), conn)
        while len(_SHARED) > _SHARED_MAX:
            _, (pid, old) = _SHARED.popitem(last=False)
            if pid == os.getpid():
                old.close()
        return conn


def _drop_shared(url: str, conn: Connection) -> None:
    with _SHARED_LOCK:
        entry = _SHARED.get(url)
        if entry is not None and entry[1] is conn:
            del _SHARED[url]
    conn.close()


@atexit.register
def _close_shared() -> None:
    with _SHARED_LOCK:
        for pid, conn in _SHARED.values():
            if pid == os.getpid():
                conn.close()
        _SHARED.clear()


class StoreWriter:
    """Writes checkpoints through one lazily opened connection; reconnects after failures.

    Args:
        url: the store.
        shared: use the process-wide connection of this store (the tracker does); ``close()``
            then leaves it open for the next run.
    """

    def __init__(self, url: str, *, shared: bool = False) -> None:
        self.url = url
        self.shared = shared
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = _shared_connection(self.url) if self.shared else open_store(self.url)
        return self._conn

    def _discard(self) -> None:
        """Forget a connection that failed (closing it, also when shared)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if self.shared:
                _drop_shared(self.url, conn)
            else:
                conn.close()

    def open(self) -> None:
        """Connect and check the schema now (raises StoreError subclasses)."""
        try:
            self._connection()
        except driver_errors() as e:
            raise StoreUnavailableError(f"store unavailable: {type(e).__name__}: {e}") from e

    def abort(self) -> None:
        """From any thread: make a write blocked on a store that stopped answering fail at once
        (:meth:`Connection.abort`); that write then discards the connection."""
        conn = self._conn
        if conn is not None:
            conn.abort()

    def close(self) -> None:
        if self._conn is not None:
            if not self.shared:
                self._conn.close()
            self._conn = None

    def write(self, cp: Checkpoint) -> str | None:
        """Write one checkpoint in one transaction.

        When the database refuses the values of the checkpoint (a data or integrity error, which
        no retry can cure), it is written again without the user's metrics, params and tags, so
        that the energy still lands; when even that is refused (the user's text in the run row,
        a phase or an event: a NUL byte on PostgreSQL, a lone surrogate anywhere), once more with
        that text escaped as the call sites escape free text (NUL -> U+FFFD, a lone surrogate ->
        ``\\udXXX``). The reason is returned and the
        caller keeps the left-out part (:meth:`Spool.reject`). Returns None when everything was
        written.

        Raises:
            StoreUnavailableError: the database failed (the caller spools the checkpoint).
            StoreRejectedError: the database refuses even the checkpoint's energy (the caller
                keeps it aside instead of retrying it forever).
            StoreError: the schema is wrong (SchemaOutdatedError) or the URL is unusable.
        """
        try:
            self._write_once(cp)
            return None
        except StoreRejectedError as refused:
            core, user = cp.split_user_data()
            if user is not None:
                try:
                    self._write_once(core)
                    return str(refused)
                except StoreRejectedError:
                    pass
            clean = _storable_checkpoint(core)
            if clean == core:
                raise refused from None
            try:
                self._write_once(clean)
            except StoreRejectedError:
                raise refused from None
            return f"{refused} (the run's own text was stored escaped)"

    def _write_once(self, cp: Checkpoint) -> None:
        try:
            conn = self._connection()
            with conn.transaction():
                _write(conn, cp)
        except StoreError:
            self._discard()
            raise
        except data_errors() as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise StoreRejectedError(
                f"the store refused the data: {type(e).__name__}: {first}"
            ) from e
        except driver_errors() as e:
            self._discard()
            raise StoreUnavailableError(f"store unavailable: {type(e).__name__}: {e}") from e
        except (ValueError, TypeError, OverflowError) as e:  # a value the driver cannot bind
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise StoreRejectedError(
                f"the store refused the data: {type(e).__name__}: {first}"
            ) from e


def _storable_checkpoint(cp: Checkpoint) -> Checkpoint:
    """``cp`` with every string made storable (:func:`greentrack.security.storable`: NUL ->
    U+FFFD, a lone surrogate -> its ``\\udXXX`` escape), the way the call sites escape free
    text: for checkpoints that did not pass them (spool lines of older versions)."""
    from greentrack.security import storable_tree

    return dataclasses.replace(
        cp, **{f.name: storable_tree(getattr(cp, f.name)) for f in dataclasses.fields(cp)}
    )


def _write(conn: Connection, cp: Checkpoint) -> None:
    rid = cp.run_id
    if cp.run:
        row = {k: cp.run.get(k) for k in _RUN_INSERT}
        row.update(id=rid, checkpoint_seq=0)
        row["energy_j"] = row["energy_j"] or 0.0
        row["pue"] = row["pue"] or 1.0
        row["world_size"] = row["world_size"] or 1
        row["checkpoint_s"] = row["checkpoint_s"] or 10.0
        conn.execute(conn.insert_sql("runs", _RUN_INSERT, ["id"]), row)
    if cp.params:
        conn.executemany(
            conn.insert_sql("params", ["run_id", "key", "value"], ["run_id", "key"], ["value"]),
            [{"run_id": rid, "key": k, "value": str(v)} for k, v in cp.params.items()],
        )
    if cp.tags:
        conn.executemany(
            conn.insert_sql("tags", ["run_id", "key", "value"], ["run_id", "key"], ["value"]),
            [{"run_id": rid, "key": k, "value": str(v)} for k, v in cp.tags.items()],
        )
    if cp.components:
        # Lock the run row first: concurrent ranks then sum each other's committed components
        # (PostgreSQL, READ COMMITTED); SQLite serialises writers anyway.
        conn.execute("UPDATE runs SET energy_j = energy_j WHERE id = :id", {"id": rid})
        cols = [
            "run_id",
            "rank",
            "host",
            "component",
            "device",
            "energy_j",
            "method",
            "model",
            "note",
            "seq",
        ]
        sql = (
            conn.insert_sql(
                "components",
                cols,
                ["run_id", "rank", "device"],
                ["energy_j", "method", "model", "note", "host", "seq"],
            )
            + " WHERE components.seq <= excluded.seq"
        )
        conn.executemany(
            sql,
            [
                {**{c: comp.get(c) for c in cols}, "run_id": rid, "rank": cp.rank, "seq": cp.seq}
                for comp in cp.components
            ],
        )
    if cp.samples:
        cols = ["run_id", "rank", "device", "component", "t_s", "energy_j", "power_w"]
        conn.executemany(
            conn.insert_sql("samples", cols, ["run_id", "rank", "device", "t_s"]),
            [{**s, "run_id": rid, "rank": cp.rank} for s in cp.samples],
        )
    if cp.metrics:
        cols = ["id", "run_id", "key", "step", "value", "t_s"]
        conn.executemany(
            conn.insert_sql("metrics", cols, ["id"]),
            [
                {
                    "id": metric_id(rid, m["key"], m.get("step"), m["t_s"]),
                    "run_id": rid,
                    "key": m["key"],
                    "step": m.get("step"),
                    "value": _metric_value(m.get("value")),
                    "t_s": m["t_s"],
                }
                for m in cp.metrics
            ],
        )
    if cp.events:
        cols = ["id", "run_id", "rank", "t_s", "level", "source", "message"]
        conn.executemany(
            conn.insert_sql("events", cols, ["id"]),
            [{**e, "run_id": rid, "rank": cp.rank} for e in cp.events],
        )
    if cp.phases:
        cols = [
            "id",
            "run_id",
            "rank",
            "name",
            "path",
            "depth",
            "started_at",
            "ended_at",
            "t0_s",
            "t1_s",
            "duration_s",
            "energy_j",
            "components",
            "co2e_g",
            "method",
        ]
        conn.executemany(
            conn.insert_sql(
                "phases",
                cols,
                ["id"],
                ["ended_at", "t1_s", "duration_s", "energy_j", "components", "co2e_g", "method"],
            ),
            [{**{c: p.get(c) for c in cols}, "run_id": rid, "rank": cp.rank} for p in cp.phases],
        )
    for path, g_per_j in cp.phase_fill.items():  # idempotent: only rows without CO2e
        conn.execute(
            "UPDATE phases SET co2e_g = energy_j * :g WHERE run_id = :id AND rank = :rank "
            "AND path = :path AND co2e_g IS NULL",
            {"g": g_per_j, "id": rid, "rank": cp.rank, "path": path},
        )
    if cp.owner and cp.run:
        fields = [k for k in _RUN_UPDATE if k in cp.run]
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        conn.execute(
            f"UPDATE runs SET {sets}{', ' if sets else ''}checkpoint_seq = :seq "
            "WHERE id = :id AND checkpoint_seq < :seq",
            {**{k: cp.run[k] for k in fields}, "seq": cp.seq, "id": rid},
        )
    elif cp.run.get("heartbeat_at"):
        conn.execute(
            "UPDATE runs SET heartbeat_at = :hb WHERE id = :id AND "
            "(heartbeat_at IS NULL OR heartbeat_at < :hb)",
            {"hb": cp.run["heartbeat_at"], "id": rid},
        )
    if cp.components:
        conn.execute(
            "UPDATE runs SET energy_j = (SELECT COALESCE(SUM(energy_j), 0) FROM components "
            "WHERE components.run_id = :id) WHERE id = :id",
            {"id": rid},
        )


def _private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents readable by the user only (whatever the umask)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)


def _spool_salt(path: Path) -> str:
    """The per-home random salt of spool folder names (created once, readable by the user only);
    ``""`` where the home cannot be written (then nothing can be spooled there either)."""
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        pass
    try:
        _private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(16).hex().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic: the first process to create it wins, others read it
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _adopt_legacy_spool(legacy: Path, target: Path) -> None:
    """Move a 0.1.x spool folder's files into ``target`` (a name already taken there gets a
    claimed name, which replay reads alike); then remove the old folder."""
    try:
        if not target.exists():
            _private_dirs(target.parent)
            os.rename(legacy, target)
            return
        for sub in (*(d.name for d in legacy.iterdir() if d.is_dir()), ""):  # rejected/, ...
            src, dst = legacy / sub, target / sub
            _private_dirs(dst)
            for f in src.glob("*.jsonl"):
                name = f.name
                if (dst / name).exists():
                    name = f"{name[: -len('.jsonl')]}.{uuid.uuid4().hex[:12]}.jsonl"
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f, dst / name)
            with contextlib.suppress(OSError):
                src.rmdir()
    except OSError:  # left where it is: a later call tries again
        return


def _append_all(fd: int, data: bytes) -> None:
    """Write ``data`` at the end of ``fd`` (opened ``O_APPEND``, locked) and fsync, or leave the
    file as it was: on a short or failed write or sync it is truncated back to its size before.

    Raises:
        OSError: ENOSPC for a short write, else the system's error.
    """
    before = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(errno.ENOSPC, "short write to the spool (disk full?)")
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, before)
            os.fsync(fd)
        raise


#: Where a spool file holding lines this greentrack cannot parse is moved once its readable
#: lines are written: out of every later replay, kept for the user (``greentrack sync`` fails
#: while any is there).
UNREADABLE_DIR = "unreadable"

_REPLAY_BATCH_SAMPLES = 50_000  # checkpoints merged into one write while replaying a spool file


class Spool:
    """Checkpoints that could not be written, one JSON line each in ``<dir>/<run>.<rank>.jsonl``.

    Files are created readable by the user only. A full disk raises ``OSError(ENOSPC)``, which the
    sampler turns into a warning (the checkpoint then stays in memory, merged and bounded).

    Several processes may share a spool (the ranks of a job on one node, concurrent runs): a
    replayer first renames a file to ``<run>.<rank>.<token>.jsonl`` (claiming it), then takes its
    ``flock`` before reading; an appender holds the ``flock`` while it writes and re-opens the path
    if the file it opened was claimed meanwhile. So no line is ever appended to a file that was
    already read, and a replay interrupted by the store failing again leaves a claimed file that
    the next replay finds.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        #: One line per spool file a replay kept because it holds lines it could not write.
        self.problems: list[str] = []

    @classmethod
    def for_store(cls, spool_root: Path, url: str) -> Spool:
        """The spool of one store: ``<spool_root>/<key>``, the key a hash of the URL *with its
        password masked* and a random salt kept in ``<spool_root>/../spool.salt`` (0600), so the
        folder name reveals neither the password nor, offline, which store it is.

        A spool folder of greentrack 0.1.x (named by an unsalted hash of the full URL, password
        included) is moved into this one, so none of its checkpoints is orphaned; so is one made
        without the salt (``""``: the home could not be written when it was made).
        """
        from greentrack.store.dbapi import parse_url

        root = Path(spool_root)
        parsed = parse_url(url)
        salt = _spool_salt(root.parent / "spool.salt")
        key = hashlib.sha256(f"{salt}\n{parsed.display}".encode()).hexdigest()[:16]
        spool = cls(root / key)
        earlier = [root / hashlib.sha256(parsed.sqlalchemy_url.encode()).hexdigest()[:16]]
        if salt:  # where a process spooled while the salt could not be written (a full disk)
            earlier.append(root / hashlib.sha256(f"\n{parsed.display}".encode()).hexdigest()[:16])
        for old in earlier:
            if old != spool.dir and old.is_dir():
                _adopt_legacy_spool(old, spool.dir)
        return spool

    def path(self, run_id: str, rank: int) -> Path:
        return self.dir / f"{run_id}.{rank}.jsonl"

    def append(self, cp: Checkpoint) -> Path:
        """Append one checkpoint (``fsync``ed). Raises ``OSError`` (ENOSPC, EACCES, ...).

        All or nothing: a short or failed write (a full disk) is rolled back by truncating the
        file to its size before the write, so no torn fragment is left to glue onto the next
        line.
        """
        _private_dirs(self.dir)
        path = self.path(cp.run_id, cp.rank)
        data = (cp.to_json() + "\n").encode()
        while True:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = None
                if current != os.fstat(fd).st_ino:
                    continue  # claimed by a replayer after we opened it: append to a new file
                _append_all(fd, data)
                return path
            finally:
                os.close(fd)  # releases the lock

    def reject(self, cp: Checkpoint, reason: str) -> Path:
        """Keep a checkpoint the store refused in ``<dir>/rejected/<run>.<rank>.jsonl`` (one JSON
        line ``{"reason", "checkpoint"}``, fsync'd), out of the way of every later replay."""
        folder = self.dir / "rejected"
        _private_dirs(folder)
        path = folder / f"{cp.run_id}.{cp.rank}.jsonl"
        line = json.dumps({"reason": reason, "checkpoint": json.loads(cp.to_json())}) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _append_all(fd, line.encode())
        finally:
            os.close(fd)
        return path

    def unreadable(self) -> list[Path]:
        """Spool files set aside because they hold lines greentrack cannot parse."""
        folder = self.dir / UNREADABLE_DIR
        return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []

    def pending(self, run_id: str | None = None, rank: int | None = None) -> list[Path]:
        """Spool files (own and claimed ones) of a run, of one rank of it, or of every run."""
        if not self.dir.is_dir():
            return []
        if run_id is None:
            return sorted(self.dir.glob("*.jsonl"))
        stem = f"{run_id}.{rank}" if rank is not None else f"{run_id}.*"
        return sorted({*self.dir.glob(f"{stem}.jsonl"), *self.dir.glob(f"{stem}.*.jsonl")})

    def _claim(self, path: Path) -> Path | None:
        """Rename an appender's file to a claimed name; claimed files are returned as they are."""
        if path.name.count(".") > 2:  # <run>.<rank>.<token>.jsonl: already claimed
            return path
        claimed = path.with_name(f"{path.name[: -len('.jsonl')]}.{uuid.uuid4().hex[:12]}.jsonl")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None  # another process claimed it first
        return claimed

    def replay(self, writer: StoreWriter, path: Path) -> int:
        """Write every checkpoint of one spool file, then delete it. Returns how many.

        Raises the writer's ``StoreError`` if the store fails; the file is then kept (claimed)
        and a later replay writes it again (writes are idempotent).

        A file is never deleted while it holds a line that was not written. Lines of a newer
        spool format leave the file where it is, for a newer greentrack to replay; lines that do
        not parse move it to ``unreadable/``. Either way the readable lines are written, a
        warning names the file, and :attr:`problems` gets a line (``greentrack sync`` fails).
        """
        claimed = self._claim(path)
        if claimed is None:
            return 0
        try:
            fd = os.open(claimed, os.O_RDONLY)
        except FileNotFoundError:
            return 0  # replayed and deleted by another process
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # being appended to or replayed elsewhere; a later replay gets it
            with os.fdopen(os.dup(fd), "rb") as f:
                raw_lines = f.read().split(b"\n")
            count = 0
            batch: list[Checkpoint] = []
            n_samples = 0
            bad: list[int] = []  # line numbers (1-based) that do not parse
            newer: set[Any] = set()  # spool format versions newer than this greentrack's
            for number, raw in enumerate(raw_lines, 1):
                if not raw.strip():
                    continue
                try:
                    cp = Checkpoint.from_json(raw.decode("utf-8"))
                except SpoolFormatError as e:
                    newer.add(e.version)
                    continue
                except (ValueError, KeyError, TypeError, AttributeError):
                    bad.append(number)
                    continue
                batch.append(cp)
                n_samples += len(cp.samples)
                count += 1
                if n_samples >= _REPLAY_BATCH_SAMPLES:  # one transaction per batch
                    self._write_or_reject(writer, Checkpoint.combine(batch))
                    batch, n_samples = [], 0
            if batch:
                self._write_or_reject(writer, Checkpoint.combine(batch))
            if newer:
                needs = max(newer, key=str)
                self._problem(
                    f"{claimed} was written by a newer greentrack (spool format {needs}; this "
                    f"one reads up to {SPOOL_FORMAT}): kept; upgrade greentrack "
                    "(pip install -U greentrack) and run `greentrack sync`"
                )
            elif bad:
                kept = self._set_aside(claimed)
                lines = ", ".join(str(n) for n in bad[:5]) + (", ..." if len(bad) > 5 else "")
                self._problem(
                    f"{kept} holds {len(bad)} line(s) greentrack cannot parse (line {lines}); "
                    f"its {count} readable checkpoint(s) were written; the file is kept: look "
                    "at it, then delete it"
                )
            else:
                with contextlib.suppress(FileNotFoundError):
                    claimed.unlink()
            return count
        finally:
            os.close(fd)

    def _set_aside(self, claimed: Path) -> Path:
        """Move a file with unparsable lines to ``unreadable/`` (out of later replays)."""
        folder = self.dir / UNREADABLE_DIR
        try:
            _private_dirs(folder)
            target = folder / claimed.name
            os.rename(claimed, target)
            return target
        except OSError:
            return claimed  # kept where it is

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("greentrack: %s", message)

    def _write_or_reject(self, writer: StoreWriter, cp: Checkpoint) -> None:
        """Write; what the store refuses is kept aside (:meth:`reject`), never retried."""
        try:
            reason = writer.write(cp)
        except StoreRejectedError as e:
            reason, kept = str(e), self.reject(cp, str(e))
        else:
            if reason is None:
                return
            kept = self.reject(cp.split_user_data()[1] or cp, reason)
        log.warning("greentrack: %s; kept in %s", reason, kept)

    def replay_all(self, writer: StoreWriter, run_id: str | None = None) -> int:
        return sum(self.replay(writer, p) for p in self.pending(run_id))
