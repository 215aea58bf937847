"""pandas access (gt.runs_frame, gt.samples_frame) and `greentrack export` (CSV, Parquet, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.errors import ConfigError, RunLookupError
from greentrack.report.export import export
from greentrack.report.frames import RUN_COLUMNS
from greentrack.testing.synthetic import demo_project, write_runs


@pytest.fixture
def demo_store(store_url: str) -> str:
    write_runs(store_url, demo_project())
    return store_url


def test_runs_frame(demo_store: str) -> None:
    df = gt.runs_frame(project="cifar", db=demo_store)
    assert len(df) == 7 and list(df.columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
    assert df["started_at"].is_monotonic_increasing  # oldest first
    assert str(df["started_at"].dt.tz) == "UTC"
    assert {"metric_accuracy", "metric_loss", "param_lr", "param_seed", "tag_final"} <= set(df)
    assert df["param_lr"].dtype.kind == "f" and df["param_seed"].dtype.kind in "if"
    assert df["energy_kwh"].sum() == pytest.approx(
        df[["energy_gpu_kwh", "energy_cpu_kwh", "energy_ram_kwh"]].sum().sum()
    )
    assert df["facility_energy_kwh"].tolist() == pytest.approx((df["energy_kwh"] * 1.2).tolist())
    assert set(df["methods"]) == {"counter,estimated"}
    assert set(df["intensity_source"]) == {"csv"} and set(df["intensity_kind"]) == {"average"}
    final = df[df["tag_final"] == "true"]
    assert final["id"].str[:8].tolist() == ["3f2a0000"]
    assert len(gt.runs_frame("cifar", db=demo_store, tags={"final": "true"})) == 1
    assert len(gt.runs_frame("cifar", db=demo_store, tags=["final=true"], limit=5)) == 1
    assert len(gt.runs_frame(db=demo_store, status="finished")) == 7
    assert gt.runs_frame("nope", db=demo_store).empty
    with pytest.raises(ConfigError, match="unknown runs_frame filter"):
        gt.runs_frame(db=demo_store, colour="red")


def test_samples_frame(demo_store: str) -> None:
    s = gt.samples_frame("3f2a0000", db=demo_store)
    assert list(s.columns) == ["t", "t_s", "rank", "device", "component", "energy_j", "power_w"]
    assert set(s["device"]) == {"gpu:0", "gpu:1", "cpu:0", "ram:estimate"}
    assert len(s) == 4 * 61
    assert str(s["t"].dt.tz) == "UTC"
    last = s.groupby("device")["energy_j"].max().sum()
    run = gt.runs_frame("cifar", db=demo_store).set_index("id").loc["3f2a0000" + "0" * 24]
    assert last == pytest.approx(run["energy_j"])  # the samples end at the run's energy
    with pytest.raises(RunLookupError):
        gt.samples_frame("ffff", db=demo_store)


def test_export_formats(sqlite_url: str, tmp_path: Path) -> None:
    write_runs(sqlite_url, demo_project())
    r = export(tmp_path / "runs.csv", db_url=sqlite_url)
    assert r.fmt == "csv" and r.rows == 7
    back = pd.read_csv(tmp_path / "runs.csv")
    assert len(back) == 7 and back["energy_kwh"].sum() == pytest.approx(
        gt.runs_frame(db=sqlite_url)["energy_kwh"].sum()
    )
    r = export(tmp_path / "runs.parquet", db_url=sqlite_url, project="cifar")
    pq = pd.read_parquet(tmp_path / "runs.parquet")
    assert r.fmt == "parquet" and len(pq) == 7 and str(pq["started_at"].dt.tz) == "UTC"
    r = export(None, fmt="json", db_url=sqlite_url)
    rows = json.loads(r.text)
    assert len(rows) == 7 and rows[0]["project"] == "cifar"
    r = export(tmp_path / "s.csv", db_url=sqlite_url, samples_of="3f2a0000")
    assert r.rows == 244
    with pytest.raises(ConfigError, match="Parquet is binary"):
        export(None, fmt="parquet", db_url=sqlite_url)
    with pytest.raises(ConfigError, match="unknown export format"):
        export(None, fmt="xlsx", db_url=sqlite_url)


def test_export_command(sqlite_url: str, tmp_path: Path) -> None:
    write_runs(sqlite_url, demo_project())
    result = CliRunner().invoke(main, ["export", "--format", "csv", "--db", sqlite_url])
    assert result.exit_code == 0 and result.output.startswith("id,project,name,status")
    assert len(result.output.strip().splitlines()) == 8
    out = tmp_path / "runs.parquet"
    result = CliRunner().invoke(
        main, ["export", "-o", str(out), "--db", sqlite_url, "--tag", "final=true"]
    )
    assert result.exit_code == 0 and len(pd.read_parquet(out)) == 1
    result = CliRunner().invoke(main, ["export", "--format", "parquet", "--db", sqlite_url])
    assert result.exit_code == 1 and "Parquet is binary" in result.output
