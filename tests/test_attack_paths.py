"""Issue 11 item 11: no path traversal. Run ids are ``[A-Za-z0-9_-]{1,32}``, checked when a run
starts (a one-line error before the user's code runs) and again where a file is named after a
stored id, so a run row written into a shared store by anyone cannot make ``greentrack
dashboard``, ``report`` or ``export`` write outside their output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.errors import ConfigError
from greentrack.meters import ReplayMeter
from greentrack.security import safe_filename
from greentrack.store.writer import StoreWriter

# relative traversals only: an absolute id (``/x``) is refused alike (see the safe_filename test),
# but on a regression it would write at the file system's root
EVIL_IDS = ("../../evil", "../../../tmp-evil", "a/b", "..", "e\\..\\v")


def _meter() -> ReplayMeter:
    return ReplayMeter([(0.0, {"gpu:0": 10.0})])


@pytest.mark.parametrize("bad", ["../../x", "a/b", "", "x" * 33, "id with space", "é", "a.b"])
def test_a_bad_greentrack_run_id_is_a_one_line_error_before_the_code_runs(
    bad: str, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("GREENTRACK_RUN_ID", bad)
    ran = []
    if bad == "":  # empty means unset: the run gets its own id
        with gt.track("ok", db=sqlite_url, meters=[_meter()]) as run:
            ran.append(1)
        assert ran and len(run.id) == 32
        return
    with pytest.raises(ConfigError) as e, gt.track("x", db=sqlite_url, meters=[_meter()]):
        ran.append(1)
    assert ran == []
    msg = str(e.value)
    assert "\n" not in msg and "GREENTRACK_RUN_ID" in msg and "A-Z, a-z, 0-9" in msg
    with pytest.raises(ConfigError, match="run_id="):
        gt.track("x", db=sqlite_url, run_id=bad, meters=[_meter()]).start()


def test_greentrack_run_refuses_a_traversing_run_id_before_starting_the_command(
    tmp_path: Path, sqlite_url: str
) -> None:
    marker = tmp_path / "child-ran"
    env = dict(os.environ, GREENTRACK_RUN_ID="../../x")
    done = subprocess.run(
        [sys.executable, "-m", "greentrack", "run", "--db", sqlite_url, "--", sys.executable,
         "-c", f"open({str(marker)!r}, 'w').close()"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and not marker.exists()
    assert done.stderr.startswith("Error: GREENTRACK_RUN_ID='../../x' is not a valid run id")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_valid_custom_run_id_is_kept_and_shown_by_its_full_id(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("GREENTRACK_RUN_ID", "Job-42_resume")
    with gt.track("ok", db=sqlite_url, meters=[_meter()]) as run:
        pass
    assert run.id == "Job-42_resume"
    result = CliRunner().invoke(main, ["show", "Job-42_resume", "--db", sqlite_url, "--format",
                                       "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id"] == "Job-42_resume"


def _plant_evil_runs(url: str) -> None:
    """Runs whose ids traverse, written into the store directly (as greentrack 0.1.x or anyone
    with write access to a shared store could): the writer takes any id."""
    from tests_helpers import checkpoint

    writer = StoreWriter(url)
    try:
        for i, rid in enumerate(EVIL_IDS):
            cp = checkpoint(rid, energy_j=10.0 + i, sample=True)
            cp.run["project"] = "evil"
            writer.write(cp)
    finally:
        writer.close()


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_dashboard_report_and_export_never_write_outside_their_folder(
    store_url: str, tmp_path: Path
) -> None:
    with gt.track("honest", project="evil", db=store_url, meters=[_meter()]) as good:
        pass
    _plant_evil_runs(store_url)
    work = tmp_path / "deep" / "er" / "work"
    work.mkdir(parents=True)
    site, out = work / "site", work / "out"
    before = _files(tmp_path)
    runner = CliRunner()
    for args in (
        ["dashboard", "--all", "-o", str(site)],
        ["dashboard", "-o", str(site), "--project", "evil"],
        ["report", "--project", "evil", "--format", "html", "-o", str(out / "r.html")],
        ["report", "--project", "evil", "--format", "latex", "-o", str(out / "r.tex")],
        ["report", "--project", "evil", "--format", "json", "-o", str(out / "r.json")],
        ["export", "--format", "csv", "-o", str(out / "e.csv")],
        ["export", "--format", "json", "-o", str(out / "e.json")],
    ):
        result = runner.invoke(main, [*args, "--db", store_url])
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output
    written = _files(tmp_path) - before
    outside = {p for p in written if not (p.is_relative_to(site) or p.is_relative_to(out))}
    assert outside == set(), outside
    pages = {p.name for p in (site / "runs").iterdir()}
    assert pages == {f"{good.id}.html"}  # the planted ids get no page...
    index = (site / "index.html").read_text("utf-8")
    assert "e\\\\..\\\\v" in index or "evil" in index  # ...but are listed (escaped) in the index
    exported = json.loads((out / "e.json").read_text("utf-8"))
    assert {o["id"] for o in exported} >= {*EVIL_IDS, good.id}  # data kept, names safe


def test_safe_filename_keeps_valid_ids_and_flattens_the_rest() -> None:
    assert safe_filename("3f2a9b") == "3f2a9b"
    for bad in (*EVIL_IDS, "/abs-evil", "~root", "a\x00b", "\ud800", "x" * 300):
        name = safe_filename(bad)
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        assert len(name) <= 53 and Path(name).name == name
    assert safe_filename("a/b") != safe_filename("a_b")  # the hash tells them apart


def test_the_distributed_placement_refuses_a_traversing_run_id() -> None:
    from greentrack.distributed import place

    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    with pytest.raises(ConfigError, match="not a valid run id"):
        place("../../x", env=env)
    assert place("job-7", env=env).run_id == "job-7"
