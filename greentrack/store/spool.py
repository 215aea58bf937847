"""The spool: checkpoints that could not be written yet, one JSON line each, on local disk.

When the store is unreachable, checkpoints go to ``$GREENTRACK_HOME/spool/<key>/<run>.<rank>.jsonl``
(``<key>``: a salted hash of the store's URL, password masked) and are written later (the run's
next checkpoint, the next start, ``greentrack sync``). Writes are idempotent, so a line can be
replayed any number of times. This module holds the line format (:func:`to_line`,
:func:`from_line`, :data:`SPOOL_FORMAT`), the folder layout (salt, folders of older versions) and
the :class:`Spool` itself; *when* to spool is :mod:`greentrack.store.delivery`'s policy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import uuid
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greentrack.errors import StoreRejectedError
from greentrack.store.checkpoint import Checkpoint
from greentrack.store.digest import sha256_hex

if TYPE_CHECKING:
    from greentrack.store.writer import StoreWriter

log = logging.getLogger("greentrack")

__all__ = ["SPOOL_FORMAT", "UNREADABLE_DIR", "Spool", "SpoolFormatError", "from_line", "to_line"]

#: The spool line format this greentrack writes and the newest it reads. 1: no "v" field;
#: 2: "v" field, metrics and components may carry "note"/"method" (schema 0003).
SPOOL_FORMAT = 2


class SpoolFormatError(ValueError):
    """A spool line written by a newer greentrack (its format version is ``version``)."""

    def __init__(self, version: Any) -> None:
        super().__init__(f"spool format {version!r}")
        self.version = version


def to_line(cp: Checkpoint) -> str:
    """One spool line (no newline): the checkpoint's fields and ``"v"``, the spool format
    version."""
    data = {"v": SPOOL_FORMAT, **asdict(cp)}
    return json.dumps(data, default=_encode, separators=(",", ":"))


def from_line(line: str) -> Checkpoint:
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
    return Checkpoint(**data)


def _encode(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


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


#: (spool root, store URL) -> (the salt file's identity, the spool folder, the older folders to
#: adopt): the later runs of a process on the same store skip parsing the URL, reading the salt
#: and hashing (~50 µs of a warm start); a salt file replaced or removed (a wiped home) is read
#: again. The older folders are still looked for every time (an older greentrack may spool there).
_FOLDERS: dict[tuple[str, str], tuple[tuple[int, int, int], Path, list[Path]]] = {}


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


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
        cached = _FOLDERS.get((str(root), url))
        if cached is not None and cached[0] == _identity(root.parent / "spool.salt"):
            spool, earlier = cls(cached[1]), cached[2]
        else:
            parsed = parse_url(url)
            salt = _spool_salt(root.parent / "spool.salt")
            key = sha256_hex(f"{salt}\n{parsed.display}".encode())[:16]
            spool = cls(root / key)
            earlier = [root / sha256_hex(parsed.sqlalchemy_url.encode())[:16]]
            if salt:  # where a process spooled while the salt could not be written (full disk)
                unsalted = sha256_hex(f"\n{parsed.display}".encode())[:16]
                earlier.append(root / unsalted)
            identity = _identity(root.parent / "spool.salt") if salt else None
            if identity:
                _FOLDERS[(str(root), url)] = (identity, spool.dir, earlier)
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
        data = (to_line(cp) + "\n").encode()
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
        line = json.dumps({"reason": reason, "checkpoint": json.loads(to_line(cp))}) + "\n"
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
        """Spool files (own and claimed ones) of a run, of one rank of it, or of every run:
        the names ``*.jsonl``, ``<run>.*.jsonl``, or ``<run>.<rank>.jsonl`` and
        ``<run>.<rank>.*.jsonl``, sorted. (A listing matched by hand: a glob compiles a new
        pattern for each run, ~0.2 ms, twice per run.)"""
        try:
            names = os.listdir(self.dir)
        except OSError:  # no spool folder (nothing was spooled), or unreadable
            return []
        ext = ".jsonl"
        if run_id is None:
            return sorted(self.dir / n for n in names if n.endswith(ext))
        if rank is None:
            stem = f"{run_id}."  # <run>.*.jsonl
            picked = [n for n in names if n.startswith(stem) and n.endswith(ext)
                      and len(n) >= len(stem) + len(ext)]  # fmt: skip
        else:
            own, stem = f"{run_id}.{rank}{ext}", f"{run_id}.{rank}."
            picked = [n for n in names if n == own or (n.startswith(stem) and n.endswith(ext)
                      and len(n) >= len(stem) + len(ext))]  # fmt: skip
        return sorted(self.dir / n for n in picked)

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
                    cp = from_line(raw.decode("utf-8"))
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
