"""The benchmark harness: train, evaluate and time each workload under ``greentrack.track``.

Each workload is one tracked run in project ``bench`` with three phases:

- ``train``: training (or the compression step: quantizing, pruning and fine-tuning,
  converting to sparse rows; threshold calibration for early exit);
- ``eval``: accuracy on the held-out test split;
- ``inference``: the test split predicted again and again (at least ``min_inference_s``), so
  that the energy per 1,000 examples is read over a long enough window.

The result of each run is a :class:`BenchResult`: accuracy, parameters (total / active per
example), FLOPs per example (``torch.utils.flop_counter``, counted on the inference path that
actually runs), phase energies and times, CO₂e, and the method behind the energy figures
(``counter``, ``sampled`` or ``estimated``). Where a workload compares with a baseline (early
exit with the plain Transformer, DFA with backprop, ...), the baseline runs too.

The tasks are generated in code (:mod:`greentrack.workloads.data`): no network. The suites'
sizes are in :mod:`~greentrack.workloads.suites`, the workloads in
:mod:`~greentrack.workloads.builders`, the table, JSON and chart in
:mod:`~greentrack.workloads.output`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from greentrack.errors import ConfigError
from greentrack.tracker import track
from greentrack.units import format_sig
from greentrack.workloads.builders import WORKLOADS, Built, Context, Workload, param_counts, resolve
from greentrack.workloads.flops import count_flops
from greentrack.workloads.output import plot_pareto, require_matplotlib
from greentrack.workloads.progress import Progress
from greentrack.workloads.results import BenchReport, BenchResult
from greentrack.workloads.suites import SUITES, SWEEP, SWEEP_SETTINGS
from greentrack.workloads.training import accuracy, predict_logits

__all__ = ["PROJECT", "bench", "run_bench"]

PROJECT = "bench"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _check_device(device: str) -> None:
    if device == "cpu":
        return
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                "--device cuda: no CUDA device is visible to PyTorch; use --device cpu"
            )
        return
    raise ConfigError(f"unknown device {device!r}; use cpu or cuda")


def _phase_figures(summary: Any, name: str) -> tuple[float, float]:
    """(energy_j, duration_s) of the phase ``name`` of a run summary."""
    for p in summary.phases:
        if p.name == name:
            return float(p.energy_j), float(p.duration_s)
    return 0.0, 0.0


def _run_one(w: Workload, ctx: Context, db_url: str | None) -> tuple[BenchResult, Built]:
    s = ctx.sizes
    task = ctx.task(w.task)
    params = {"suite": s.name, "device": ctx.device, "seed": ctx.seed, "width": s.width}
    tags = {"suite": s.name, "task": w.task, "baseline": w.baseline or "", "workload": w.name}
    x_test, y_test = task.test.x, task.test.y
    n_test = int(x_test.shape[0])
    with track(w.name, project=PROJECT, params=params, tags=tags, db=db_url) as run:
        ctx.progress.run = run
        ctx.progress.phase("train")
        with run.phase("train"):
            built = w.build(ctx)
            _sync(ctx.device)
        ctx.progress.run = None
        built.model.eval()
        ctx.progress.phase("eval")
        with run.phase("eval"), torch.inference_mode():
            logits = predict_logits(built.predict, x_test, s.eval_batch)
            acc = accuracy(logits.to(y_test.device), y_test)
            _sync(ctx.device)
        notes = dict(built.notes)
        if built.test_stats is not None:
            with torch.inference_mode():
                notes.update(built.test_stats(x_test))
        total, active = (
            built.param_counts(notes) if built.param_counts else param_counts(built.model)
        )
        batch = x_test[: s.eval_batch]
        flops = count_flops(built.predict, batch) / max(1, batch.shape[0])
        ctx.progress.phase("inference")
        with torch.inference_mode():
            built.predict(batch)  # warm-up, outside the phase
        with run.phase("inference"), torch.inference_mode():
            t0, c0, n_done, best_s = time.perf_counter(), time.process_time(), 0, math.inf
            while True:
                t_pass = time.perf_counter()
                for i in range(0, n_test, s.eval_batch):
                    built.predict(x_test[i : i + s.eval_batch])
                _sync(ctx.device)
                best_s = min(best_s, time.perf_counter() - t_pass)
                n_done += n_test
                if time.perf_counter() - t0 >= s.min_inference_s:
                    break
            cpu_s = time.process_time() - c0
        run.log(accuracy=acc, flops_per_example=flops, params_total=total, params_active=active)
        ab = None
        if w.baseline and w.baseline in ctx.built:
            ctx.progress.phase(f"A/B timing against {w.baseline}")
            ab = _ab_speedup(ctx.built[w.baseline].predict, built.predict, x_test, ctx)
            run.log(ab_speedup_vs_baseline=ab)
        run.log_flops(flops * n_done)
    summary = run.summary()
    train_j, train_s = _phase_figures(summary, "train")
    inf_j, inf_s = _phase_figures(summary, "inference")
    methods = sorted({c.method for c in summary.components}) or ["none"]
    result = BenchResult(
        workload=w.name,
        baseline=w.baseline,
        task=w.task,
        accuracy=acc,
        params_total=int(total),
        params_active=int(active),
        flops_per_example=float(flops),
        train_energy_j=train_j,
        inference_energy_j_per_1k=inf_j / n_done * 1000.0,
        co2e_g=summary.co2e_g,
        energy_method="+".join(methods),
        train_time_s=train_s,
        inference_time_s_per_1k=inf_s / n_done * 1000.0,
        inference_best_s_per_1k=best_s / n_test * 1000.0,
        inference_cpu_s_per_1k=cpu_s / n_done * 1000.0,
        ab_speedup_vs_baseline=ab,
        run_id=summary.id,
        notes=notes,
    )
    ctx.progress.done(
        f"accuracy {acc:.3f}, inference {result.inference_time_s_per_1k:.3f} s/1k, "
        f"{format_sig(result.inference_energy_j_per_1k)} J/1k ({result.energy_method})"
    )
    return result, built


def _ab_speedup(
    base: Callable[[torch.Tensor], torch.Tensor],
    this: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    ctx: Context,
) -> float:
    """Median over rounds of (baseline pass time / this pass time), passes interleaved."""
    s = ctx.sizes
    rounds = 1 if s.min_inference_s <= 0 else 9

    def one_pass(predict: Callable[[torch.Tensor], torch.Tensor]) -> float:
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], s.eval_batch):
            predict(x[i : i + s.eval_batch])
        _sync(ctx.device)
        return time.perf_counter() - t0

    ratios = []
    with torch.inference_mode():
        for r in range(rounds):
            first, second = (base, this) if r % 2 == 0 else (this, base)  # alternate the order
            t_first, t_second = one_pass(first), one_pass(second)
            t_base, t_this = (t_first, t_second) if r % 2 == 0 else (t_second, t_first)
            ratios.append(t_base / max(t_this, 1e-12))
    ratios.sort()
    return ratios[len(ratios) // 2]


def run_bench(
    suite: str = "quick",
    only: Sequence[str] | None = None,
    device: str = "cpu",
    db_url: str | None = None,
    progress: bool = True,
    *,
    seed: int = 0,
) -> list[BenchResult]:
    """Train, evaluate and time the workloads of ``suite``; store each as a run of ``bench``.

    Args:
        suite: ``tiny`` (one step each, for CI), ``quick`` (minutes on a CPU) or ``full``.
        only: workload names (see :func:`~greentrack.workloads.builders.workload_names`); their
            baselines and prerequisites run too. ``linear_attention_sweep`` is accepted and
            ignored here (see :func:`greentrack.workloads.sweep.run_attention_sweep`).
        device: ``cpu`` or ``cuda``.
        db_url: the store (default: the configured one).
        progress: show progress on stderr.
        seed: seed of data generation and model initialisation.

    Raises:
        ConfigError: unknown suite, workload or device.
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    _check_device(device)
    names = resolve(only)
    prog = Progress(progress, len(names))
    ctx = Context(SUITES[suite], device, seed, prog)
    needed = {n for name in names for n in WORKLOADS[name].needs}
    needed |= {WORKLOADS[name].baseline for name in names} - {None}  # for A/B timing
    results = []
    for name in names:
        prog.start(name)
        result, built = _run_one(WORKLOADS[name], ctx, db_url)
        results.append(result)
        if name in needed:  # keep only the models a later workload builds on
            ctx.built[name] = built
    return results


def bench(
    suite: str = "quick",
    only: Sequence[str] | None = None,
    device: str = "cpu",
    db_url: str | None = None,
    progress: bool = True,
    *,
    plot_path: str | None = None,
) -> BenchReport:
    """:func:`run_bench` for the workloads asked for, plus the attention sweep when
    ``linear_attention_sweep`` is among ``only``; plots the Pareto chart to ``plot_path``.
    """
    names = [n.strip() for n in (only or []) if n.strip()]
    if plot_path:
        require_matplotlib()  # fail before minutes of training, not after
    sweep = None
    if SWEEP in names:
        from greentrack.workloads.sweep import run_attention_sweep

        kw = SWEEP_SETTINGS.get(suite, {})
        sweep = run_attention_sweep(device=device, db_url=db_url, progress=progress, **kw)
    results: list[BenchResult] = []
    if not names or any(n != SWEEP for n in names):
        results = run_bench(suite, names or None, device, db_url, progress)
    if plot_path and results:
        plot_pareto(results, plot_path)
    return BenchReport(results, sweep)
