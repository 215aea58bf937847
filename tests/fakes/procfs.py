"""A scripted procfs root for the CPU and RAM estimates (``GREENTRACK_PROCFS`` points at it).

Files in the kernel's layouts, with a known ground truth::

    <root>/cpuinfo          one block per visible CPU: processor, vendor_id, model name,
                            physical id, siblings, core id, cpu cores, flags (+ hypervisor in a VM)
    <root>/meminfo          MemTotal: <kB> kB
    <root>/stat             cpu  user nice system idle iowait irq softirq steal guest guest_nice
    <root>/<pid>/stat       pid (comm) state ppid ... utime stime cutime cstime ... starttime
    <root>/<pid>/statm      size resident shared text lib data dt (pages)

:meth:`ScriptedProcfs.start` advances ``stat`` (and the tracked pid's ``utime``) from a thread,
as the kernel does: every few milliseconds the elapsed ``time.monotonic()`` × ``CLK_TCK`` × the
visible CPUs is added to the total, ``load`` of it to ``user`` (the rest to ``idle``) and
``tree_share`` of it to the pid's ``utime``. Files are replaced atomically (a reader never sees a
half-written file).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Machine:
    """A machine as ``/proc/cpuinfo`` shows it."""

    label: str
    model: str
    threads: int  # visible logical CPUs
    packages: int  # sockets (distinct physical id)
    siblings: int  # threads per package, as the kernel reports them
    hypervisor: bool
    mem_gib: float
    vendor: str = "GenuineIntel"


LAPTOP_I7 = Machine("laptop i7 (4 cores, 8 threads)", "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz",
                    8, 1, 8, False, 16.0)  # fmt: skip
XEON_2S = Machine("2-socket Xeon Gold 6148 server", "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz",
                  80, 2, 40, False, 192.0)  # fmt: skip
EPYC_VM = Machine("4-vCPU VM on a 64-core EPYC 7763", "AMD EPYC 7763 64-Core Processor",
                  4, 1, 4, True, 16.0, "AuthenticAMD")  # fmt: skip
UNKNOWN_VM = Machine("2-vCPU VM, model 'AMD EPYC' (unknown)", "AMD EPYC", 2, 1, 2, True, 8.0,
                     "AuthenticAMD")  # fmt: skip
MACHINES = (LAPTOP_I7, XEON_2S, EPYC_VM, UNKNOWN_VM)


def cpuinfo_text(m: Machine) -> str:
    """``/proc/cpuinfo`` of machine ``m`` (x86 layout)."""
    flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx "
    flags += "fxsr sse sse2 ht syscall nx lm constant_tsc rep_good nopl xtopology pni"
    if m.hypervisor:
        flags += " hypervisor"
    per_pkg = m.threads // m.packages
    blocks = []
    for cpu in range(m.threads):
        pkg = cpu // per_pkg
        blocks.append(
            f"processor\t: {cpu}\nvendor_id\t: {m.vendor}\ncpu family\t: 6\nmodel\t\t: 85\n"
            f"model name\t: {m.model}\nstepping\t: 4\ncpu MHz\t\t: 2400.000\n"
            f"physical id\t: {pkg}\nsiblings\t: {m.siblings}\ncore id\t\t: {(cpu % per_pkg) // 2}\n"
            f"cpu cores\t: {max(m.siblings // 2, 1)}\napicid\t\t: {cpu}\nflags\t\t: {flags}\n"
        )
    return "\n".join(blocks) + "\n"


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="ascii")
    os.replace(tmp, path)


class ScriptedProcfs:
    """A procfs root for ``machine`` whose CPU times advance at a scripted load.

    Args:
        root: the folder (created); point ``GREENTRACK_PROCFS`` at it.
        machine: what ``cpuinfo`` and ``meminfo`` say.
        load: machine-wide busy fraction, 0..1 (``set_load`` changes it).
        pid: the process whose ``<pid>/stat`` is scripted (default this one).
        tree_share: that process's CPU time as a fraction of all CPUs' time (≤ ``load``).
        rss_gib: its resident memory. Units: GiB.
    """

    def __init__(self, root: Path, machine: Machine, *, load: float = 0.0,
                 pid: int | None = None, tree_share: float = 0.0,
                 rss_gib: float = 1.0) -> None:  # fmt: skip
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.machine = machine
        self.pid = os.getpid() if pid is None else pid
        self._lock = threading.Lock()
        self.load, self.tree_share = load, tree_share
        self._busy = self._total = self._tree = 0.0  # ticks
        self._t = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        (self.root / "cpuinfo").write_text(cpuinfo_text(machine), encoding="ascii")
        kb = int(machine.mem_gib * 2**20)
        (self.root / "meminfo").write_text(
            f"MemTotal:       {kb} kB\nMemFree:        {kb // 2} kB\n", encoding="ascii"
        )
        (self.root / str(self.pid)).mkdir(exist_ok=True)
        pages = int(rss_gib * 2**30 / PAGE)
        (self.root / str(self.pid) / "statm").write_text(
            f"{pages * 2} {pages} 100 10 0 {pages} 0\n"
        )
        self._write()

    def _advance(self) -> None:
        now = time.monotonic()
        d_total = (now - self._t) * HZ * self.machine.threads
        self._t = now
        self._total += d_total
        self._busy += self.load * d_total
        self._tree += self.tree_share * d_total

    def _write(self) -> None:
        busy, total, tree = int(self._busy), int(self._total), int(self._tree)
        idle = total - busy
        _replace(self.root / "stat", f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\nintr 0\nbtime 0\n")
        fields = [
            "S",
            1,
            self.pid,
            self.pid,
            0,
            -1,
            0,
            0,
            0,
            0,
            0,
            tree,
            0,
            0,
            0,
            20,
            0,
            1,
            0,
            1000,
        ]
        _replace(self.root / str(self.pid) / "stat",
                 f"{self.pid} (python) " + " ".join(map(str, fields)) + "\n")  # fmt: skip

    def set_load(self, load: float, tree_share: float | None = None) -> None:
        """From now on, the machine is ``load`` busy (and the pid ``tree_share`` of all CPUs)."""
        with self._lock:
            if self._thread is not None:  # running on the clock: book the time so far first
                self._advance()
            self.load = load
            if tree_share is not None:
                self.tree_share = tree_share
            self._write()

    def step(self, seconds: float) -> None:
        """Advance the CPU times by ``seconds`` of scripted time, now (no clock: deterministic)."""
        with self._lock:
            d_total = seconds * HZ * self.machine.threads
            self._total += d_total
            self._busy += self.load * d_total
            self._tree += self.tree_share * d_total
            self._write()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            with self._lock:
                self._advance()
                self._write()

    def start(self) -> ScriptedProcfs:
        """Advance the CPU times in a background thread until :meth:`stop`."""
        with self._lock:
            self._t = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="scripted-procfs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
