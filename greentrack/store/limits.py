"""The store's limits, as plain constants: the models' column lengths and the call-site checks.

:mod:`greentrack.store.models` sizes its columns with these constants, and the tracker checks
what a user gives (``track(name=...)``, ``run.phase(...)``, ``run.log(...)``) against them at the
call, with a one-line error, rather than sending a checkpoint the database refuses later.
``tests/test_store_limits.py`` checks that every text column of the models has its limit here.

Nothing here imports SQLAlchemy: a tracked run's start never loads it.
"""

from __future__ import annotations

import operator
from typing import Any

from greentrack.errors import GreentrackError
from greentrack.security import RUN_ID_MAX, storable, unstorable

__all__ = [
    "CO2E_BASIS_MAX",
    "COMPONENT_MAX",
    "DEVICE_MAX",
    "HOST_MAX",
    "LEVEL_MAX",
    "METHOD_MAX",
    "NAME_MAX",
    "PATH_MAX",
    "REGION_MAX",
    "REGION_ORIGIN_MAX",
    "ROW_ID_LEN",
    "RUN_ID_MAX",
    "SOURCE_MAX",
    "STATUS_MAX",
    "STEP_MAX",
    "STEP_MIN",
    "check_name",
    "check_step",
]

# RUN_ID_MAX (32 characters of [A-Za-z0-9_-]) is defined with the run-id check, on the ground
# floor (greentrack.security): the CLI validates ids without loading the store.
ROW_ID_LEN = 32
"""Length of the other row ids (phases, events, metrics): 32 hex digits. Units: chars."""
NAME_MAX = 200
"""Longest run, project, phase, metric, parameter and tag name (and device model) the store
keeps. Units: chars."""
PATH_MAX = 1000
"""Longest nested phase path (``epoch/eval/...``) the store keeps. Units: chars."""
STATUS_MAX = 16
"""Longest run status (``interrupted``). Units: chars."""
COMPONENT_MAX = 16
"""Longest component kind (``gpu``, ``cpu``, ``dram``). Units: chars."""
METHOD_MAX = 16
"""Longest measurement method (``counter``, ``sampled``, ``estimated``). Units: chars."""
CO2E_BASIS_MAX = 32
"""Longest CO2e basis (``node+components``). Units: chars."""
DEVICE_MAX = 64
"""Longest device id (``gpu:0``, ``cpu:package-0``). Units: chars."""
HOST_MAX = 255
"""Longest host name (a DNS name). Units: chars."""
REGION_MAX = 64
"""Longest grid zone (``US-CAL-CISO``, ``gcp:europe-west1``). Units: chars."""
REGION_ORIGIN_MAX = 32
"""Longest note of where the zone came from (``argument``, ``csv``, ...). Units: chars."""
LEVEL_MAX = 16
"""Longest event level (``warning``). Units: chars."""
SOURCE_MAX = 64
"""Longest event source (``store``, ``carbon``, a meter's name). Units: chars."""
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1
"""Range of a metric step: a signed 64-bit integer (the column is a BIGINT)."""


def check_name(what: str, name: str, error: type[GreentrackError] = GreentrackError) -> str:
    """``name`` if the store can keep it; otherwise a one-line error at the caller's line (rather
    than a checkpoint the database refuses later)."""
    if not name or len(name) > NAME_MAX:
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise error(
            f"{what} {storable(shown)!r} is {len(name)} characters long; use 1 to {NAME_MAX} "
            "characters"
        )
    if not name.isascii() or "\x00" in name:
        bad = unstorable(name)
        if bad:
            raise error(
                f"{what} {storable(name[:40])!r} {bad}, which the store cannot hold; remove it"
            )
    return name


def check_step(step: Any) -> int:
    """A metric step: an integer that fits in 64 bits (tokens seen are fine)."""
    try:
        value = operator.index(step)
    except TypeError:
        raise GreentrackError(
            f"run.log(step={step!r}): the step must be an integer (e.g. the global step)"
        ) from None
    if not STEP_MIN <= value <= STEP_MAX:
        raise GreentrackError(f"run.log(step={step}): the step must fit in 64 bits")
    return value
