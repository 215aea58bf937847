"""``greentrack report RUN --format boamps``: a BoAmps report valid against Boavizta's JSON Schemas
(validated offline with a local registry of the five schemas shipped in the package), with the
shape of BoAmps' own example report, and figures equal to the run's."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.meters import ReplayMeter
from greentrack.report import boamps

if os.environ.get("GREENTRACK_TEST_INTEGRATIONS") != "require":  # CI: a missing package fails
    pytest.importorskip("jsonschema", reason="pip install -e '.[boamps]'")
import jsonschema


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to fetch a schema fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    import socket

    monkeypatch.setattr(socket, "create_connection", refuse)


def tracked(url: str) -> gt.RunSummary:
    meter = ReplayMeter(
        [(0.0, {"gpu:0": 250.0, "cpu:package-0": 50.0, "dram:package-0": 5.0})], method="counter"
    )
    with gt.track(
        "bert-ft",
        project="nlp",
        region="ES",
        db=url,
        meters=[meter],
        checkpoint_s=0.05,
        pue=1.2,
        tags={"task_family": "text classification", "data_type": "text"},
    ) as run:
        with run.phase("epoch"):
            with run.phase("train"):
                time.sleep(0.05)
            with run.phase("validate"):
                time.sleep(0.02)
        run.log(step=1, val_acc=0.87)
    return run.summary()


def report(url: str, *args: str) -> dict[str, Any]:
    res = CliRunner().invoke(main, ["report", *args, "--format", "boamps", "--db", url])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def shape(obj: Any) -> Any:
    """The JSON type tree of ``obj`` (lists: the union of their items' shapes)."""
    if isinstance(obj, dict):
        return {k: shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        merged: dict[str, Any] = {}
        for item in obj:
            s = shape(item)
            if isinstance(s, dict):
                merged.update(s)
            else:
                return [s]
        return [merged]
    if isinstance(obj, bool):
        return "boolean"
    if isinstance(obj, int | float):
        return "number"
    return type(obj).__name__


def common_paths_agree(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Paths present in both whose JSON types differ."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [
            p
            for k in ours.keys() & theirs.keys()
            for p in common_paths_agree(ours[k], theirs[k], f"{path}.{k}")
        ]
    if isinstance(ours, list) and isinstance(theirs, list):
        return common_paths_agree(ours[0], theirs[0], path + "[]")
    return [] if ours == theirs else [f"{path}: {ours} vs {theirs}"]


def test_report_is_valid_boamps_offline_and_carries_the_runs_figures(
    sqlite_url: str, no_network: None
) -> None:
    s = tracked(sqlite_url)
    doc = report(sqlite_url, s.id[:8])
    boamps.validate(doc)  # raises on any violation; the registry holds all five schemas

    assert doc["header"]["reportStatus"] == "final"
    assert doc["task"]["taskStage"] == "training"  # from the phase names epoch/train
    assert doc["task"]["taskFamily"] == "text classification"
    assert doc["task"]["dataset"] == [{"dataUsage": "input", "dataType": "text"}]
    assert doc["task"]["measuredAccuracy"] == pytest.approx(0.87)
    # one measure per device, its energy in kWh (PUE not applied), by greentrack and its version
    by_device = {c.device: c for c in s.components}
    assert len(doc["measures"]) == len(by_device) == 3
    for m in doc["measures"]:
        mode = m.get("gpuTrackingMode") or m["cpuTrackingMode"]
        device = mode.split(": ", 1)[0]
        assert m["measurementMethod"] == "greentrack" and m["version"] == gt.__version__
        assert "energy counter" in mode
        assert m["powerConsumption"] * 3.6e6 == pytest.approx(by_device[device].energy_j, 1e-12)
        assert m["measurementDuration"] == pytest.approx(s.duration_s, rel=1e-9)
    assert sum(m["powerConsumption"] for m in doc["measures"]) * 3.6e6 == pytest.approx(s.energy_j)
    assert "gpuTrackingMode" in next(m for m in doc["measures"] if "gpu:0" in str(m))
    env = doc["environment"]
    assert env["country"] == "Spain" and env["location"] == "ES" and env["pue"] == 1.2
    # CO2e = device energy x PUE x the intensity the report states (a static source: one value)
    kwh = s.energy_j / 3.6e6
    assert env["powerSourceCarbonIntensity"] * kwh * 1.2 == pytest.approx(s.co2e_g, rel=1e-9)
    infra = doc["infrastructure"]
    assert infra["infraType"] == "other"
    assert {c["componentType"] for c in infra["components"]} == {"cpu", "gpu", "ram"}
    assert doc["software"]["language"] == "python" and doc["system"]["os"] == "linux"


def test_report_has_the_shape_of_boamps_example(sqlite_url: str, shared_data: Path) -> None:
    s = tracked(sqlite_url)
    doc = report(sqlite_url, s.id)
    example = json.loads(
        (
            shared_data.parent / "boamps" / "examples" / "energy-report-llm-inference.json"
        ).read_text()
    )
    boamps.validate(example)  # the registry validates BoAmps' own example too
    ours, theirs = shape(doc), shape(example)
    # every section of the example but the self-assessed quality, with the same field types
    assert set(theirs) - set(ours) == {"quality"}
    assert common_paths_agree(ours, theirs) == []
    for section in ("header", "task", "software", "system", "environment"):
        missing = set(theirs[section]) - set(ours[section])
        assert missing <= {"licensing", "publisher", "nbRequest", "estimatedAccuracy",
                           "powerSupplierType"}, (section, missing)  # fmt: skip
    assert set(theirs["measures"][0]) - set(ours["measures"][0]) == set()
    assert set(theirs["infrastructure"]["components"][0]) - set(
        ours["infrastructure"]["components"][0]
    ) <= {"family", "series", "memorySize"}


def test_shipped_schemas_are_the_boamps_ones(shared_data: Path) -> None:
    for name in boamps.SCHEMA_IDS:
        shipped = boamps.SCHEMA_DIR / f"{name}_schema.json"
        original = shared_data.parent / "boamps" / "model" / shipped.name
        assert shipped.read_bytes() == original.read_bytes()
    assert (boamps.SCHEMA_DIR / "LICENSE.md").is_file()  # CC BY 4.0: the licence travels along


def test_the_validator_catches_a_broken_report(sqlite_url: str, no_network: None) -> None:
    doc = report(sqlite_url, tracked(sqlite_url).id)
    for breaking in (
        lambda d: d.pop("measures"),
        lambda d: d["measures"][0].update(powerConsumption="1 kWh"),
        lambda d: d["infrastructure"]["components"][0].pop("nbComponent"),
        lambda d: d["task"].update(algorithms=[]),
        lambda d: d["header"].update(reportStatus="done"),
    ):
        broken = json.loads(json.dumps(doc))
        breaking(broken)
        with pytest.raises(jsonschema.ValidationError):
            boamps.validate(broken)


def test_a_cloud_run_is_public_cloud_with_its_provider_and_country(sqlite_url: str) -> None:
    with gt.track("c", db=sqlite_url, region="gcp:europe-west1", checkpoint_s=0.05,
                  meters=[ReplayMeter([(0.0, {"gpu:0": 100.0})])]) as run:  # fmt: skip
        time.sleep(0.02)
    doc = report(sqlite_url, run.id)
    boamps.validate(doc)
    assert doc["infrastructure"]["infraType"] == "publicCloud"
    assert doc["infrastructure"]["cloudProvider"] == "google"
    assert doc["environment"]["country"] == "Belgium"
    assert doc["environment"]["location"] == "gcp:europe-west1"
    assert doc["task"]["taskStage"] == "other"  # no tag, no phase: said, not guessed
    assert "taskStage (tag stage)" in doc["task"]["taskDescription"]
    (m,) = doc["measures"]
    assert m["gpuTrackingMode"].startswith("gpu:0: sampled power")


def test_the_example_writes_a_valid_report(gt_home: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(repo / "examples" / "boamps_report.py"), "--out", str(out),
         "--seconds", "0.2"],
        env=dict(os.environ, GREENTRACK_HOME=str(gt_home)),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "valid BoAmps" in done.stdout
    doc = json.loads((out / "report.json").read_text())
    boamps.validate(doc)
    assert doc["task"]["taskStage"] == "training"
    assert doc["task"]["measuredAccuracy"] == pytest.approx(0.91)
    assert doc["environment"]["country"] == "France"
