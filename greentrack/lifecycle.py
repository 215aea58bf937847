"""A run's life in its process: which runs are active, the current run, signals, exit and fork;
and the run's extension point, listeners.

* :func:`active_runs` / :func:`current_run`: every started, not yet stopped run of the process,
  and the innermost one of the calling context (thread, asyncio task).
* SIGTERM and SIGHUP finalise active runs as ``interrupted`` and then act as before; signals that
  arrive while a run is finalised are deferred until it is written (:func:`signals_deferred`).
* At exit, runs still active are stopped (``finished``, or ``failed`` after an error).
* A fork()ed child's copy of an active run is made inert (no threads, no writes).

Listeners (the extension point integrations use)
------------------------------------------------
A *listener* is any object with one or both of these methods::

    on_checkpoint(run, checkpoint)   # greentrack.store.checkpoint.Checkpoint, after its delivery
    on_stop(run, summary)            # greentrack.summary.RunSummary, at stop()

``on_checkpoint`` is called on the sampler's checkpoint thread (never the training thread) after
each periodic checkpoint was written or spooled, and once more for the final checkpoint at
``stop()``; ``on_stop`` once, at ``stop()``. The final calls run on a thread of their own, beside
the final write, within ``stop()``'s deadline (``flush_timeout_s``): a listener still busy then
is left behind with a warning. Every exception a listener raises becomes a warning on the run
(once per listener and method); none reaches the user's code. Keep ``on_checkpoint`` fast (well
under a millisecond; hand slow work such as network calls to a thread of your own): the next
checkpoint waits for it. Attach one with :meth:`greentrack.run.Run.add_listener`.

The registry of listener factories, which ``track()`` consults (filled lazily)::

    register_listener(ListenerSpec(
        "mlflow",                                    # the integration's name
        "greentrack.integrations.mlflow:listener",   # "module:factory", imported when consulted
        options=("mlflow",),                         # track()/Run keywords it takes
        modules=("mlflow",),                         # consulted when one of these is imported
        env=(),                                      # ... or one of these variables is set
    ))

A built-in integration is one line in :data:`LISTENERS` below (one new module plus one registry
line); a user's own may call :func:`register_listener` with a callable instead of a string. At
``start()`` (before the user's code runs, after the run's id and rank are known) each spec whose
option was given, whose config entry ``[integrations] <name>`` is true, whose module is already
imported, or whose environment variable is set, is consulted: its factory is imported and called
as ``factory(run, options)`` (``options``: the spec's keywords that were given, by name) and
returns a listener or None (not active: e.g. no MLflow run). A factory must be cheap and must not
touch the network. A :class:`~greentrack.errors.GreentrackError` it raises (bad option values, a
missing extra) propagates from ``start()`` as a one-line error; any other exception becomes a
warning on the run. Nothing is imported for a spec that is not consulted, so an integration costs
nothing when unused.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from greentrack.errors import GreentrackError

__all__ = [
    "LISTENERS",
    "ListenerSpec",
    "Listeners",
    "active_runs",
    "current_run",
    "listeners_for",
    "register_listener",
    "split_options",
]

log = logging.getLogger("greentrack")
_ACTIVE: list[Any] = []  # the tracker's Run objects, oldest first
_ACTIVE_LOCK = threading.Lock()


def register(run: Any) -> None:
    """``run`` has started: it is active and current in the calling context; the exit hook and
    the signal handlers are in place."""
    with _ACTIVE_LOCK:
        _ACTIVE.append(run)
    _enter_current(run)
    _install_exit_hook()
    _install_signal_handlers()


def unregister(run: Any) -> None:
    """``run`` is stopping: no longer active (nor current anywhere)."""
    with _ACTIVE_LOCK:
        if run in _ACTIVE:
            _ACTIVE.remove(run)


def active_runs() -> list[Any]:
    """Every run started in this process and not yet stopped, oldest first (all threads and
    contexts; a copy). Use it to reach runs you did not start yourself, e.g. from a signal
    handler; inside your own code prefer :func:`current_run`."""
    with _ACTIVE_LOCK:
        return list(_ACTIVE)


# The runs started in this context (thread, asyncio task), innermost last. A run is appended at
# start(); a stopped one is filtered out on read (stop() may run in another context: atexit, a
# signal handler), so entries never need resetting and never outlive their run.
_CURRENT: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "greentrack_current_runs", default=()
)


def _enter_current(run: Any) -> None:
    with _ACTIVE_LOCK:
        alive = tuple(r for r in _CURRENT.get() if r in _ACTIVE and r is not run)
    _CURRENT.set((*alive, run))


def current_run() -> Any:
    """The innermost run started in the current context and still running, or None.

    "Context" is the thread (and, under asyncio, the task) that started the run: inside a function
    decorated with ``@gt.track`` or a ``with gt.track(...)`` block this is that run, so the
    function can open phases, log metrics and report progress without being handed the run::

        @gt.track(project="cifar")
        def train():
            run = gt.current_run()
            with run.phase("epoch"):
                run.log(step=1, loss=0.3)

    A nested run is returned while it runs, its parent again after it stops. Another thread
    (a data-loader worker, a callback thread) sees None unless it started a run itself (pass the
    run to it, or use :func:`active_runs`); an asyncio task sees the runs of the context it was
    created in.
    """
    with _ACTIVE_LOCK:
        for run in reversed(_CURRENT.get()):
            if run in _ACTIVE:
                return run
    return None


def plan_from_env() -> dict[str, Any] | None:
    """The schedule plan a parent process (``greentrack schedule``) gave this one in
    ``GREENTRACK_PLAN`` (JSON), or None."""
    raw = os.environ.get("GREENTRACK_PLAN")
    if not raw:
        return None
    try:
        plan = json.loads(raw)
    except ValueError:
        return None
    return plan if isinstance(plan, dict) else None


# -- signals and exit ------------------------------------------------------------------------
_SIGNALS_INSTALLED = False
_PREVIOUS: dict[int, Any] = {}
_FINALISING: list[object] = []  # one token per stop() in progress (list ops are atomic)
_DEFERRED: list[int] = []  # signals that arrived meanwhile, delivered once the last one ends


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """While a run is finalised, SIGTERM, SIGHUP and SIGINT are recorded instead of acted on
    (a second Ctrl-C or SIGTERM a few ms after the first must not kill the final write); when
    the last finalisation ends they are delivered again, in order, each once."""
    token = object()
    sigint_before: Any = None
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError, TypeError):
            sigint_before = signal.signal(signal.SIGINT, _on_signal)
    _FINALISING.append(token)
    try:
        yield
    finally:
        _FINALISING.remove(token)
        if sigint_before is not None:
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signal.SIGINT, sigint_before)
        if not _FINALISING and _DEFERRED:
            pending = list(dict.fromkeys(_DEFERRED))
            _DEFERRED.clear()
            for signum in pending:
                signal.raise_signal(signum)  # handled on the main thread, as if it came now


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM / SIGHUP: finalise active runs as ``interrupted``, then act as before. Any of
    them (and SIGINT, whose handler this is only while a run is finalised) arriving during a
    finalisation waits for its end."""
    if _FINALISING:
        _DEFERRED.append(signum)
        return
    if signum == signal.SIGINT:  # (a stale handler) act as Python does
        _chain(signum, frame)
        return
    token = object()
    _FINALISING.append(token)  # first thing: a second signal from here on is deferred
    try:
        for run in reversed(active_runs()):
            run.stop("interrupted", f"signal {signal.Signals(signum).name}")
    finally:
        _FINALISING.remove(token)
    _DEFERRED.clear()  # what arrived meanwhile is covered by acting on this one now
    _chain(signum, frame)


def _chain(signum: int, frame: Any) -> None:
    default = signal.default_int_handler if signum == signal.SIGINT else None
    previous = _PREVIOUS.get(signum, default)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_signal_handlers() -> None:
    """SIGTERM (and SIGHUP) finalise active runs as ``interrupted``, then act as before."""
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            _PREVIOUS[sig] = signal.signal(sig, _on_signal)
        except (ValueError, OSError):
            continue
    _SIGNALS_INSTALLED = True


_EXIT_HOOK = False


def _install_exit_hook() -> None:
    """Stop active runs at exit. Registered at the first start, hence after the store's own exit
    hook (which closes the shared connections): atexit runs the later one first."""
    global _EXIT_HOOK
    if not _EXIT_HOOK:
        _EXIT_HOOK = True
        atexit.register(_stop_at_exit)


def _stop_at_exit() -> None:
    for run in reversed(active_runs()):
        run.stop("finished" if run.error is None else "failed")


# -- fork --------------------------------------------------------------------------------------
def _after_fork_in_child() -> None:
    """A fork()ed child (a DataLoader worker, a multiprocessing pool, a bare os.fork) gets a
    copy of every active run, with locks possibly held by threads that do not exist in it.
    Each copy becomes inert: no threads, no writes, ``stop()`` and ``phase()`` do nothing, its
    locks are new; the parent's run is untouched. The child's own runs start afresh."""
    global _ACTIVE_LOCK
    _ACTIVE_LOCK = threading.Lock()
    runs = list(_ACTIVE)
    _ACTIVE.clear()
    _FINALISING.clear()
    _DEFERRED.clear()
    for run in runs:
        run._make_inert()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Listeners:
    """A run's listeners (see the module docstring): ``(name, listener)`` pairs, called with
    every exception contained."""

    def __init__(self) -> None:
        self._items: list[tuple[str, Any]] = []
        self._failed: set[str] = set()  # "name.method" already warned about
        self._lock = threading.Lock()

    def add(self, listener: Any, name: str | None = None) -> None:
        with self._lock:
            self._items.append((name or type(listener).__name__, listener))

    def __bool__(self) -> bool:
        return bool(self._items)

    def notify(self, run: Any, method: str, arg: Any) -> None:
        """Call ``method(run, arg)`` of every listener that has it; an exception becomes a
        warning on the run (once per listener and method)."""
        with self._lock:
            items = list(self._items)
        for name, listener in items:
            fn = getattr(listener, method, None)
            if fn is None:
                continue
            try:
                fn(run, arg)
            except Exception as e:  # an integration never breaks the run
                key = f"{name}.{method}"
                if key not in self._failed:
                    self._failed.add(key)
                    run.warn(f"{key} failed: {type(e).__name__}: {e}", "integration")

    def final(
        self, run: Any, cp: Any, summary: Any, thread_init: Callable[[], None]
    ) -> threading.Event | None:
        """At stop: the final checkpoint, then the summary, to the listeners, on a thread of
        their own beside the final write (``thread_init`` first there). Returns an event set when
        they are done; None when there are no listeners."""
        if not self._items:
            return None
        done = threading.Event()

        def work() -> None:
            thread_init()
            try:
                self.notify(run, "on_checkpoint", cp)
                self.notify(run, "on_stop", summary)
            finally:
                done.set()

        try:
            threading.Thread(target=work, name="greentrack-listeners", daemon=True).start()
        except RuntimeError:  # no new threads (interpreter shutting down): call them here
            work()
        return done

    def wait(self, run: Any, done: threading.Event | None, deadline: float) -> None:
        """Wait for :meth:`final` until ``deadline`` (monotonic s); past it, a warning."""
        if done is not None and not done.wait(max(0.0, deadline - time.monotonic())):
            run.warn("a listener did not finish within flush_timeout_s; left behind", "integration")


# -- listeners: the registry track() consults ---------------------------------------------------
ListenerFactory = Callable[[Any, Mapping[str, Any]], Any]
"""``factory(run, options) -> listener | None`` (see the module docstring)."""


class ListenerSpec(NamedTuple):
    """One integration in the registry (see the module docstring); immutable (a named tuple:
    cheaper to define than a dataclass, on every tracked process's start).

    Args:
        name: the integration's name (``mlflow``; also its config entry ``[integrations] name``).
        factory: ``"module:attribute"`` (imported only when the spec is consulted) or a callable.
        options: the ``track()`` / ``Run`` keywords it takes (``mlflow``, ``prometheus_port``).
        modules: consult it when one of these modules is already imported (``mlflow``).
        env: consult it when one of these environment variables is set.
    """

    name: str
    factory: str | ListenerFactory
    options: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    env: tuple[str, ...] = ()

    def consulted(self, options: Mapping[str, Any], config: Any) -> bool:
        """Whether this spec applies to a run given ``options`` (the run's integration keywords)
        and ``config`` (its :class:`~greentrack.config.Config`): a cheap check, no import."""
        if any(k in options for k in self.options):
            return True
        wanted = getattr(config, "integrations", None)
        if isinstance(wanted, Mapping) and wanted.get(self.name):
            return True
        return any(m in sys.modules for m in self.modules) or any(
            os.environ.get(v) for v in self.env
        )

    def load(self) -> ListenerFactory:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


#: The built-in integrations: one line each (``ListenerSpec(name, "module:factory", ...)``).
LISTENERS: dict[str, ListenerSpec] = {
    s.name: s
    for s in (
        ListenerSpec(
            "prometheus",
            "greentrack.integrations.prometheus:listener",
            options=("prometheus_port",),
            env=("GREENTRACK_PROMETHEUS_PORT",),
        ),
        ListenerSpec(
            "mlflow",
            "greentrack.integrations.mlflow:listener",
            options=("mlflow",),
            modules=("mlflow",),
        ),
        ListenerSpec(
            "tensorboard", "greentrack.integrations.tensorboard:listener", options=("tensorboard",)
        ),
        ListenerSpec(
            "wandb",
            "greentrack.integrations.wandb:listener",
            options=("wandb",),
            modules=("wandb",),
        ),
    )
}


def register_listener(spec: ListenerSpec) -> None:
    """Add (or replace, by name) an integration in the registry :data:`LISTENERS`."""
    LISTENERS[spec.name] = spec


def split_options(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(the Run keywords, the integrations' keywords)`` of ``track(**kwargs)``: a keyword some
    registered integration takes goes to the second; any other stays (an unknown one is then
    Run's TypeError, as before)."""
    known = {k for spec in LISTENERS.values() for k in spec.options}
    run_kw = {k: v for k, v in kwargs.items() if k not in known}
    return run_kw, {k: v for k, v in kwargs.items() if k in known}


def listeners_for(run: Any, options: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``[(name, listener)]`` of every registered integration that applies to ``run`` (called by
    ``Run.start()``). A factory's GreentrackError propagates; its other exceptions become a warning
    on the run."""
    out: list[tuple[str, Any]] = []
    for spec in list(LISTENERS.values()):
        if not spec.consulted(options, run.config):
            continue
        given = {k: options[k] for k in spec.options if k in options}
        try:
            listener = spec.load()(run, given)
        except GreentrackError:
            raise
        except Exception as e:  # an integration's failure never reaches the user's code
            run.warn(f"integration {spec.name} not started: {type(e).__name__}: {e}", "integration")
            continue
        if listener is not None:
            out.append((spec.name, listener))
    return out
