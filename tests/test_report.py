"""The price tag: golden Markdown/LaTeX from fixed runs, the JSON contract, aggregates, errors.

The runs are synthetic (greentrack.testing.synthetic): every number follows from fixed powers,
times and intensities, so the golden files are stable — on SQLite and on PostgreSQL alike.
Set GREENTRACK_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from greentrack.cli import main
from greentrack.report.pricetag import build_report, make_report
from greentrack.testing.synthetic import DeviceSpec, SyntheticRun, demo_project, write_runs

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("GREENTRACK_UPDATE_GOLDEN") == "1"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with GREENTRACK_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from the golden file (GREENTRACK_UPDATE_GOLDEN=1)"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def demo_store(store_url: str) -> str:
    write_runs(store_url, demo_project())
    return store_url


def simple_run(run_id: str = "aa" + "0" * 30, **kw) -> SyntheticRun:
    """100 W for exactly one hour at 200 g/kWh, PUE 1.5: every figure known by hand."""
    args = dict(
        run_id=run_id,
        project="hand",
        name="const",
        start_s=1767268800.0,
        duration_s=3600.0,
        samples=61,
        devices=[
            DeviceSpec("gpu:0", "gpu", 100.0, "counter", "NVIDIA H100", ripple=0.0, eval_factor=1.0)
        ],
        pue=1.5,
        intensity_g_per_kwh=(200.0,),
        annual_g_per_kwh=300.0,
        phases=(),
        params={"lr": 0.1, "params_total": 1000},
        metrics={"acc": [(0, 0.5), (1, 0.75)]},
        flops=2e12,
    )
    args.update(kw)
    return SyntheticRun(**args)


# --- golden files --------------------------------------------------------------------------


def test_markdown_and_latex_golden_files(demo_store: str) -> None:
    """Byte-identical on both backends: the report reads only what the store holds."""
    one = make_report(["3f2a0000"], db_url=demo_store, flops=True)
    golden("pricetag_run.md", one.text)
    proj = make_report(
        project="cifar", db_url=demo_store, flops=True, price_per_kwh=0.25, currency="EUR"
    )
    golden("pricetag_project.md", proj.text)
    tex = make_report(project="cifar", db_url=demo_store, fmt="latex", flops=True)
    golden("pricetag_project.tex", tex.text)


def test_latex_writes_the_bibtex_beside_it(demo_store: str, tmp_path: Path) -> None:
    code, out = invoke(
        "report",
        "--project",
        "cifar",
        "--format",
        "latex",
        "-o",
        str(tmp_path / "pricetag.tex"),
        "--db",
        demo_store,
    )
    assert code == 0, out
    tex = (tmp_path / "pricetag.tex").read_text()
    bib = (tmp_path / "pricetag.bib").read_text()
    assert "pricetag.bib" in out
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    for key in re.findall(r"\\cite\{([^}]*)\}", tex):
        for k in key.split(","):
            assert f"{{{k}," in bib, f"cited {k} is not in the BibTeX"
    entries = dict(re.findall(r"@\w+\{(\w+),(.*?)\n\}", bib, flags=re.S))
    assert set(entries) == {
        "schwartz2020green",
        "dodge2022measuring",
        "strubell2019energy",
        "henderson2020towards",
    }
    assert "10.1145/3381831" in entries["schwartz2020green"]
    assert "Communications of the ACM" in entries["schwartz2020green"]
    assert "10.1145/3531146.3533234" in entries["dodge2022measuring"]
    assert "1877--1894" in entries["dodge2022measuring"]
    assert "10.18653/v1/P19-1355" in entries["strubell2019energy"]
    assert "3645--3650" in entries["strubell2019energy"]
    assert "248" in entries["henderson2020towards"] and "21" in entries["henderson2020towards"]
    assert bib.count("{") == bib.count("}")


def _tex_engine() -> str | None:
    return shutil.which("pdflatex") or shutil.which("lualatex")


def test_latex_compiles(sqlite_url: str, tmp_path: Path) -> None:
    if _tex_engine() is None:
        if os.environ.get("GREENTRACK_TEST_TEX") == "skip":
            pytest.skip("no TeX engine (pdflatex/lualatex) and GREENTRACK_TEST_TEX=skip")
        pytest.fail(
            "no TeX engine (pdflatex): `bash .ci/services` installs it, or set "
            "GREENTRACK_TEST_TEX=skip to skip this test"
        )
    write_runs(sqlite_url, demo_project())
    out = make_report(
        project="cifar",
        db_url=sqlite_url,
        fmt="latex",
        standalone=True,
        output=tmp_path / "doc.tex",
        flops=True,
        price_per_kwh=0.3,
    )
    assert (tmp_path / "doc.bib").exists() and out.files  # <stem>.bib, never greentrack.bib
    assert not (tmp_path / "greentrack.bib").exists()
    engine = _tex_engine()
    done = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
    if shutil.which("bibtex"):  # the BibTeX entries parse and every citation resolves
        bib = subprocess.run(
            ["bibtex", "doc"], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert bib.returncode == 0, bib.stdout
        assert "Warning" not in bib.stdout and "error" not in bib.stdout.lower(), bib.stdout
        for _ in range(2):
            done = subprocess.run(
                [engine, "-interaction=nonstopmode", "doc.tex"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=240,
            )
        log = (tmp_path / "doc.log").read_text(errors="replace")
        assert "Citation" not in log or "undefined" not in log, "unresolved citations"


# --- numbers known by hand ---------------------------------------------------------------------


def test_every_figure_of_a_hand_checked_run(sqlite_url: str) -> None:
    write_runs(sqlite_url, [simple_run()])
    out = make_report(["aa"], db_url=sqlite_url, fmt="json", price_per_kwh=0.2)
    rep = json.loads(out.text)
    assert rep["schema"] == "greentrack.report/1"
    (run,) = rep["runs"]
    tag = run["pricetag"]
    assert tag["energy_kwh"] == pytest.approx(0.1)  # 100 W x 1 h
    assert tag["facility_energy_kwh"] == pytest.approx(0.15)  # x PUE 1.5
    assert tag["co2e_g"] == pytest.approx(30.0)  # 0.15 kWh x 200 g/kWh
    assert tag["co2e_g_annual_average"] == pytest.approx(45.0)  # 0.15 x 300
    assert tag["intensity"]["time_weighted_g_per_kwh"] == pytest.approx(200.0)
    assert tag["intensity"]["annual_average_g_per_kwh"] == pytest.approx(300.0)
    assert tag["device_hours"] == pytest.approx(1.0) and tag["device_kind"] == "gpu"
    assert tag["hardware"]["gpus"] == [{"model": "NVIDIA H100", "count": 1}]
    assert tag["energy_by_component"] == [
        {"component": "gpu", "devices": 1, "energy_kwh": pytest.approx(0.1), "methods": ["counter"],
         "notes": []}
    ]  # fmt: skip
    assert tag["params_total"] == 1000 and tag["flops"] == 2e12
    assert tag["metrics"] == {"acc": 0.75}  # the last logged value
    assert tag["cost"] == pytest.approx(0.03)
    totals = rep["totals"]
    for key in ("energy_kwh", "co2e_g", "duration_s", "device_hours", "flops"):
        assert key in totals
    assert totals["energy_kwh"] == pytest.approx(0.1) and totals["co2e_g"] == pytest.approx(30)
    assert totals["duration_s"] == pytest.approx(3600) and totals["cost"] == pytest.approx(0.03)
    notes = " ".join(rep["method_notes"])
    assert "counter" in notes and "PUE (1.5)" in notes and "csv hand average" not in notes
    assert "csv  average" not in notes
    md = make_report(["aa"], db_url=sqlite_url).text
    assert "| Energy, GPU | 0.100 kWh | method: counter |" in md
    assert "| CO₂e, time-weighted | 30.0 g |" in md
    assert "| Carbon intensity, annual average | 300 g/kWh |" in md


def test_a_run_without_carbon_data_says_so(sqlite_url: str) -> None:
    write_runs(sqlite_url, [simple_run(intensity_g_per_kwh=None, region=None)])
    rep = make_report(["aa"], db_url=sqlite_url).report
    assert rep["runs"][0]["pricetag"]["co2e_g"] is None
    text = make_report(["aa"], db_url=sqlite_url).text
    assert "| CO₂e, time-weighted | n/a |" in text
    assert "no intensity data" in text


def test_seed_groups_tuning_share_and_final_rule(sqlite_url: str) -> None:
    write_runs(sqlite_url, demo_project())
    rep = make_report(project="cifar", db_url=sqlite_url, fmt="json").report
    runs = {r["id"][:8]: r for r in rep["runs"]}
    (group,) = rep["groups"]  # the sweep differs in lr: no group; the 3 seeds group
    assert group["n"] == 3 and group["seeds"] == ["0", "1", "2"]
    seeds = [runs[f"3f2a000{i}"] for i in range(3)]
    acc = [r["metrics"]["accuracy"] for r in seeds]
    assert group["metrics"]["accuracy"]["mean"] == pytest.approx(statistics.mean(acc))
    assert group["metrics"]["accuracy"]["std"] == pytest.approx(statistics.stdev(acc))
    kwh = [r["energy_kwh"] for r in seeds]
    assert group["energy_kwh"]["std"] == pytest.approx(statistics.stdev(kwh))
    # the final run is the one tagged final=true; the other six are tuning
    assert rep["final"]["run_ids"] == [runs["3f2a0000"]["id"]]
    total = sum(r["facility_energy_kwh"] for r in rep["runs"])
    tuning = total - runs["3f2a0000"]["facility_energy_kwh"]
    assert rep["tuning"]["share_energy_pct"] == pytest.approx(100 * tuning / total)
    assert rep["final"]["share_energy_pct"] + rep["tuning"]["share_energy_pct"] == pytest.approx(
        100
    )
    # --final adds another final run
    rep2 = make_report(project="cifar", db_url=sqlite_url, final=["3f2a0001"]).report
    assert len(rep2["final"]["run_ids"]) == 2
    assert rep2["tuning"]["share_energy_pct"] < rep["tuning"]["share_energy_pct"]


def test_without_a_final_run_no_share_is_invented(sqlite_url: str) -> None:
    runs = [
        simple_run("b1" + "0" * 30, params={"seed": 1}),
        simple_run("b2" + "0" * 30, params={"seed": 2}, start_s=1767272400.0),
    ]
    write_runs(sqlite_url, runs)
    rep = make_report(project="hand", db_url=sqlite_url).report
    assert rep["final"] is None and rep["tuning"] is None
    assert any("No run is marked final" in n for n in rep["method_notes"])
    assert "Share of" not in make_report(project="hand", db_url=sqlite_url).text


def test_csv_format_has_runs_and_totals(demo_store: str) -> None:
    text = make_report(project="cifar", db_url=demo_store, fmt="csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    scopes = [r["scope"] for r in rows]
    assert scopes == ["run"] * 7 + ["total", "final", "tuning"]
    total = rows[7]
    assert float(total["energy_kwh"]) == pytest.approx(
        sum(float(r["energy_kwh"]) for r in rows[:7])
    )
    assert "metric_accuracy" in rows[0]


def test_report_cli_formats_and_latest(demo_store: str, tmp_path: Path) -> None:
    code, out = invoke("report", "--db", demo_store)  # the latest run
    assert code == 0 and out.startswith("# Price tag: cifar / resnet18 (run 3f2a0002)")
    code, out = invoke("report", "3f2a0000", "9b1c0000", "--format", "json", "--db", demo_store)
    assert code == 0
    rep = json.loads(out)
    assert {"runs", "totals", "method_notes"} <= set(rep) and len(rep["runs"]) == 2
    code, out = invoke(
        "report", "3f2a0000", "--format", "html", "-o", str(tmp_path / "r.html"), "--db", demo_store
    )
    assert code == 0 and (tmp_path / "r.html").stat().st_size > 10_000


def test_report_errors_are_one_line(demo_store: str) -> None:
    code, out = invoke("report", "ffff", "--db", demo_store)
    assert code == 1 and out.startswith("Error: no run id starts with") and out.count("\n") == 1
    code, out = invoke("report", "--project", "nope", "--db", demo_store)
    assert code == 1 and "no runs match project 'nope'" in out and out.count("\n") == 1
    code, out = invoke("report", "3f2a0000", "--price-per-kwh", "-1", "--db", demo_store)
    assert code == 1 and "--price-per-kwh" in out
    code, out = invoke("report", "--format", "docx", "--db", demo_store)
    assert code == 2


def test_build_report_needs_runs() -> None:
    from greentrack.errors import ConfigError

    with pytest.raises(ConfigError, match="no runs"):
        build_report([])


def test_html_report_is_self_contained(demo_store: str) -> None:
    html = make_report(project="cifar", db_url=demo_store, fmt="html").text
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert html.count("<svg") >= 4  # power, energy, intensity of the final run + pareto
    for pattern in (
        r"<link\b",
        r"<script[^>]*\bsrc=",
        r"<img\b",
        r"@import",
        r"url\(\s*['\"]?http",
        r"(src|href)=['\"]?(https?:)?//",
    ):
        assert not re.search(pattern, html, flags=re.I), pattern
    # every figure of the table carries how it was obtained
    assert "How it was obtained" in html and "method: counter" in html
