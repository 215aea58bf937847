"""CPU time and memory of one process tree — this process and everything it starts — from /proc.

Used by the estimating meters when ``cpu_share="process"``: on a shared machine, the CPU estimate
is then this job's share of the machine's modelled power (its CPU time / the machine's busy CPU
time; :mod:`greentrack.meters.estimate` states the rule), not the whole machine's.

How the CPU time is counted (Linux; ``/proc/<pid>/stat``, clock ticks):

* every process of the tree contributes its own time (``utime + stime``, all its threads) plus
  the time of the children it has reaped (``cutime + cstime``) — so short-lived children that
  start and end between two reads (``git``, a shell pipeline) are counted through their parent;
* descendants are found by their parent pid in a scan of ``/proc``, at the start and then at most
  every ``rescan_s`` (default 10 s: a scan reads one small file per process on the machine).
  A process found late is counted from its birth, so its time is never lost, only booked late;
* a process that ends is removed. When its parent in the tree reaps it, the parent's
  ``cutime`` takes over its whole time, so only its time from before the start is subtracted.
  When it is not reaped in the tree (it outlived its parent and was re-parented to init), what
  was seen of it is kept and the last interval of it is lost;
* a process is followed until it ends, even if it leaves the tree (a daemonised worker);
* a pid reused by an unrelated process is told apart by its start time;
* the total only grows: a momentary dip (a child already gone, its parent's ``cutime`` not yet
  updated when read) is absorbed, and made up at the next read.

Memory: the resident set of every process of the tree (``/proc/<pid>/statm``), summed. Pages that
several of its processes share (forked data-loader workers) count once per process, so this is an
upper bound; the exact proportional figure (``Pss`` in ``smaps_rollup``) walks the page tables and
costs ~10 ms per GiB mapped — too much for a meter read every second.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["PROCFS_ENV", "ProcessTree", "procfs_root"]

PROCFS_ENV = "GREENTRACK_PROCFS"
"""Environment variable naming the procfs root the estimates read (default ``/proc``)."""


def procfs_root() -> Path:
    """Where the estimates read procfs: ``$GREENTRACK_PROCFS``, default ``/proc``.

    Read at each call (no cache), as ``GREENTRACK_SYSFS`` is for RAPL: ``cpuinfo``, ``stat``,
    ``meminfo`` and the process tree's ``<pid>/stat`` and ``<pid>/statm`` all come from there.
    """
    return Path(os.environ.get(PROCFS_ENV) or "/proc")


class _Proc:
    """One followed process (a plain class: a dataclass costs ~0.3 ms to define, at import)."""

    __slots__ = ("base_s", "last_s", "ppid", "start_ticks")

    def __init__(self, start_ticks: int, ppid: int, base_s: float, last_s: float) -> None:
        self.start_ticks = start_ticks  # the process's start time: tells a reused pid apart
        self.ppid = ppid
        self.base_s = base_s  # contribution (own + reaped children) when it started being counted
        self.last_s = last_s  # contribution at the last read


class ProcessTree:
    """Cumulative CPU time (s) and memory (GiB) of the process tree rooted at ``pid``.

    Args:
        pid: the root (default: this process).
        proc: where procfs is mounted (default :func:`procfs_root`: ``GREENTRACK_PROCFS``,
            else ``/proc``; tests point it elsewhere).
        rescan_s: longest time between two scans for new descendants. Units: s.
        clock: monotonic time source (for ``rescan_s``).
    """

    def __init__(
        self,
        pid: int | None = None,
        *,
        proc: str | Path | None = None,
        rescan_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = os.getpid() if pid is None else int(pid)
        self.proc = Path(proc) if proc is not None else procfs_root()
        self.rescan_s = float(rescan_s)
        self.clock = clock
        self._hz = float(os.sysconf("SC_CLK_TCK"))
        self._page_gib = os.sysconf("SC_PAGE_SIZE") / 2**30
        self._lock = threading.RLock()  # the sampler and ``greentrack run`` may both call in
        self._procs: dict[int, _Proc] = {}
        self._gone_s = 0.0  # what ended processes leave behind (see the module docstring)
        self._total_s = 0.0
        self._last_scan = -float("inf")
        self._scan(first=True)

    # -- /proc ---------------------------------------------------------------------------------
    def _stat(self, pid: int) -> tuple[str, int, float, int] | None:
        """``(state, ppid, own + reaped children's CPU s, start ticks)``; None if it is gone."""
        try:
            raw = (self.proc / str(pid) / "stat").read_bytes()
        except OSError:
            return None
        fields = raw[raw.rfind(b")") + 2 :].split()
        try:
            ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
            return fields[0].decode(), int(fields[1]), ticks / self._hz, int(fields[19])
        except (IndexError, ValueError):
            return None

    def _parents(self) -> dict[int, int]:
        """pid -> ppid of every process on the machine."""
        out: dict[int, int] = {}
        try:
            names = os.listdir(self.proc)
        except OSError:
            return out
        for name in names:
            if name.isdigit():
                try:
                    raw = (self.proc / name / "stat").read_bytes()
                    out[int(name)] = int(raw[raw.rfind(b")") + 2 :].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        return out

    def scan(self) -> None:
        """Look for new descendants now (e.g. right after starting a child)."""
        with self._lock:
            self._scan()

    def _scan(self, *, first: bool = False) -> None:
        """Start counting descendants not followed yet (at the start: from their current time)."""
        self._last_scan = self.clock()
        parents = self._parents()
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        todo = [self.root, *self._procs]
        seen: set[int] = set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            if pid not in self._procs:
                st = self._stat(pid)
                if st is None:
                    continue
                _, ppid, contrib_s, start = st
                base = contrib_s if first else 0.0  # born during the run: all of it counts
                self._procs[pid] = _Proc(start, ppid, base, contrib_s)
            todo.extend(children.get(pid, ()))

    # -- readings ------------------------------------------------------------------------------
    def cpu_s(self) -> float:
        """CPU time of the tree since this object was made (never decreasing). Units: s."""
        with self._lock:
            return self._cpu_s()

    def _cpu_s(self) -> float:
        if self.clock() - self._last_scan >= self.rescan_s:
            self._scan()
        stats = {pid: self._stat(pid) for pid in self._procs}
        ended = [
            pid
            for pid, st in stats.items()
            if st is None or st[3] != self._procs[pid].start_ticks  # gone, or the pid reused
        ]
        for pid in ended:  # reaped by a parent we follow (ended too, maybe): its cutime has it
            p = self._procs[pid]
            self._gone_s += -p.base_s if p.ppid in self._procs else p.last_s - p.base_s
        for pid in ended:
            del self._procs[pid]
        alive = 0.0
        for pid, p in self._procs.items():
            _, p.ppid, p.last_s, _ = stats[pid]  # type: ignore[misc]
            alive += p.last_s - p.base_s
        self._total_s = max(self._total_s, alive + self._gone_s)
        return self._total_s

    def memory_gib(self) -> float:
        """Memory the tree uses now: its processes' resident sets, summed. Units: GiB."""
        with self._lock:
            pids = list(self._procs)
        return sum(self._rss_gib(pid) for pid in pids)

    def _rss_gib(self, pid: int) -> float:
        try:
            resident = int((self.proc / str(pid) / "statm").read_bytes().split()[1])
            return resident * self._page_gib
        except (OSError, ValueError, IndexError):
            return 0.0
