"""Keep the user's signals off greentrack's own threads.

The kernel gives a process's signal to any thread that does not block it; Python runs handlers
only on the main thread, and a main thread asleep (``time.sleep``) is woken only by a signal that
lands on it, so a SIGTERM or Ctrl-C taken by a background thread could wait there unhandled.
Every thread greentrack starts (sampler, checkpoints, BMC pollers, integrations) calls
:func:`block_signals` first.
"""

from __future__ import annotations

import contextlib
import signal

__all__ = ["BLOCKED_SIGNALS", "block_signals"]

BLOCKED_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def block_signals() -> None:
    """In one of greentrack's own threads: never receive SIGTERM, SIGINT or SIGHUP."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED_SIGNALS)
