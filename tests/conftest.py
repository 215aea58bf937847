"""Shared fixtures: an isolated GREENTRACK_HOME per test, and stores on SQLite and PostgreSQL.

PostgreSQL tests use the server on 127.0.0.1:5432 (database ``test``), each in a fresh schema.
They fail when it is unreachable; set ``GREENTRACK_TEST_POSTGRES=skip`` to skip them instead
(CI sets ``require``).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "grid-intensity"
sys.path.insert(0, str(TESTS))

pytest_plugins = ["fakes.fixtures"] if (TESTS / "fakes" / "fixtures.py").exists() else []

PG_BASE = os.environ.get("GREENTRACK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def gt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own GREENTRACK_HOME, no RAPL (an empty sysfs) and no stray settings."""
    home = tmp_path / "gthome"
    monkeypatch.setenv("GREENTRACK_HOME", str(home))
    empty_sysfs = tmp_path / "no-sysfs"
    empty_sysfs.mkdir()
    monkeypatch.setenv("GREENTRACK_SYSFS", str(empty_sysfs))
    for var in (
        "GREENTRACK_DB",
        "GREENTRACK_REGION",
        "GREENTRACK_PUE",
        "GREENTRACK_PROVIDER",
        "GREENTRACK_INTERVAL_S",
        "GREENTRACK_RUN_ID",
        "GREENTRACK_PLAN",
        "GREENTRACK_PROJECT",
        "ELECTRICITYMAPS_TOKEN",
        "WATTTIME_USERNAME",
        "WATTTIME_PASSWORD",
        "GREENTRACK_NODE_METER",  # whole-node power: off unless a test sets it
        "GREENTRACK_NODE_POLL_S",
        "GREENTRACK_NODE_TIMEOUT_S",
        "GREENTRACK_IPMITOOL",
        "GREENTRACK_REDFISH_URL",
        "GREENTRACK_REDFISH_USER",
        "GREENTRACK_REDFISH_PASSWORD",
        "GREENTRACK_REDFISH_CHASSIS",
        "GREENTRACK_REDFISH_VERIFY",
        "GREENTRACK_REDFISH_CA",
        "GREENTRACK_FLUSH_TIMEOUT_S",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


def _pg_admin():
    import psycopg

    return psycopg.connect(
        PG_BASE.replace("postgresql+psycopg://", "postgresql://"),
        autocommit=True,
        connect_timeout=3,
    )


@pytest.fixture(scope="session")
def pg_available() -> bool:
    try:
        _pg_admin().close()
        return True
    except Exception as e:
        if os.environ.get("GREENTRACK_TEST_POSTGRES", "require") == "skip":
            pytest.skip(f"PostgreSQL unavailable ({e}) and GREENTRACK_TEST_POSTGRES=skip")
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_BASE} ({e}); start it (see .ci/run) or set "
            "GREENTRACK_TEST_POSTGRES=skip"
        )


@pytest.fixture
def pg_url(pg_available: bool):
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schema = "gt_" + uuid.uuid4().hex[:12]
    with _pg_admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    _drop_schema(schema)


def _drop_schema(schema: str) -> None:
    """Drop a test's schema without waiting forever on a session the test left holding a lock
    (an attack test's orphaned "idle in transaction" session): after a bounded wait, such sessions
    are terminated and the drop is tried again."""
    import psycopg

    with _pg_admin() as conn:
        conn.execute("SET lock_timeout = '10s'")
        try:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            return
        except psycopg.errors.LockNotAvailable:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid() "
                "AND state LIKE 'idle in transaction%'"
            )
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: CI clones with ../shared beside the checkout")
    return SHARED_DATA
