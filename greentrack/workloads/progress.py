"""The one-line progress display of ``greentrack bench`` (stderr)."""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A one-line progress display on stderr (redrawn in place on a terminal)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self.index = 0
        self.label = ""
        self.t0 = time.monotonic()
        self._last = 0.0
        self.tty = enabled and sys.stderr.isatty()
        self.run: Any = None

    def start(self, name: str) -> None:
        self.index += 1
        self.t0 = time.monotonic()
        self.label = f"[{self.index:>2}/{self.total}] {name}"
        self.phase("start")

    def phase(self, phase: str) -> None:
        self._show(f"{self.label}: {phase}", force=True)

    def step(self, step: int, total: int) -> None:
        if self.run is not None and total > 0:
            self.run.progress(step, total)
        self._show(f"{self.label}: train step {step}/{total}", force=step == total)

    def done(self, text: str) -> None:
        self._show(f"{self.label}: {text}", force=True, final=True)

    def _show(self, text: str, *, force: bool = False, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and (not self.tty or now - self._last < 0.2):
            return
        self._last = now
        line = f"{text} ({now - self.t0:.0f} s)"
        if self.tty:
            sys.stderr.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
