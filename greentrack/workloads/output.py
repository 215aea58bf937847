"""What ``greentrack bench`` prints and draws: the table, the JSON list and the Pareto chart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greentrack.errors import ConfigError
from greentrack.report.pareto import Panel, pareto_panels
from greentrack.workloads.results import BenchReport, BenchResult
from greentrack.workloads.suites import SWEEP

__all__ = [
    "ESTIMATE_NOTE",
    "JSON_KEYS",
    "format_report",
    "format_table",
    "pareto_figure",
    "plot_pareto",
    "require_matplotlib",
    "results_json",
]

JSON_KEYS = (
    "workload", "baseline", "accuracy", "params_total", "params_active", "flops_per_example",
    "train_energy_j", "inference_energy_j_per_1k", "co2e_g", "energy_method",
)  # fmt: skip

ESTIMATE_NOTE = (
    "Energy 'estimated' = CPU TDP x machine-wide CPU load x wall time (+ RAM W/GiB): no RAPL or "
    "GPU counter here, so energy comparisons rest on an estimate driven by CPU utilisation and "
    "time, and other programs' load on the machine counts too. Time is the robust figure: "
    "'best s/1k' is the fastest pass over the test split, 'cpu s/1k' this process's CPU time, "
    "'A/B base/this s' the median speed-up over passes alternating with the baseline."
)


def results_json(results: Sequence[BenchResult]) -> list[dict[str, Any]]:
    """The ``--format json`` list: the documented keys first, then time, run id and notes."""
    out = []
    for r in results:
        d = r.to_dict()
        row = {k: d[k] for k in JSON_KEYS}
        row.update({k: v for k, v in d.items() if k not in row})
        out.append(row)
    return out


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _ratio(base: float, this: float) -> str:
    return f"x{base / this:.2f}" if this > 0 and base > 0 else "-"


def format_table(results: Sequence[BenchResult]) -> str:
    """A plain-text table of the results, with ratios against each baseline and the notes."""
    by_name = {r.workload: r for r in results}
    head = ["workload", "task", "params tot/act", "FLOPs/ex", "train s", "train J",
            "inf s/1k", "best s/1k", "cpu s/1k", "inf J/1k", "base/this J", "A/B base/this s",
            "accuracy", "CO2e g", "method"]  # fmt: skip
    rows = [head]
    for r in results:
        b = by_name.get(r.baseline or "")
        rows.append([
            r.workload,
            r.task,
            f"{_si(r.params_total)}/{_si(r.params_active)}",
            _si(r.flops_per_example),
            f"{r.train_time_s:.1f}",
            f"{r.train_energy_j:.4g}",
            f"{r.inference_time_s_per_1k:.3g}",
            f"{r.inference_best_s_per_1k:.3g}",
            f"{r.inference_cpu_s_per_1k:.3g}",
            f"{r.inference_energy_j_per_1k:.4g}",
            _ratio(b.inference_energy_j_per_1k, r.inference_energy_j_per_1k) if b else "",
            f"x{r.ab_speedup_vs_baseline:.2f}" if r.ab_speedup_vs_baseline else "",
            f"{r.accuracy:.4f}",
            f"{r.co2e_g:.3g}" if r.co2e_g is not None else "-",
            r.energy_method,
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.workload}: {_notes_text(r.notes)}" for r in results if r.notes]
    if notes:
        lines += ["", "notes:", *notes]
    if any("estimated" in r.energy_method for r in results):
        lines += ["", ESTIMATE_NOTE]
    return "\n".join(lines)


def _notes_text(notes: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in notes.items())


def require_matplotlib() -> None:
    """Raise :class:`ConfigError` with the install command when matplotlib is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(
            "--plot needs matplotlib, which is not installed: pip install 'greentrack[report]'"
        )


def pareto_figure(results: Sequence[BenchResult]) -> Any:
    """Accuracy against inference energy per 1,000 examples, one panel per task, as a matplotlib
    ``Figure`` (:func:`greentrack.report.pareto.pareto_panels`: the Pareto front in green, labels
    kept apart and inside their panel, a log x axis only where the energies span more than a
    factor 5)."""
    panels = []
    for task in dict.fromkeys(r.task for r in results):
        rs = [r for r in results if r.task == task]
        xlabel = f"inference energy per 1,000 examples (J, {rs[0].energy_method})"
        points = [(r.workload, r.inference_energy_j_per_1k, r.accuracy) for r in rs]
        panels.append(Panel(task, xlabel, points))
    return pareto_panels(panels)


def plot_pareto(results: Sequence[BenchResult], path: str) -> str:
    """Save :func:`pareto_figure` as a PNG at ``path``; returns ``path``.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    require_matplotlib()
    pareto_figure(results).savefig(path, dpi=120)
    return path


def format_report(report: BenchReport, fmt: str = "table") -> str:
    """The report as text (``table``) or JSON (``json``: the results list; with the sweep,
    ``{"workloads": [...], "linear_attention_sweep": {...}}``)."""
    if fmt == "json":
        if report.sweep is None:
            obj: Any = results_json(report.results)
        elif not report.results:
            obj = report.sweep.to_dict()
        else:
            obj = {
                "workloads": results_json(report.results),
                SWEEP: report.sweep.to_dict(),
            }
        from greentrack.jsonout import dumps  # strict JSON: NaN/inf as null

        return dumps(obj, indent=2)
    parts = []
    if report.results:
        parts.append(format_table(report.results))
    if report.sweep is not None:
        from greentrack.workloads.sweep import format_sweep

        parts.append("linear attention sweep (inference, per example = one sequence):")
        parts.append(format_sweep(report.sweep))
    return "\n\n".join(parts)
