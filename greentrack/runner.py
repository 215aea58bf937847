"""``greentrack run -- CMD``: track any command as a child process.

The child's energy is what the meters see while it runs (devices are measured whole, like every
meter here). Signals sent to greentrack (Ctrl-C, SIGTERM, SIGHUP) are forwarded to the child and
the run ends ``interrupted``; the child's exit code is returned (128 + N when a signal killed it).
The child gets ``GREENTRACK_PARENT_RUN`` (and ``GREENTRACK_PLAN`` when a schedule plan is given,
so that ``run.should_pause()`` in the child follows it).

Bad input (an unknown region, CSV data for another zone or not covering now) raises before the
command starts. When the command ends, one line on stderr gives the run id, its status, energy
(and how it was obtained) and CO2e (and from what intensity source).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from greentrack.errors import ConfigError

__all__ = ["run_command", "summary_line"]

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_command(
    argv: Sequence[str],
    *,
    project: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    region: str | None = None,
    db_url: str | None = None,
    plan: Mapping[str, Any] | None = None,
    interval_s: float | None = None,
    cpu_share: str | None = None,
    on_started: Callable[[Any, subprocess.Popen[bytes]], Any] | None = None,
    source: str | None = None,
    csv: Sequence[str] | None = None,
    csv_options: Mapping[str, Any] | None = None,
    integrations: Mapping[str, Any] | None = None,
    out: IO[str] | None = None,
) -> int:
    """Run ``argv`` tracked; return its exit code.

    Args:
        source, csv, csv_options: the intensity source the run is accounted on (as for
            :class:`~greentrack.run.Run`); a scheduled command passes its plan's.
        out: where the closing summary line goes (default: stderr).
        integrations: the integrations' keywords (``{"prometheus_port": 9464}``), as ``track()``
            takes them (see :mod:`greentrack.lifecycle`).
        on_started: called with ``(run, child)`` once the child runs; it may return an object with
            ``poll()`` (called every 0.2 s while waiting, e.g. a SIGSTOP/SIGCONT pause controller)
            and ``release()`` (called before signals are forwarded and at the end).
    """
    from greentrack.config import load_config
    from greentrack.metadata import mask_argv, secret_values
    from greentrack.run import Run

    if not argv:
        raise ConfigError("no command given: greentrack run [OPTIONS] -- CMD [ARGS...]")
    config = load_config()
    secrets = secret_values(config.providers)
    run = Run(
        name or os.path.basename(argv[0]),
        project=project,
        params=params,
        tags={**(tags or {}), "command": " ".join(mask_argv(list(argv), secrets))[:500]},
        region=region,
        db=db_url,
        interval_s=interval_s,
        cpu_share=cpu_share,
        config=config,
        source=source,
        csv=list(csv or []),
        csv_options=csv_options,
        integrations=integrations,
    )
    if plan:
        run.set_plan(plan)
    env = dict(os.environ)
    env["GREENTRACK_PARENT_RUN"] = run.id
    if plan:
        env["GREENTRACK_PLAN"] = json.dumps(plan, default=str)
    run.start()
    try:
        child = subprocess.Popen(list(argv), env=env)
    except OSError as e:
        run.stop("failed", f"cannot start {argv[0]!r}: {e.strerror or e}")
        raise ConfigError(f"cannot start {argv[0]!r}: {e.strerror or e}") from None
    run.follow_children()  # cpu_share="process": count the child from its first reading
    received: list[int] = []
    controller = on_started(run, child) if on_started else None

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if controller is not None and hasattr(controller, "release"):
            controller.release()
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in _FORWARDED}
    try:
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if controller is not None and hasattr(controller, "poll"):
                    controller.poll()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if controller is not None and hasattr(controller, "release"):
            controller.release()
    if received:
        status, error = "interrupted", f"signal {signal.Signals(received[0]).name} forwarded"
    elif code == 0:
        status, error = "finished", None
    elif code < 0:
        status, error = "failed", f"killed by {signal.Signals(-code).name}"
    else:
        status, error = "failed", f"exit code {code}"
    run.set_tags(exit_code=code)
    summary = run.stop(status, error)
    rc = 128 - code if code < 0 else code
    target = out if out is not None else sys.stderr
    try:
        target.write(summary_line(summary, rc) + "\n")
        target.flush()
    except (OSError, ValueError):  # a closed stderr never changes the command's exit code
        pass
    time.sleep(0)
    return rc


def summary_line(summary: Any, code: int | None = None) -> str:
    """One line for a finished run: ``greentrack: run 3f2a1b2c finished (exit 0) in 2.1 s:
    41.5 J [counter,estimated], CO2e 0.0198 g (codecarbon-static ES); greentrack show 3f2a1b2c``.

    ``summary`` is a :class:`~greentrack.summary.RunSummary`; energy is device energy (before
    PUE), the methods are its components' (counter, sampled, estimated).
    """
    from greentrack.units import format_co2e, format_energy

    methods = ",".join(sorted({c.method for c in summary.components})) or "no meter"
    exit_part = f" (exit {code})" if code is not None else ""
    if summary.co2e_g is not None:
        src = summary.intensity_source or {}
        label = " ".join(str(x) for x in (src.get("name"), src.get("zone")) if x)
        carbon = f"CO2e {format_co2e(summary.co2e_g)}" + (f" ({label})" if label else "")
    else:
        carbon = "CO2e not computed (see the run's warnings)"
    return (
        f"greentrack: run {summary.id[:8]} {summary.status}{exit_part} in "
        f"{summary.duration_s:.1f} s: {format_energy(summary.energy_j)} [{methods}], {carbon}; "
        f"greentrack show {summary.id[:8]}"
    )
