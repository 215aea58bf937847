"""What ``greentrack bench`` produces: one :class:`BenchResult` per workload, and the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BenchReport", "BenchResult"]


@dataclass(frozen=True)
class BenchResult:
    """One workload's figures.

    Attributes:
        workload: the workload's name; ``baseline``: the workload it is compared with.
        task: ``shapes``, ``char_lm`` or ``listops``.
        accuracy: test accuracy (per example; per character for the LM). Units: fraction.
        params_total / params_active: parameters held / used per example at inference.
        flops_per_example: FLOPs of the inference path per example (multiply-add = 2).
        train_energy_j: energy of the ``train`` phase. Units: J.
        inference_energy_j_per_1k: energy of the ``inference`` phase per 1,000 examples. J.
        co2e_g: CO₂e of the whole run (None when no intensity was available). Units: g.
        energy_method: how the energies were obtained (``estimated``, ``counter``, ...).
        train_time_s: wall time of the ``train`` phase. Units: s.
        inference_time_s_per_1k: wall time of inference per 1,000 examples. Units: s.
        inference_best_s_per_1k: wall time per 1,000 examples of the fastest pass over the
            test split (the least disturbed by other programs, as ``timeit`` does). Units: s.
        inference_cpu_s_per_1k: this process's CPU time per 1,000 examples (not affected by
            other programs on the machine, unlike the machine-wide estimate). Units: s.
        ab_speedup_vs_baseline: baseline time / this workload's time over the test split,
            the median of passes that alternate between the two (A/B, interleaved), so that
            load from other programs hits both alike. None without a baseline. Unitless.
        run_id: the stored run.
        notes: workload-specific measurements (exit layers, dropped tokens, sparsity, ...).
    """

    workload: str
    baseline: str | None
    task: str
    accuracy: float
    params_total: int
    params_active: int
    flops_per_example: float
    train_energy_j: float
    inference_energy_j_per_1k: float
    co2e_g: float | None
    energy_method: str
    train_time_s: float
    inference_time_s_per_1k: float
    inference_best_s_per_1k: float
    inference_cpu_s_per_1k: float
    ab_speedup_vs_baseline: float | None
    run_id: str
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchReport:
    """What ``greentrack bench`` prints: the workloads' results and, if asked, the sweep."""

    results: list[BenchResult]
    sweep: Any = None  # greentrack.workloads.sweep.AttentionSweep | None
