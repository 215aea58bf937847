"""``greentrack bench``: every workload runs one tiny step; results, table, JSON, sweep, store."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from greentrack.cli import main  # noqa: E402
from greentrack.errors import ConfigError  # noqa: E402
from greentrack.report.pareto import pareto_front  # noqa: E402
from greentrack.workloads import bench as B  # noqa: E402
from greentrack.workloads import builders, output  # noqa: E402
from greentrack.workloads.results import BenchResult  # noqa: E402
from greentrack.workloads.sweep import AttentionSweep, SweepPoint, crossover_length  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
JSON_KEYS = ["workload", "baseline", "accuracy", "params_total", "params_active",
             "flops_per_example", "train_energy_j", "inference_energy_j_per_1k", "co2e_g",
             "energy_method"]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole tiny suite once, through the CLI, into its own store."""
    home = tmp_path_factory.mktemp("bench-home")
    db = f"sqlite:///{home / 'bench.db'}"
    old = {k: os.environ.get(k) for k in ("GREENTRACK_HOME", "GREENTRACK_SYSFS")}
    os.environ["GREENTRACK_HOME"] = str(home)
    os.environ["GREENTRACK_SYSFS"] = str(home / "no-sysfs")  # no RAPL: the estimate
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(
            main, ["bench", "--tiny", "--format", "json", "--no-progress", "--db", db]
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return result, db


def test_tiny_suite_runs_every_workload(tiny_run):
    result, _ = tiny_run
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["workload"] for r in rows] == list(builders.WORKLOADS)
    for r in rows:
        assert list(r)[: len(JSON_KEYS)] == JSON_KEYS
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["params_total"] >= r["params_active"] > 0
        assert r["flops_per_example"] > 0
        for key in ("train_energy_j", "inference_energy_j_per_1k", "inference_time_s_per_1k"):
            assert math.isfinite(r[key]) and r[key] >= 0
        assert r["energy_method"] == "estimated"  # no RAPL, no GPU here
        assert r["baseline"] in (None, *builders.WORKLOADS)
    by = {r["workload"]: r for r in rows}
    assert by["early_exit"]["baseline"] == "transformer_shapes"
    assert by["moe"]["params_active"] < by["moe"]["params_total"]
    assert by["sparse_ffn"]["params_active"] < by["sparse_ffn"]["params_total"]
    assert by["prune"]["params_active"] < by["prune"]["params_total"]  # non-zero weights
    assert by["int8"]["notes"]["bytes_int8"] < by["int8"]["notes"]["bytes_float"]
    assert by["early_exit"]["ab_speedup_vs_baseline"] > 0
    assert by["transformer_shapes"]["ab_speedup_vs_baseline"] is None


def test_tiny_suite_runs_are_stored_in_project_bench(tiny_run):
    from greentrack.store.queries import get_run, list_runs, open_store

    _, db = tiny_run
    conn = open_store(db)
    try:
        runs = list_runs(conn, project="bench", limit=None)
        assert sorted(r["name"] for r in runs) == sorted(builders.WORKLOADS)
        assert all(r["status"] == "finished" for r in runs)
        one = get_run(conn, runs[0]["id"])
    finally:
        conn.close()
    text = json.dumps(one, default=str)
    for phase in ("train", "eval", "inference"):
        assert f'"{phase}"' in text
    assert "accuracy" in text and "flops_per_example" in text


def test_only_adds_baselines_and_prerequisites():
    assert builders.resolve(["early_exit"]) == ["transformer_shapes", "early_exit"]
    assert builders.resolve(["prune_csr"]) == ["transformer_shapes", "prune", "prune_csr"]
    assert builders.resolve(["dfa", "linear_attention_sweep"]) == ["backprop_mlp", "dfa"]
    assert builders.resolve(None) == list(builders.WORKLOADS)


def test_unknown_workload_suite_or_device_is_a_one_line_error():
    runner = CliRunner()
    r = runner.invoke(main, ["bench", "--only", "early_exit,warp_drive", "--no-progress"])
    assert r.exit_code == 1
    assert r.output.startswith("Error: unknown workload 'warp_drive'; choose from")
    assert "Traceback" not in r.output
    with pytest.raises(ConfigError, match="unknown suite"):
        B.run_bench("huge")
    if not torch.cuda.is_available():
        r = runner.invoke(main, ["bench", "--tiny", "--device", "cuda", "--no-progress"])
        assert r.exit_code == 1 and "no CUDA device" in r.output


def test_help_has_summary_and_example():
    r = CliRunner().invoke(main, ["bench", "--help"])
    assert r.exit_code == 0
    assert "Example:" in r.output and "--only" in r.output and "linear_attention_sweep" in r.output


def _result(name, baseline, energy, time_s, acc, method="estimated"):
    ab = 2.0 / time_s if baseline else None
    return BenchResult(name, baseline, "shapes", acc, 100, 50, 1e6, 10.0, energy, None,
                         method, 1.0, time_s, time_s, time_s, ab, "id", {"k": 1})  # fmt: skip


def test_table_shows_ratios_methods_and_the_estimate_caveat():
    rows = [_result("base", None, 10.0, 2.0, 0.9), _result("fast", "base", 4.0, 0.5, 0.89)]
    text = output.format_table(rows)
    assert "x2.50" in text and "x4.00" in text  # energy and A/B time: baseline / this
    assert "estimated" in text and "machine-wide CPU load" in text
    assert "notes:" in text
    counted = output.format_table([_result("base", None, 10.0, 2.0, 0.9, method="counter")])
    assert "machine-wide CPU load" not in counted


def test_results_json_puts_documented_keys_first():
    row = output.results_json([_result("base", None, 10.0, 2.0, 0.9)])[0]
    assert list(row)[: len(JSON_KEYS)] == JSON_KEYS
    assert row["inference_time_s_per_1k"] == 2.0


def test_pareto_front():
    pts = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (0.5, 0.4), (2.0, 0.7)]
    assert sorted(pareto_front(pts)) == [0, 1, 3]  # the one implementation, by energy


def _pt(kind, L, t):
    return SweepPoint(kind, L, 1, t, t, t, t, t, "estimated")


def test_crossover_needs_a_win_at_every_longer_length():
    pts = [_pt("softmax", 64, 1.0), _pt("softmax", 128, 2.0), _pt("softmax", 256, 4.0),
           _pt("softmax", 512, 8.0),
           _pt("rfa", 64, 0.5), _pt("rfa", 128, 2.5), _pt("rfa", 256, 3.0),
           _pt("rfa", 512, 3.5)]  # fmt: skip
    assert crossover_length(pts, "rfa", "time_s") == 256  # the early win at 64 does not count
    pts[-1] = _pt("rfa", 512, 9.0)
    assert crossover_length(pts, "rfa", "time_s") is None


def test_sweep_tiny_through_the_cli(tmp_path):
    db = f"sqlite:///{tmp_path / 's.db'}"
    r = CliRunner().invoke(
        main,
        ["bench", "--tiny", "--only", "linear_attention_sweep", "--format", "json",
         "--no-progress", "--db", db],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert {p["kind"] for p in obj["points"]} == {"softmax", "rfa", "abc"}
    assert set(obj["crossover"]) == {"best_time_s", "time_s", "energy_j", "flops"}
    sweep = AttentionSweep([SweepPoint(**p) for p in obj["points"]], obj["crossover"])
    from greentrack.workloads.sweep import format_sweep

    assert "beats softmax attention" in format_sweep(sweep)


def test_plot_needs_matplotlib_or_writes_a_png(tmp_path):
    import importlib.util

    out = tmp_path / "pareto.png"
    rows = [_result("base", None, 10.0, 2.0, 0.9), _result("fast", "base", 4.0, 0.5, 0.89)]
    if importlib.util.find_spec("matplotlib") is None:
        with pytest.raises(ConfigError, match="pip install"):
            B.bench("tiny", ["early_exit"], plot_path=str(out), progress=False)
    else:
        output.plot_pareto(rows, str(out))
        assert out.read_bytes()[:4] == b"\x89PNG"


def _run(args, gt_home, timeout=240):
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_example_bench_early_exit(gt_home):
    out = _run([str(REPO / "examples" / "bench_early_exit.py"), "--suite", "tiny"], gt_home)
    assert "less inference energy (estimated)" in out and "mean exit layer" in out


def test_example_bench_models(gt_home):
    out = _run([str(REPO / "examples" / "bench_models.py"), "--steps", "3"], gt_home)
    assert "FLOPs per example" in out and "[estimated]" in out


def test_benchmark_script_linear_attention(gt_home, tmp_path):
    out_json = tmp_path / "sweep.json"
    out = _run([str(REPO / "benchmarks" / "bench_linear_attention.py"), "--lengths", "8,16",
                "--width", "16", "--layers", "1", "--min-time-s", "0", "--json",
                str(out_json)], gt_home)  # fmt: skip
    assert "beats softmax attention on best time" in out
    assert len(json.loads(out_json.read_text())["points"]) == 6
