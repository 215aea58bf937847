"""``track``: measure a block of code, a function or a whole program, and keep the run.

::

    @gt.track                                   # bare decorator
    @gt.track(project="cifar", params={...})    # configured decorator (sync, async, methods)
    with gt.track("finetune", project="cifar") as run: ...
    run = gt.track("x").start(); ...; run.stop()

Lifecycle: ``running`` → ``finished`` | ``failed`` (the exception text is recorded and the
exception re-raised unchanged) | ``interrupted`` (KeyboardInterrupt, SIGTERM) | ``crashed`` (the
process died; detected afterwards from a stale heartbeat or a dead pid).

The training thread only does cheap work: phase boundaries read the meters (a few file reads or
NVML calls); metrics go to an in-memory list. The sampler thread does the rest: sampling, and
checkpoints to the store every ``checkpoint_s`` (default 10 s). When the store is unreachable,
checkpoints are spooled to ``$GREENTRACK_HOME/spool`` and written later (next start, ``greentrack
sync``). Meter failures become warnings recorded on the run; they never reach the training loop.

Guarantees (``tests/test_attack_lifecycle.py``): the start is durable before ``start()`` returns
(an fsync'd spool line); checkpoints run on a deadline schedule with a fresh reading; ``stop()``
has one deadline (``flush_timeout_s``), past which the final state is spooled; signals arriving
while a run is finalised are deferred; a fork()ed child's copy of a run is inert; phases nest per
context (thread, asyncio task).

The run itself is :class:`greentrack.run.Run` (lifecycle, phases, metrics); the modules it is made
of are listed there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from greentrack import lifecycle
from greentrack.run import Run

__all__ = ["track"]

F = TypeVar("F", bound=Callable[..., Any])


# -- track ----------------------------------------------------------------------------------
class _Tracker:
    """What ``track(...)`` returns: a decorator, a context manager, and a run factory."""

    def __init__(self, name: str | None, kwargs: dict[str, Any]) -> None:
        self.name = name
        run_kw, options = lifecycle.split_options(kwargs)  # the integrations' keywords apart
        self.kwargs = {**run_kw, "integrations": options} if options else run_kw
        self._run: Run | None = None

    def run(self, name: str | None = None) -> Run:
        return Run(self.name or name, **self.kwargs)

    def start(self) -> Run:
        return self.run().start()

    def __enter__(self) -> Run:
        self._run = self.run()
        return self._run.__enter__()

    def __exit__(self, *exc: Any) -> None:
        assert self._run is not None
        run, self._run = self._run, None
        run.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        name = self.name or getattr(fn, "__name__", "run")
        import inspect

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kw: Any) -> Any:
                with Run(name, **self.kwargs):
                    return await fn(*args, **kw)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            with Run(name, **self.kwargs):
                return fn(*args, **kw)

        return wrapper  # type: ignore[return-value]


@overload
def track(fn: F, /) -> F: ...
@overload
def track(name: str | None = None, /, **kwargs: Any) -> _Tracker: ...
def track(fn_or_name: Any = None, /, **kwargs: Any) -> Any:
    """Track a function (``@track``, ``@track(...)``) or a block (``with track(...) as run``).

    Keyword arguments are those of :class:`Run`: ``project``, ``params``, ``tags``, ``region``,
    ``db``, ``interval_s``, ``checkpoint_s``, ``pue``, ``budget_kwh``, ``budget_co2e_g``,
    ``meters``, ``source``, ``csv``, ``csv_options``, ``cpu_share``, ``flush_timeout_s``, and
    those of the registered integrations (:mod:`greentrack.lifecycle`).
    """
    if callable(fn_or_name):
        return _Tracker(None, kwargs)(fn_or_name)
    if "name" in kwargs:
        fn_or_name = kwargs.pop("name")
    return _Tracker(fn_or_name, kwargs)
