"""The registry of report formats: the CLI's choices come from it, and a new format is one module
plus one registry line (proved with a format module written by the test itself)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from greentrack.cli import main
from greentrack.errors import ConfigError
from greentrack.report import render
from greentrack.report.pricetag import make_report
from greentrack.report.render import FORMATS, ReportFormat
from greentrack.testing.synthetic import demo_project, write_runs


@pytest.fixture
def demo_store(sqlite_url: str) -> str:
    write_runs(sqlite_url, demo_project())
    return sqlite_url


def test_the_cli_choices_are_the_registry() -> None:
    (option,) = [p for p in main.commands["report"].params if p.name == "fmt"]
    assert isinstance(option.type, click.Choice)
    assert list(option.type.choices) == list(FORMATS) == render.names()
    assert list(FORMATS)[:5] == ["markdown", "latex", "html", "json", "csv"]


def test_every_registered_format_renders_and_writes_its_file(
    demo_store: str, tmp_path: Path
) -> None:
    for fmt in FORMATS.values():
        assert fmt.suffix.startswith(".") and fmt.description
        assert callable(fmt.load().render), fmt.module
        out = tmp_path / f"report{fmt.suffix}"
        result = make_report(
            project="cifar", db_url=demo_store, fmt=fmt.name, output=out, plots=False
        )
        assert out.read_text(encoding="utf-8") == result.text and result.text.strip()
        extra = {".tex": [out.with_suffix(".bib")]}.get(fmt.suffix, [])
        assert result.files == [out, *extra], fmt.name


def test_an_unknown_format_is_one_clear_line(demo_store: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown report format 'docx'; choose one of markdown"):
        make_report(db_url=demo_store, fmt="docx")
    result = CliRunner().invoke(main, ["report", "--format", "docx", "--db", demo_store])
    assert result.exit_code != 0 and "'docx' is not one of" in result.output


def test_a_new_format_is_one_module_and_one_registry_line(
    demo_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module defines ``render`` (and ``companions``); the registry line names it."""
    pkg = tmp_path / "fmtpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "shout.py").write_text(
        textwrap.dedent(
            """
            from greentrack.report.model import NA
            from greentrack.report.table import table_rows


            def render(report, *, output=None, **_options):
                cols, rows = table_rows(report)
                lines = [f"{r.label.upper()}: {len(r.values)}" for r in rows]
                return "\\n".join([*lines, NA]) + "\\n"


            def companions(output):
                return [(output.with_suffix(".txt"), "beside " + output.name)]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        FORMATS, "shout", ReportFormat("shout", "fmtpkg.shout", ".shout", "upper-case rows")
    )
    out = tmp_path / "r.shout"
    result = make_report(project="cifar", db_url=demo_store, fmt="shout", output=out)
    assert "ENERGY, FACILITY: 3" in result.text  # Final, Tuning, All runs
    assert result.files == [out, tmp_path / "r.txt"]
    assert (tmp_path / "r.txt").read_text() == "beside r.shout"
    sys.modules.pop("fmtpkg.shout", None)
    sys.modules.pop("fmtpkg", None)
