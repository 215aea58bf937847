"""What this host is made of: CPU model and count, installed RAM, host name.

Every helper is cheap (no torch import, no subprocess, no network) and never raises for a missing
piece of hardware: an unknown CPU model is ``"unknown"``. Used for run metadata and by the
meters (:mod:`greentrack.meters`); the GPUs are the meters' own business
(:func:`greentrack.meters.nvml_devices.gpu_models`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_count", "cpu_model", "hostname", "ram_total_gib"]

_PROC_CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: Path = _PROC_CPUINFO) -> str:
    """The CPU's marketing name, e.g. ``"Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"``.

    Read from the first ``model name`` line of ``/proc/cpuinfo`` (Linux); elsewhere from
    :func:`platform.processor`. Returns ``"unknown"`` when neither says anything.
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    import platform

    return platform.processor().strip() or "unknown"


def hostname() -> str:
    """This machine's name, as :func:`socket.gethostname` gives it (read from ``uname``, which is
    what that calls on POSIX, without importing :mod:`socket`)."""
    try:
        return os.uname().nodename
    except AttributeError:  # not POSIX
        import socket

        return socket.gethostname()


def cpu_count() -> int:
    """Logical CPUs of the whole machine (hardware threads), at least 1."""
    return os.cpu_count() or 1


def ram_total_gib() -> float:
    """Installed (usable) RAM of the machine. Units: GiB (2**30 bytes)."""
    try:  # Linux: /proc/meminfo directly (what psutil reads, without its import cost)
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / 2**30
    except (OSError, ValueError, IndexError):
        pass
    import psutil

    return psutil.virtual_memory().total / 2**30
