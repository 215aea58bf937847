"""The embodied rows of the accelerators researchers train on (V100, H100 SXM, A100 SXM4 40GB,
MI250X), matched by the names the drivers report, and their share of a simulated run: the row's
kg x the amortisation rule, computed here from the table (README: Embodied). The H200 and the
MI300X have no citable figure: the run leaves them out and says so."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes.amd import FakeAmdGpu, FakeAmdSmi, mi250x
from fakes.nvml import FakeGpu, FakeNvml
from tests_helpers import stored_run

from greentrack.carbon.embodied import (
    MISSING_NOTE,
    SECONDS_PER_YEAR,
    DeviceUse,
    embodied_for_run,
    load_table,
)

# The names the libraries report (nvmlDeviceGetName and torch.cuda.get_device_name agree for
# NVIDIA; amdsmi's market_name and torch on ROCm for AMD), and the row each must find.
NAMES = [
    ("NVIDIA H100 80GB HBM3", "gpu:h100 80gb hbm3"),  # H100 SXM5
    ("NVIDIA H100 PCIe", "gpu:h100 pcie"),  # the shipped PCIe row is not shadowed
    ("Tesla V100-SXM2-16GB", "gpu:v100 sxm2 16gb"),
    ("Tesla V100-SXM2-32GB", "gpu:v100 sxm2 32gb"),
    ("Tesla V100-PCIE-16GB", "gpu:v100 pcie 16gb"),
    ("Tesla V100-PCIE-32GB", "gpu:v100"),
    ("NVIDIA A100-SXM4-40GB", "gpu:a100 sxm4 40gb"),
    ("NVIDIA A100-SXM4-80GB", "gpu:a100"),  # unchanged: BLOOM's card
    ("NVIDIA A100-PCIE-40GB", "gpu:a100 pcie 40gb"),
    ("AMD Instinct MI250X", "gpu:mi250x"),
    ("AMD Instinct MI250X/MI250", "gpu:mi250x"),  # as some ROCm releases print it
]
# No citable figure was found for these (see the CSV's header): never guessed.
NO_SOURCE = ["NVIDIA H200", "NVIDIA H200 NVL", "NVIDIA H100 NVL", "AMD Instinct MI300X"]

LIFE_YEARS, UTILISATION = 5.0, 0.85  # not the defaults: the test sees the rule, not a constant


@pytest.mark.parametrize(("name", "key"), NAMES)
def test_each_reported_name_finds_its_row(name: str, key: str) -> None:
    row = load_table().lookup("gpu", name)
    assert row is not None and row.key == key, name
    assert row.source and row.year and row.scope and row.uncertainty


@pytest.mark.parametrize("name", NO_SOURCE)
def test_a_model_without_a_source_is_left_out_and_the_run_says_so(name: str) -> None:
    assert load_table().lookup("gpu", name) is None
    emb = embodied_for_run([DeviceUse("gpu", name, 8, 3600.0)])
    assert emb.embodied_g == 0 and emb.missing == (f"gpu {name}",)
    assert f"{MISSING_NOTE}: gpu {name}" in emb.note()


_SUM = re.compile(
    r"((?:[A-Za-z][A-Za-z ]*? \d+(?:\.\d+)? \+ )+[A-Za-z][A-Za-z ]*? \d+(?:\.\d+)?) kg"
)


def test_every_breakdown_in_the_notes_adds_up_to_the_rows_figure() -> None:
    checked = []
    for row in load_table().rows:
        m = _SUM.search(row.notes)
        if not m:
            continue
        parts = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)(?= \+|$)", m.group(1))]
        assert sum(parts) == pytest.approx(row.kg_co2e, abs=0.051), (row.key, parts)
        checked.append(row.key)
    assert {"gpu:v100 sxm2 32gb", "gpu:mi250x", "gpu:a100 sxm4 40gb"} <= set(checked)


def test_derived_v100_rows_follow_from_the_papers_figure() -> None:
    t = load_table()
    kg = {k: t.lookup("gpu", n).kg_co2e for n, k in NAMES if k.startswith("gpu:v100")}
    # SC '23 models HBM at 65 g/GB: a 16 GB card is the 32 GB one less 16 GB of it
    assert kg["gpu:v100 sxm2 32gb"] - kg["gpu:v100 sxm2 16gb"] == pytest.approx(16 * 0.065)
    assert kg["gpu:v100 pcie 16gb"] == kg["gpu:v100 sxm2 16gb"]
    assert kg["gpu:v100"] == kg["gpu:v100 sxm2 32gb"]


def test_partial_scopes_say_they_are_lower_bounds() -> None:
    for row in load_table().rows:
        if "ICs only" in row.scope:
            assert "lower bound" in row.uncertainty and "ACT" in row.uncertainty, row.key


def test_an_override_beats_a_longer_shipped_key() -> None:
    # README: "gpu:h100" = 350 in config.toml must reach an H100 SXM though a longer row exists
    t = load_table(kg={"gpu:h100": 350, "gpu:*": 1})
    assert t.lookup("gpu", "NVIDIA H100 80GB HBM3").kg_co2e == 350
    assert t.lookup("gpu", "NVIDIA L4").key == "gpu:l4"  # a "*" override is only a fallback
    assert t.lookup("gpu", "NVIDIA H200").kg_co2e == 1


# -- tracked runs on simulated hardware --------------------------------------------------------
def _config(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f"[embodied]\nlifetime_years = {LIFE_YEARS}\nutilisation = {UTILISATION}\nram_gib = 8\n"
    )


def _expected_g(model: str, count: int, t_s: float) -> float:
    """The table's kg for ``model`` x count x TiR / (EL x utilisation), in grams."""
    kg = load_table().lookup("gpu", model).kg_co2e
    return kg * 1000.0 * count * t_s / (LIFE_YEARS * SECONDS_PER_YEAR * UTILISATION)


def test_a_run_on_simulated_nvidia_gpus_stores_each_rows_share(
    sqlite_url: str, gt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import greentrack as gt
    from greentrack.cli import main

    _config(gt_home)
    for var in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        monkeypatch.delenv(var, raising=False)
    models = [
        "NVIDIA H100 80GB HBM3",
        "NVIDIA H100 80GB HBM3",
        "Tesla V100-SXM2-16GB",
        "NVIDIA A100-SXM4-40GB",
        "NVIDIA H200",
    ]
    fake = FakeNvml([FakeGpu(m, power_w=300.0) for m in models]).install(monkeypatch)
    with fake, gt.track("rows", db=sqlite_url, region="FR", interval_s=0.05) as run:
        time.sleep(0.2)
    obj = stored_run(sqlite_url, run.id)
    emb = obj["embodied"]
    gpus = {d["model"]: d for d in emb["devices"] if d["kind"] == "gpu"}
    assert set(gpus) == set(models) - {"NVIDIA H200"}
    for model, d in gpus.items():
        t = d["time_reserved_s"]
        assert 0.2 <= t <= obj["duration_s"]
        assert d["embodied_g"] == pytest.approx(_expected_g(model, models.count(model), t))
        assert d["row"] == load_table().lookup("gpu", model).key
    assert emb["missing"] == ["gpu NVIDIA H200"]
    assert obj["embodied_g"] == pytest.approx(sum(d["embodied_g"] for d in emb["devices"]))

    shown = CliRunner().invoke(main, ["show", run.id, "--db", sqlite_url])
    assert shown.exit_code == 0, shown.output
    assert f"{MISSING_NOTE}: gpu NVIDIA H200" in shown.output
    assert "2 x gpu:h100 80gb hbm3:" in shown.output and "EcoLogits" in shown.output
    md = CliRunner().invoke(main, ["report", run.id, "--db", sqlite_url])
    line = next(x for x in md.output.splitlines() if x.startswith("| CO₂e, embodied"))
    assert line.endswith(f"{MISSING_NOTE}: gpu NVIDIA H200 |")  # the price tag says it too


def test_a_run_on_a_simulated_mi250x_counts_the_package_once(
    sqlite_url: str, gt_home: Path, monkeypatch: pytest.MonkeyPatch, no_nvml
) -> None:
    import greentrack as gt

    _config(gt_home)
    monkeypatch.setenv("GREENTRACK_IPMITOOL", str(gt_home / "no-ipmitool"))
    monkeypatch.delenv("GREENTRACK_REDFISH_URL", raising=False)
    fake = FakeAmdSmi([*mi250x(400.0), FakeAmdGpu("AMD Instinct MI300X", 500.0)])
    fake.install(monkeypatch)
    with fake, gt.track("mi250x", db=sqlite_url, interval_s=0.02) as run:
        time.sleep(0.6)
    obj = stored_run(sqlite_url, run.id)
    emb = obj["embodied"]
    (d,) = [d for d in emb["devices"] if d["kind"] == "gpu"]
    # two dies (GCDs) sharing one package counter: one package, one row
    assert d["row"] == "gpu:mi250x" and d["count"] == 1
    assert d["embodied_g"] == pytest.approx(
        _expected_g("AMD Instinct MI250X", 1, d["time_reserved_s"])
    )
    assert emb["missing"] == ["gpu AMD Instinct MI300X"]
    assert "ICs only" in json.dumps(d)
