"""The static dashboard as files: index, run pages, the embedded runs JSON, charts, the command.

What a person sees in a real browser is in test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from greentrack.cli import main
from greentrack.report.site import build_site
from greentrack.report.svgchart import Band, Line, line_chart, nice_ticks, time_ticks
from greentrack.testing.synthetic import DeviceSpec, SyntheticRun, demo_project, write_runs


def runs_blob(index: Path) -> dict:
    html = index.read_text(encoding="utf-8")
    m = re.search(r'<script id="runs-data" type="application/json">(.*?)</script>', html, re.S)
    assert m, "no runs JSON in the index"
    return json.loads(m.group(1))


def test_site_of_a_store(store_url: str, tmp_path: Path) -> None:
    write_runs(store_url, demo_project())
    result = build_site(tmp_path / "site", db_url=store_url, latest=3)
    assert result.runs == 7 and result.pages == 3
    blob = runs_blob(result.index)
    rows = [dict(zip(blob["columns"], r, strict=True)) for r in blob["rows"]]
    assert len(rows) == 7
    assert [r["id"][:8] for r in rows if r["page"]] == ["3f2a0002", "3f2a0001", "3f2a0000"]
    final = [r for r in rows if r["final"]]
    assert [r["id"][:8] for r in final] == ["3f2a0000"]
    pages = sorted(p.name[:8] for p in (tmp_path / "site" / "runs").glob("*.html"))
    assert pages == ["3f2a0000", "3f2a0001", "3f2a0002"]
    html = result.index.read_text()
    assert "<table class='projects'>" in html and "cifar" in html and "75.6 %" in html
    for pattern in (r"<link\b", r"<script[^>]*\bsrc=", r"(src|href)=['\"]?(https?:)?//"):
        assert not re.search(pattern, html, re.I), pattern


def test_run_page_has_price_tag_and_charts(sqlite_url: str, tmp_path: Path) -> None:
    write_runs(sqlite_url, demo_project())
    build_site(tmp_path / "site", db_url=sqlite_url, all_pages=True)
    page = (tmp_path / "site" / "runs" / ("3f2a0000" + "0" * 24 + ".html")).read_text()
    assert "How it was obtained" in page and "method: counter" in page
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 3  # power, energy, intensity
    for svg in svgs:
        root = ET.fromstring(svg)
        assert len(list(root.iter("{http://www.w3.org/2000/svg}polyline"))) >= 1
    assert "phase: train" in page and "phase: eval" in page
    assert 'href="../index.html"' in page
    assert len(list((tmp_path / "site" / "runs").glob("*.html"))) == 7


def test_names_cannot_break_out_of_the_page(sqlite_url: str, tmp_path: Path) -> None:
    nasty = "</script><img src=x onerror=alert(1)>"
    write_runs(
        sqlite_url,
        [
            SyntheticRun(
                run_id="ab" + "0" * 30,
                name=nasty,
                project="p<b>",
                devices=[DeviceSpec("cpu:0", "cpu", 50.0, "sampled")],
                tags={"note": nasty},
            )
        ],
    )
    result = build_site(tmp_path / "site", db_url=sqlite_url)
    html = result.index.read_text()
    assert nasty not in html and "<img" not in html
    assert runs_blob(result.index)["rows"][0][2] == nasty  # intact as data, escaped as markup
    page = next((tmp_path / "site" / "runs").glob("*.html")).read_text()
    assert nasty not in page and "&lt;/script&gt;" in page


def test_svg_chart_helpers() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 2300, 5)[:3] == [0, 500, 1000]
    ticks = time_ticks(1767268800.0, 1767268800.0 + 5 * 3600)
    assert [label for _, label in ticks] == ["12:00", "13:00", "14:00", "15:00", "16:00", "17:00"]
    svg = line_chart(
        [
            Line("a", [0, 1, 2], [1.0, float("nan"), 3.0], step="pre"),
            Line("b", [0, 2], [2.0, 2.0], low=[1.0, 1.0], high=[3.0, 3.0]),
        ],
        title="T <&>",
        x_label="x",
        y_label="y",
        bands=[Band(0.5, 1.5, "phase: p")],
        uid="t",
    )
    root = ET.fromstring(svg)  # well-formed, title escaped
    assert root.get("aria-label") == "T <&>"
    assert len(list(root.iter("{http://www.w3.org/2000/svg}polygon"))) == 1  # the envelope


def test_dashboard_command(sqlite_url: str, tmp_path: Path) -> None:
    write_runs(sqlite_url, demo_project())
    result = CliRunner().invoke(
        main, ["dashboard", "-o", str(tmp_path / "s"), "--db", sqlite_url, "--latest", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "7 runs, 2 run pages" in result.output
    result = CliRunner().invoke(
        main,
        [
            "dashboard",
            "-o",
            str(tmp_path / "s2"),
            "--db",
            sqlite_url,
            "--project",
            "cifar",
            "--all",
        ],
    )
    assert result.exit_code == 0 and "7 run pages" in result.output
