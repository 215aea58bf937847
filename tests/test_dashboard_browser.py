"""The dashboard and the HTML report in a real browser (headless Chromium).

What a person sees: the runs table is rendered from the page's JSON, the filter box and the
query string filter it, a header click sorts it, run pages show their charts, and no page logs a
console error. Screenshots are kept under artifacts/screenshots/ (gitignored) for a look.

Chromium is Debian's ``chromium`` package (.ci/run installs it). Without it these tests FAIL,
unless GREENTRACK_TEST_BROWSER=skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from greentrack.report.pricetag import make_report
from greentrack.report.site import build_site
from greentrack.testing.synthetic import demo_project, write_runs

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("GREENTRACK_TEST_BROWSER") == "skip":
        pytest.skip("no Chromium and GREENTRACK_TEST_BROWSER=skip")
    pytest.fail(
        "Chromium is not installed: `apt-get install -y chromium` (CI's .ci/run does), or set "
        "GREENTRACK_TEST_BROWSER=skip to skip the browser tests"
    )


def browse(chromium: str, url: str, profile: Path, *, screenshot: Path | None = None) -> str:
    """Load ``url`` headless; return the DOM after the page's scripts ran. Fails on any console
    message (our pages log nothing) or an uncaught error."""
    args = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        args += [f"--screenshot={screenshot}", "--window-size=1280,1400"]
    else:
        args.append("--dump-dom")
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    problems = [
        ln
        for ln in done.stderr.splitlines()
        if "CONSOLE" in ln or "Uncaught" in ln or "console error" in ln.lower()
    ]
    assert not problems, "the page logged to the console:\n" + "\n".join(problems)
    assert done.returncode == 0, done.stderr[-2000:]
    if screenshot is not None:
        assert screenshot.stat().st_size > 20_000, "the screenshot is (nearly) empty"
    return done.stdout


def shown_ids(dom: str) -> list[str]:
    return re.findall(r'<tr data-id="([0-9a-f]+)"', dom)


@pytest.fixture
def site(sqlite_url: str, tmp_path: Path) -> Path:
    write_runs(sqlite_url, demo_project())
    return build_site(tmp_path / "site", db_url=sqlite_url, latest=5).index


def test_index_renders_filters_and_sorts(chromium: str, site: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    dom = browse(chromium, site.as_uri(), profile)
    ids = shown_ids(dom)
    assert len(ids) == 7 and ids[0].startswith("3f2a0002")  # newest first
    assert "showing 7 of 7 runs" in dom
    tbody = re.search(r'<table id="runs">.*?</table>', dom, re.S).group(0)
    assert tbody.count('<a href="runs/') == 5  # the latest 5 have pages
    # a filter in the query string (bookmarkable view), sorted by energy, ascending
    dom = browse(chromium, site.as_uri() + "?q=sweep&sort=facility_energy_kwh&dir=asc", profile)
    ids = shown_ids(dom)
    assert [i[:8] for i in ids] == ["9b1c0000", "9b1c0001", "9b1c0002", "9b1c0003"]
    assert "showing 4 of 7 runs" in dom
    dom = browse(chromium, site.as_uri() + "?q=final-run-that-does-not-exist", profile)
    assert shown_ids(dom) == [] and "showing 0 of 7 runs" in dom
    browse(chromium, site.as_uri(), profile, screenshot=ARTIFACTS / "dashboard_index.png")


def test_typing_in_the_filter_and_clicking_a_header(
    chromium: str, site: Path, tmp_path: Path
) -> None:
    """Drive the page like a person: type into the box, click the CO2e header twice."""
    harness = site.with_name("harness.html")
    script = """<script>
    (function () {
      var rows = function () {
        return Array.prototype.map.call(document.querySelectorAll('#runs tbody tr'),
                                        function (r) { return r.dataset.id.slice(0, 8); });
      };
      var box = document.getElementById('filter');
      box.value = 'resnet18 accuracy=0.9';
      box.dispatchEvent(new Event('input'));
      var filtered = rows();
      var th = document.querySelector('#runs th[data-key="co2e_g"]');
      th.click();
      var desc = rows();
      th.click();
      var asc = rows();
      var sel = document.getElementById('status');
      sel.value = 'finished'; sel.dispatchEvent(new Event('change'));
      var pre = document.createElement('pre');
      pre.id = 'result';
      pre.textContent = JSON.stringify({filtered: filtered, desc: desc, asc: asc,
        sort: th.getAttribute('aria-sort'), count: document.getElementById('count').textContent});
      document.body.appendChild(pre);
    })();
    </script></body>"""
    harness.write_text(site.read_text().replace("</body>", script))
    dom = browse(chromium, harness.as_uri(), tmp_path / "profile")
    m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert m, "the harness did not run"
    got = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    # "resnet18" and "accuracy=0.9" both match only the three seeds of the final setting
    assert sorted(got["filtered"]) == ["3f2a0000", "3f2a0001", "3f2a0002"]
    assert got["desc"] == ["3f2a0002", "3f2a0001", "3f2a0000"]  # more energy, more CO2e
    assert got["asc"] == got["desc"][::-1] and got["sort"] == "ascending"
    assert got["count"] == "showing 3 of 7 runs"


def test_run_page_and_html_report_in_the_browser(
    chromium: str, site: Path, sqlite_url: str, tmp_path: Path
) -> None:
    page = next(p for p in (site.parent / "runs").glob("3f2a0000*.html"))
    dom = browse(chromium, page.as_uri(), tmp_path / "profile")
    assert dom.count("<svg") == 3 and "How it was obtained" in dom
    browse(chromium, page.as_uri(), tmp_path / "profile", screenshot=ARTIFACTS / "run_page.png")
    report = tmp_path / "report.html"
    make_report(project="cifar", db_url=sqlite_url, fmt="html", output=report)
    dom = browse(chromium, report.as_uri(), tmp_path / "profile")
    assert dom.count("<svg") >= 4 and "Method notes" in dom
    browse(chromium, report.as_uri(), tmp_path / "profile", screenshot=ARTIFACTS / "report.png")


def test_the_console_check_catches_script_errors(chromium: str, tmp_path: Path) -> None:
    """The harness itself can fail: a page with an uncaught error is reported."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    with pytest.raises(AssertionError, match="console"):
        browse(chromium, page.as_uri(), tmp_path / "profile")
