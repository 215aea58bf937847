"""The CLI as a user touches it: click's runner for every command, real subprocesses for the
main paths (run -- CMD, a SIGKILLed child later shown as crashed, SIGTERM -> interrupted)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.meters import ReplayMeter

REPO = Path(__file__).resolve().parents[1]


def make_runs(url: str) -> list[str]:
    ids = []
    for i, (project, tag) in enumerate([("cifar", "a"), ("cifar", "b"), ("imagenet", "a")]):
        meter = ReplayMeter([(0.0, {"gpu:0": 100.0 * 10**i})])
        with gt.track(
            f"r{i}", project=project, db=url, meters=[meter], tags={"t": tag}, params={"lr": i}
        ) as run:
            with run.phase("train"):
                time.sleep(0.02)
            run.log(step=0, acc=0.5 + i / 10)
        ids.append(run.id)
    return ids


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_runs_lists_newest_first_with_filters_and_formats(store_url: str) -> None:
    ids = make_runs(store_url)
    code, out = invoke("runs", "--db", store_url, "--format", "json")
    assert code == 0, out
    objs = json.loads(out)
    assert [o["id"] for o in objs] == ids[::-1]
    required = {
        "id",
        "project",
        "name",
        "status",
        "started_at",
        "ended_at",
        "duration_s",
        "energy_j",
        "energy_kwh",
        "components",
        "phases",
        "metrics",
        "params",
        "tags",
    }
    assert required <= set(objs[0])
    assert objs[0]["components"][0].keys() >= {"component", "device", "energy_j", "method"}
    assert objs[0]["phases"][0].keys() >= {"name", "duration_s", "energy_j"}
    code, out = invoke(
        "runs", "--db", store_url, "--project", "cifar", "--tag", "t=b", "--format", "json"
    )
    assert [o["id"] for o in json.loads(out)] == [ids[1]]
    code, out = invoke("runs", "--db", store_url, "--sort", "energy", "--asc", "--format", "csv")
    lines = out.strip().splitlines()
    assert lines[0].startswith("id,project,name,status") and len(lines) == 4
    assert [ln.split(",")[0] for ln in lines[1:]] == [i for i in ids]  # energy grows with i
    code, out = invoke("runs", "--db", store_url, "--since", "1h", "--status", "finished")
    assert code == 0 and out.count("finished") == 3 and "[" not in out
    code, out = invoke("runs", "--db", store_url, "--since", "yesterday-ish")
    assert code == 1 and "neither a duration" in out


def test_show_by_prefix_table_and_json(store_url: str) -> None:
    ids = make_runs(store_url)
    code, out = invoke("show", ids[2][:5], "--db", store_url)
    assert code == 0, out
    assert "imagenet/r2" in out and "gpu:0" in out and "[sampled]" in out and "train" in out
    code, out = invoke("show", ids[2][:5], "--db", store_url, "--format", "json")
    obj = json.loads(out)
    assert obj["id"] == ids[2] and obj["metrics"] == {"acc": pytest.approx(0.7)}
    assert obj["meta"]["python"] and obj["meta"]["command"]


def test_bad_run_ids_and_options_are_one_line_errors(sqlite_url: str) -> None:
    make_runs(sqlite_url)
    code, out = invoke("show", "ffffffff", "--db", sqlite_url)
    assert code == 1 and out.startswith("Error: no run id starts with") and out.count("\n") == 1
    code, out = invoke("show", "", "--db", sqlite_url)
    assert code == 1 and "Error:" in out and "Traceback" not in out
    code, out = invoke("runs", "--db", "mysql://x/y")
    assert code == 1 and "unsupported database URL scheme" in out
    code, out = invoke("runs", "--bogus")
    assert code == 2 and "No such option" in out


def test_ambiguous_prefix(sqlite_url: str) -> None:
    from tests_helpers import checkpoint

    from greentrack.store.writer import StoreWriter

    w = StoreWriter(sqlite_url)
    w.write(checkpoint("abc1" + "0" * 28))
    w.write(checkpoint("abc2" + "0" * 28))
    w.close()
    code, out = invoke("show", "abc", "--db", sqlite_url)
    assert code == 1 and "matches several runs" in out


def test_db_commands_and_detect(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code, out = invoke("db", "upgrade", "--db", url)
    from greentrack.store.schema import SCHEMA_REVISION

    assert code == 0 and f"schema at {SCHEMA_REVISION}" in out
    code, out = invoke("db", "current", "--db", url)
    assert code == 0 and "up to date" in out
    code, out = invoke("detect")
    assert code == 0
    assert "rapl" in out.lower() and "nvml" in out.lower() and "estimate" in out.lower()


def test_every_command_has_help_with_an_example() -> None:
    import click

    def walk(cmd: click.Command, path: list[str]):
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])

    readme = (REPO / "README.md").read_text()
    for path, _cmd in walk(main, []):
        if not path:
            continue
        code, out = invoke(*path, "--help")
        assert code == 0, path
        assert "Example" in out, f"`greentrack {' '.join(path)} --help` has no example"
        assert f"greentrack {' '.join(path)}" in readme, (
            f"README lacks `greentrack {' '.join(path)}`"
        )


def _env(home: Path, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GREENTRACK_HOME=str(home), GREENTRACK_DB=url)
    return env


def test_run_command_returns_the_exit_code_and_tracks_it(sqlite_url: str, gt_home: Path) -> None:
    env = _env(gt_home, sqlite_url)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "greentrack",
            "run",
            "--project",
            "cli",
            "--",
            sys.executable,
            "-c",
            "import time, sys; time.sleep(0.3); sys.exit(3)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    out = subprocess.run(
        [sys.executable, "-m", "greentrack", "show", "latest", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    obj = json.loads(out.stdout)
    assert obj["status"] == "failed" and obj["error"] == "exit code 3"
    assert obj["project"] == "cli" and obj["duration_s"] >= 0.3
    assert obj["tags"]["exit_code"] == "3"


CHILD = textwrap.dedent(
    """
    import sys, time
    import greentrack as gt
    from greentrack.meters import ReplayMeter
    with gt.track("victim", project="faults", meters=[ReplayMeter([(0.0, {"gpu:0": 200.0})])],
                  interval_s=0.05, checkpoint_s=0.2) as run:
        print(run.id, flush=True)
        while True:
            time.sleep(0.01)
    """
)


def _start_child(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    run_id = child.stdout.readline().strip()
    time.sleep(1.0)  # several checkpoints
    return child, run_id


def test_sigkilled_run_is_shown_crashed_with_checkpointed_energy(
    sqlite_url: str, gt_home: Path
) -> None:
    child, run_id = _start_child(_env(gt_home, sqlite_url))
    # Kill only once the store holds checkpointed energy (a deadline, not a sleep: under load
    # the child may need longer than a quiet machine does to write its first checkpoints).
    seen_j, deadline = 0.0, time.monotonic() + 60
    while seen_j < 200.0 * 0.6 and time.monotonic() < deadline:
        code, out = invoke("show", run_id, "--db", sqlite_url, "--format", "json")
        seen_j = json.loads(out)["energy_j"] if code == 0 else 0.0
        time.sleep(0.05)
    assert seen_j >= 200.0 * 0.6, "no checkpoint reached the store within 60 s"
    child.kill()
    child.wait(timeout=10)
    code, out = invoke("show", run_id, "--db", sqlite_url, "--format", "json")
    obj = json.loads(out)
    assert obj["status"] == "crashed"
    # what was checkpointed stays; the stored energy is that of the stored duration at 200 W
    assert seen_j <= obj["energy_j"] <= 200.0 * (obj["duration_s"] + 0.05) + 1e-6
    code, out = invoke("sync", "--db", sqlite_url)
    assert code == 0 and "1 run(s) marked crashed" in out


def test_sigterm_leaves_an_interrupted_run(sqlite_url: str, gt_home: Path) -> None:
    child, run_id = _start_child(_env(gt_home, sqlite_url))
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=20) == -signal.SIGTERM  # the default action still happens
    _, out = invoke("show", run_id, "--db", sqlite_url, "--format", "json")
    obj = json.loads(out)
    assert obj["status"] == "interrupted" and "SIGTERM" in obj["error"]
    assert obj["energy_j"] == pytest.approx(200.0 * obj["duration_s"], rel=0.05)


def test_run_command_forwards_sigterm_to_the_child(sqlite_url: str, gt_home: Path) -> None:
    env = _env(gt_home, sqlite_url)
    child_code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('child got SIGTERM', flush=True), "
        "sys.exit(7)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "greentrack", "run", "--", sys.executable, "-c", child_code],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 7  # the child's own exit code
    assert "child got SIGTERM" in proc.stdout.read()
    _, out = invoke("show", "latest", "--db", sqlite_url, "--format", "json")
    obj = json.loads(out)
    assert obj["status"] == "interrupted" and "SIGTERM" in obj["error"]
