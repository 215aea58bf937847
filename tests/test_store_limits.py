"""The store's limits (greentrack.store.limits): the models' column lengths come from them, and
the call-site checks use the same figures, without loading SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import String

import greentrack as gt
from greentrack.errors import ConfigError, GreentrackError
from greentrack.meters import ReplayMeter
from greentrack.store import limits
from greentrack.store.models import Base

#: (table, column) -> its limit; every String column of the models must be listed
EXPECTED = {
    ("runs", "id"): limits.RUN_ID_MAX,
    ("runs", "project"): limits.NAME_MAX,
    ("runs", "name"): limits.NAME_MAX,
    ("runs", "status"): limits.STATUS_MAX,
    ("runs", "region"): limits.REGION_MAX,
    ("runs", "region_origin"): limits.REGION_ORIGIN_MAX,
    ("runs", "host"): limits.HOST_MAX,
    ("runs", "co2e_basis"): limits.CO2E_BASIS_MAX,
    ("components", "host"): limits.HOST_MAX,
    ("components", "component"): limits.COMPONENT_MAX,
    ("components", "device"): limits.DEVICE_MAX,
    ("components", "method"): limits.METHOD_MAX,
    ("components", "model"): limits.NAME_MAX,
    ("phases", "id"): limits.ROW_ID_LEN,
    ("phases", "name"): limits.NAME_MAX,
    ("phases", "path"): limits.PATH_MAX,
    ("samples", "device"): limits.DEVICE_MAX,
    ("samples", "component"): limits.COMPONENT_MAX,
    ("metrics", "id"): limits.ROW_ID_LEN,
    ("metrics", "key"): limits.NAME_MAX,
    ("params", "key"): limits.NAME_MAX,
    ("tags", "key"): limits.NAME_MAX,
    ("events", "id"): limits.ROW_ID_LEN,
    ("events", "level"): limits.LEVEL_MAX,
    ("events", "source"): limits.SOURCE_MAX,
}


def test_every_text_column_of_the_models_has_its_limit() -> None:
    found = {
        (table.name, col.name): col.type.length
        for table in Base.metadata.tables.values()
        for col in table.columns
        if isinstance(col.type, String) and col.type.length is not None and not col.foreign_keys
    }
    assert found == EXPECTED


def test_the_limits_load_without_sqlalchemy() -> None:
    code = "import sys, greentrack.store.limits; assert 'sqlalchemy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_tracker_checks_names_and_paths_against_the_same_limits(sqlite_url) -> None:
    longest = "n" * limits.NAME_MAX
    with pytest.raises(ConfigError, match=f"use 1 to {limits.NAME_MAX} characters"):
        gt.track(longest + "n", db=sqlite_url).start()
    with gt.track(longest, db=sqlite_url, meters=[ReplayMeter([(0.0, {"gpu:0": 1.0})])]) as run:
        with pytest.raises(GreentrackError, match=f"use 1 to {limits.NAME_MAX}"):
            run.log(**{longest + "n": 1.0})
        with pytest.raises(GreentrackError, match="must fit in 64 bits"):
            run.log(step=limits.STEP_MAX + 1, loss=1.0)
        run.log(step=limits.STEP_MAX, loss=1.0)
        depth = limits.PATH_MAX // (limits.NAME_MAX + 1) + 1
        too_deep = Nested(run, longest, depth)
        with pytest.raises(GreentrackError, match=f"keeps paths up to {limits.PATH_MAX}"), too_deep:
            pass


class Nested:
    """``depth`` nested phases named ``name``."""

    def __init__(self, run: gt.Run, name: str, depth: int) -> None:
        self.run, self.name, self.depth = run, name, depth
        self.stack: list = []

    def __enter__(self) -> None:
        for _ in range(self.depth):
            cm = self.run.phase(self.name)
            cm.__enter__()
            self.stack.append(cm)

    def __exit__(self, *exc: object) -> None:
        while self.stack:
            self.stack.pop().__exit__(*exc)
