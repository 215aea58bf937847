"""Every example of the README's carbon and scheduling sections runs as shown, offline, on a
fresh home without credentials (the live GB forecast from a local server standing in for the
API, through ``[providers.uk] url``); and the no-forecast error names the ways forward."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_carbon_providers import LocalServer, uk_data

from greentrack.cli import main
from greentrack.store import queries

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("## Carbon accounting", "## Carbon-aware scheduling")


def section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    nxt = text.find("\n## ", start + len(heading))
    return text[start : nxt if nxt >= 0 else len(text)]


def examples() -> list[tuple[str, str]]:
    """``("python", code)`` for each python block, ``("shell", line)`` for each command line of
    the other blocks (``\\`` continuations joined, comments dropped)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    out: list[tuple[str, str]] = []
    for heading in SECTIONS:
        for lang, body in re.findall(r"```(\w*)\n(.*?)```", section(text, heading), re.S):
            if lang == "python":
                out.append(("python", body))
                continue
            if lang not in ("", "sh", "bash", "console"):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = line.split(" # ")[0].split("  #")[0].strip()
                if line and not line.startswith("#") and not line.startswith("|"):
                    out.append(("shell", line))
    return out


EXAMPLES = examples()


def test_the_sections_have_examples():
    kinds = [k for k, _ in EXAMPLES]
    assert kinds.count("python") >= 3 and kinds.count("shell") >= 5, EXAMPLES


@pytest.fixture(scope="module")
def uk_server():
    now = time.time()
    slot = now - now % 1800
    with LocalServer() as server:
        # the cleanest half-hour is the current one: the scheduled command starts at once
        data = uk_data(slot - 1800, [(None, 100.0 + 10 * i) for i in range(60)])
        server.add("/intensity", (200, uk_data(slot, [(None, 100.0)])))
        server.add("/intensity/*", (200, data))
        yield server


@pytest.fixture
def workdir(tmp_path: Path, uk_server: LocalServer) -> tuple[Path, dict[str, str]]:
    """A working folder like a checkout's root (tests/, examples/, ../shared), a fresh home whose
    only setting points the GB provider at the local server, and no credentials."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("tests", "examples"):
        (work / name).symlink_to(REPO / name)
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")
    (work / "train.py").write_text("print('training')\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f'[providers.uk]\nurl = "{uk_server.url}"\n')
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GREENTRACK_", "ELECTRICITYMAPS_", "WATTTIME_"))
    }
    env.update(GREENTRACK_HOME=str(home), MPLBACKEND="Agg")
    return work, env


@pytest.mark.parametrize(
    ("kind", "code"), EXAMPLES, ids=[f"{k}{i}" for i, (k, _) in enumerate(EXAMPLES)]
)
def test_readme_example_runs_as_shown(kind, code, workdir):
    work, env = workdir
    if kind == "python":
        argv = [sys.executable, "-c", code]
    else:
        words = shlex.split(code)
        head = {"greentrack": [sys.executable, "-m", "greentrack"], "python": [sys.executable]}
        assert words[0] in head, f"unexpected command in the README: {code}"
        argv = head[words[0]] + words[1:]
    proc = subprocess.run(
        argv, cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"{code}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    if "-- python train.py" in code:  # the scheduled command ran tracked, on the plan's source
        assert "training" in proc.stdout
        conn = queries.open_store(str(Path(env["GREENTRACK_HOME"]) / "greentrack.db"))
        try:
            (row,) = queries.list_runs(conn)
            run = queries.get_run(conn, row["id"])
        finally:
            conn.close()
        assert run["intensity_source"]["name"] == "uk-carbon-intensity"
        assert run["plan"]["source"]["name"] == "uk-carbon-intensity"


def test_the_no_forecast_error_names_the_ways_forward(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENTRACK_HOME", str(tmp_path))
    r = CliRunner().invoke(main, ["schedule", "--region", "ES", "--duration", "6h", "--within",
                                  "24h"])  # fmt: skip
    assert r.exit_code == 1
    (line,) = [x for x in r.output.splitlines() if x.strip()]
    assert line.startswith("Error: codecarbon-static has no forecasts")
    for way in ("--csv FILE", "--at", "--source uk", "ELECTRICITYMAPS_TOKEN", "WATTTIME_USERNAME"):
        assert way in line
