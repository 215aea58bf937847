"""The wheel carries everything a user needs: migrations, data tables, templates, the corpus;
and the public API is what `greentrack/__init__.py` promises."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import greentrack

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("greentrack-*.whl")
    return path


def test_wheel_contains_migrations_and_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "greentrack/migrations/env.py",
        "greentrack/migrations/script.py.mako",
        "greentrack/migrations/versions/0001_initial.py",
        "greentrack/migrations/versions/0002_metric_step_bigint.py",
        "greentrack/data/countries.csv",
        "greentrack/report/templates/methodology.bib",
        "greentrack/py.typed",
    ):
        assert required in names, required
    assert any(n.startswith("greentrack/workloads/") and n.endswith(".txt") for n in names)


def test_installed_wheel_creates_a_database_outside_the_checkout(wheel: Path, tmp_path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site), GREENTRACK_HOME=str(tmp_path / "home"))
    code = (
        "import greentrack, greentrack.store.schema as s; "
        "assert greentrack.__file__.startswith({!r}), greentrack.__file__; "
        "print(s.migrations_dir()); print(s.upgrade('sqlite:///{}'))"
    ).format(str(site), tmp_path / "w.db")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    migrations, revision = done.stdout.split()
    from greentrack.store.schema import SCHEMA_REVISION

    assert migrations.startswith(str(site)) and revision == SCHEMA_REVISION


def test_public_api() -> None:
    expected = {
        "track",
        "Run",
        "RunSummary",
        "ComponentEnergy",
        "PhaseSummary",
        "current_run",
        "active_runs",
        "plan",
        "study",
        "runs_frame",
        "samples_frame",
        "count_flops",
        "errors",
        "GreentrackError",
    }
    assert set(greentrack.__all__) == expected
    for name in greentrack.__all__:
        assert getattr(greentrack, name) is not None, name


def test_import_is_light() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import greentrack, greentrack.cli; "
        "dt = time.perf_counter() - t; heavy = [m for m in ('numpy', 'pandas', 'matplotlib', "
        "'torch', 'sqlalchemy', 'codecarbon', 'psutil', 'pynvml') if m in sys.modules]; "
        "print(dt, heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    dt, heavy = done.stdout.split(" ", 1)
    assert heavy.strip() == "[]"
    assert float(dt) < 0.5  # the budget is 100 ms; the bound leaves room for a loaded CI machine


def test_a_tracked_run_on_the_default_path_loads_nothing_heavy(tmp_path) -> None:
    """Start + stop with the offline (static) intensity: CO2e is accounted without numpy, the
    store is written without SQLAlchemy, and no BMC meter (ssl, urllib) loads where none is
    configured — the fixed cost a trivial tracked function pays."""
    code = (
        "import sys, greentrack as gt; s = gt.track('t', region='ES').start().stop(); "
        "assert s.co2e_g is not None and s.co2e_g > 0, s; "
        "print([m for m in ('numpy', 'pandas', 'torch', 'sqlalchemy', 'alembic', 'codecarbon', "
        "'psutil', 'pynvml', 'ssl', 'urllib.request', 'greentrack.meters.ipmi', "
        "'greentrack.meters.redfish') if m in sys.modules])"
    )
    env = dict(
        os.environ, GREENTRACK_HOME=str(tmp_path), GREENTRACK_DB=f"sqlite:///{tmp_path}/r.db"
    )
    subprocess.run([sys.executable, "-m", "greentrack", "db", "upgrade"], env=env, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


INTEGRATION_MODULES = ("prometheus_client", "mlflow", "wandb", "tensorboard", "jsonschema")


def test_integrations_cost_nothing_when_unused(tmp_path) -> None:
    """Neither ``import greentrack`` nor a tracked run without integrations imports any
    integration's package (the registry names them by string; nothing is consulted)."""
    code = (
        "import sys, greentrack as gt, greentrack.cli; "
        "gt.track('t', region='ES').start().stop(); "
        f"print([m for m in {INTEGRATION_MODULES!r} if m in sys.modules])"
    )
    env = dict(
        os.environ, GREENTRACK_HOME=str(tmp_path), GREENTRACK_DB=f"sqlite:///{tmp_path}/r.db"
    )
    env.pop("GREENTRACK_PROMETHEUS_PORT", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_wheel_ships_the_licences_of_its_code_and_data(wheel: Path) -> None:
    """Apache-2.0 for the code; the data tables' own licences (AGPL-3.0 for Boavizta's CPU
    specifications) beside them, named file by file."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        notes = z.read("greentrack/data/LICENSES.md").decode()
        licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert "Apache License" in z.read(licence).decode()
    assert "`cpu_specs.csv` | **AGPL-3.0**" in notes and "15878f0" in notes


def test_wheel_ships_the_boamps_schemas_with_their_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("report", "measure", "hardware", "algorithm", "dataset"):
        assert f"greentrack/data/boamps/{name}_schema.json" in names, name
    assert "greentrack/data/boamps/LICENSE.md" in names
    assert "greentrack/data/boamps/README.md" in names
