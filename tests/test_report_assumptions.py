"""The price tag names every assumption behind a figure, and says "estimated" when it is.

Runs are written into a real store (synthetic runs with known notes, or checkpoints through the
real writer) and read back by the real report and `greentrack show`, as a user runs them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner

from greentrack.cli import main
from greentrack.report.latex import tex_escape
from greentrack.report.model import NO_NOTE
from greentrack.report.pricetag import build_report, make_report
from greentrack.store.checkpoint import Checkpoint
from greentrack.store.writer import StoreWriter
from greentrack.testing.synthetic import DeviceSpec, SyntheticRun, write_runs

CPU_NOTE = (
    "TDP 240 W (codecarbon cpu_power.csv: AMD EPYC 7763) scaled to 2 of 128 threads; "
    "load curve 0.1 + 0.9·load³ (CodeCarbon); cpu_share=machine"
)
RAM_NOTE = "0.375 W per GiB × 8 GiB installed (CodeCarbon's RAM model)"
GPU_NOTE = "MIG slice MIG-4b2c of GPU 0 (NVIDIA A100): the whole parent GPU's energy"
DEFAULT_NOTE = "unknown CPU model: default 4 W per thread (CodeCarbon's fallback) × 2 threads"


def _run(run_id: str, devices: list[DeviceSpec], **kw) -> SyntheticRun:
    args = dict(
        run_id=run_id,
        project="notes",
        name="train",
        duration_s=600.0,
        samples=11,
        devices=devices,
        phases=(),
        cpu_model="AMD EPYC 7763 64-Core Processor",
    )
    args.update(kw)
    return SyntheticRun(**args)


def _cpu(note: str | None = CPU_NOTE) -> DeviceSpec:
    return DeviceSpec("cpu:estimate", "cpu", 8.0, "estimated", None, ripple=0.0, note=note)


def _ram(note: str | None = RAM_NOTE) -> DeviceSpec:
    return DeviceSpec("ram:estimate", "ram", 3.0, "estimated", None, ripple=0.0, note=note)


def _gpu(note: str | None = None) -> DeviceSpec:
    return DeviceSpec("gpu:0", "gpu", 200.0, "counter", "NVIDIA A100", ripple=0.0, note=note)


def _report(url: str, run_id: str, fmt: str, **kw) -> str:
    return make_report([run_id], db_url=url, fmt=fmt, plots=False, **kw).text


def _statement(tex: str) -> str:
    return next(line for line in tex.splitlines() if line.startswith("Following"))


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


# --- every format names every assumption and says "estimated" -------------------------------


def test_an_all_estimated_run_says_estimated_and_names_every_assumption(sqlite_url: str) -> None:
    rid = "ab" + "0" * 30
    write_runs(sqlite_url, [_run(rid, [_cpu(), _ram()])])
    md = _report(sqlite_url, rid, "markdown")
    tex = _report(sqlite_url, rid, "latex")
    html = unescape(_report(sqlite_url, rid, "html"))
    report = json.loads(_report(sqlite_url, rid, "json"))

    statement = _statement(tex)
    assert "we estimated the energy" in statement and "measured" not in statement
    assert "estimated with power models (no energy meter)" in md.split("\n\n")[1]
    assert "measured or estimated" not in md and "greentrack estimated over" in md
    for text in (md, html):
        assert CPU_NOTE in text and RAM_NOTE in text
        assert "128 logical CPUs" in text  # the CPU count, as the README promises
    html_text = re.sub(r"<[^>]+>", " ", html)
    assert "Assumptions" in html_text and "estimated with power models" in html_text
    # LaTeX: escaped, and every assumption printed with the table
    assert r"0.1 + 0.9$\cdot$load$^3$" in tex and r"cpu\_share=machine" in tex
    assert r"\times$ 8 GiB installed" in tex and "128 logical CPUs" in tex
    # JSON: per run, per component, and once for the report
    tag = report["runs"][0]["pricetag"]
    assert tag["energy_basis"] == {
        "basis": "estimated",
        "measured": [],
        "estimated": ["cpu", "ram"],
    }
    assert tag["hardware"]["cpu_count"] == 128
    assert {c["component"]: c["notes"] for c in tag["energy_by_component"]} == {
        "cpu": [CPU_NOTE],
        "ram": [RAM_NOTE],
    }
    assert [a["text"] for a in report["assumptions"]] == [
        f"CPU (cpu:estimate): {CPU_NOTE}",
        f"RAM (ram:estimate): {RAM_NOTE}",
    ]
    assert report["totals"]["energy_basis"]["basis"] == "estimated"


def test_a_mixed_run_says_which_part_was_measured(sqlite_url: str) -> None:
    rid = "ac" + "0" * 30
    write_runs(sqlite_url, [_run(rid, [_gpu(GPU_NOTE), _cpu(DEFAULT_NOTE), _ram()])])
    tex = _report(sqlite_url, rid, "latex")
    md = _report(sqlite_url, rid, "markdown")
    statement = _statement(tex)
    assert "we measured the GPU energy" in statement
    assert "estimated the CPU and RAM energy" in statement
    assert "(GPU measured, CPU and RAM estimated)" in md
    for note in (GPU_NOTE, DEFAULT_NOTE, RAM_NOTE):  # a MIG parent GPU, a default TDP
        assert note in md
        assert tex_escape(note) in tex
    notes = json.loads(_report(sqlite_url, rid, "json"))["method_notes"]
    assert any(
        "CPU and RAM energy is estimated" in n and "GPU energy is measured" in n for n in notes
    )


def test_an_all_measured_run_says_measured(sqlite_url: str) -> None:
    rid = "ad" + "0" * 30
    write_runs(sqlite_url, [_run(rid, [_gpu()])])
    tex = _report(sqlite_url, rid, "latex")
    statement = _statement(tex)
    assert "we measured the energy of our experiments" in statement
    assert "estimat" not in statement
    md = _report(sqlite_url, rid, "markdown")
    assert "kWh (measured)" in md and "## Assumptions" not in md


def test_an_estimate_without_a_stored_note_says_so(sqlite_url: str) -> None:
    """Runs recorded before components.note existed: no crash, and no silence either."""
    rid = "ae" + "0" * 30
    write_runs(sqlite_url, [_run(rid, [_gpu(), _cpu(note=None)])])
    md = _report(sqlite_url, rid, "markdown")
    assert f"CPU (cpu:estimate): {NO_NOTE}" in md
    shown = _invoke("show", rid, "--db", sqlite_url)
    assert "note: none stored" in shown


def test_phases_from_power_and_warnings_are_assumptions_too(sqlite_url: str) -> None:
    """A phase whose energy came from sampled power (phases.method), and the run's warnings
    (stored once each even when repeated), are printed with the figures."""
    rid = "af" + "0" * 30
    write_runs(sqlite_url, [_run(rid, [_gpu()])])
    t0 = 1767268800.0
    from datetime import UTC, datetime

    def utc(t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC).replace(tzinfo=None)

    phases = [
        {
            "id": f"{rid[:24]}p{i:07x}",
            "name": "step",
            "path": "train/step",
            "depth": 1,
            "started_at": utc(t0 + i),
            "ended_at": utc(t0 + i + 0.05),
            "t0_s": t0 + i,
            "t1_s": t0 + i + 0.05,
            "duration_s": 0.05,
            "energy_j": 10.0,
            "components": {"gpu:0": 10.0},
            "co2e_g": None,
            "method": "sampled" if i < 2 else None,
        }
        for i in range(3)
    ]
    warning = "NVML energy counter refreshes every ~100 ms: short phases use sampled power"
    events = [
        {"id": f"{rid[:24]}w{r:07x}", "t_s": t0, "level": "warning", "source": "nvml",
         "message": warning}
        for r in range(2)
    ]  # fmt: skip
    writer = StoreWriter(sqlite_url)
    try:
        writer.write(Checkpoint(run_id=rid, rank=0, seq=99, phases=phases, events=events))
    finally:
        writer.close()
    report = json.loads(_report(sqlite_url, rid, "json"))
    texts = [a["text"] for a in report["assumptions"]]
    assert texts == [
        "phase train/step: 2 of 3 windows from sampled power, not the counter (the window is "
        "shorter than the counter's update period)",
        f"warning [nvml]: {warning}",
    ]
    md = _report(sqlite_url, rid, "markdown")
    assert all(t in md for t in texts)
    shown = _invoke("show", rid, "--db", sqlite_url)
    assert "(2 windows from sampled power)" in shown


def test_show_prints_each_components_note(sqlite_url: str) -> None:
    rid = "b0" + "0" * 30
    write_runs(sqlite_url, [_run(rid, [_gpu(GPU_NOTE), _cpu()])])
    shown = _invoke("show", rid, "--db", sqlite_url)
    assert f"note: {GPU_NOTE}" in shown and f"note: {CPU_NOTE}" in shown
    obj = json.loads(_invoke("show", rid, "--db", sqlite_url, "--format", "json"))
    assert {c["device"]: c["note"] for c in obj["components"]} == {
        "gpu:0": GPU_NOTE,
        "cpu:estimate": CPU_NOTE,
    }


def test_a_note_shared_by_many_runs_is_printed_once_with_its_runs(sqlite_url: str) -> None:
    runs = [_run(f"c{i}" + "0" * 30, [_gpu(), _cpu()]) for i in range(3)]
    runs.append(_run("c9" + "0" * 30, [_gpu()]))
    write_runs(sqlite_url, runs)
    from greentrack.report.data import store
    from greentrack.store.reads import load_runs

    with store(sqlite_url) as conn:
        report = build_report(load_runs(conn, project="notes"))
    assert report["assumptions"] == [
        {"kind": "component", "text": f"CPU (cpu:estimate): {CPU_NOTE}",
         "run_ids": [r.run_id for r in runs[:3]]},
    ]  # fmt: skip
    md = make_report(project="notes", db_url=sqlite_url).text
    assert f"{CPU_NOTE} (runs c0000000, c1000000, c2000000)" in md
    assert "GPU and CPU measured" not in md and "GPU measured, CPU estimated" in md


# --- LaTeX --standalone writes <stem>.bib (issue 17.7) ----------------------------------------


def test_standalone_latex_writes_its_own_bib_and_never_greentrack_bib(
    sqlite_url: str, tmp_path: Path
) -> None:
    rid = "d0" + "0" * 30
    write_runs(sqlite_url, [_run(rid, [_gpu(GPU_NOTE), _cpu()])])
    theirs = tmp_path / "greentrack.bib"
    theirs.write_text("@misc{mine, title={my own bibliography}}\n")
    result = CliRunner().invoke(
        main,
        ["report", rid, "--format", "latex", "--standalone", "-o", str(tmp_path / "x.tex"),
         "--db", sqlite_url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert theirs.read_text() == "@misc{mine, title={my own bibliography}}\n"  # untouched
    assert "schwartz2020green" in (tmp_path / "x.bib").read_text()
    tex = (tmp_path / "x.tex").read_text()
    assert r"\bibliography{x}" in tex and r"\bibliography{greentrack}" not in tex
    # the output may not be a .bib: the BibTeX would overwrite it
    result = CliRunner().invoke(
        main, ["report", rid, "--format", "latex", "-o", str(tmp_path / "refs.bib"),
               "--db", sqlite_url],
    )  # fmt: skip
    assert result.exit_code != 0 and not (tmp_path / "refs.bib").exists()
    assert len(result.output.strip().splitlines()) == 1 and "refs.tex" in result.output
    if shutil.which("pdflatex") and shutil.which("bibtex"):  # it compiles, notes and all
        for cmd in (["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "x.tex"],
                    ["bibtex", "x"]):  # fmt: skip
            done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("standalone", [False, True])
def test_latex_bib_is_named_after_the_output(
    sqlite_url: str, tmp_path: Path, standalone: bool
) -> None:
    rid = "d1" + "0" * 30
    write_runs(sqlite_url, [_run(rid, [_gpu()])])
    out = make_report(
        [rid], db_url=sqlite_url, fmt="latex", standalone=standalone,
        output=tmp_path / "paper" / "cost.tex",
    )  # fmt: skip
    assert [p.name for p in out.files] == ["cost.tex", "cost.bib"]
    assert not (tmp_path / "paper" / "greentrack.bib").exists()
