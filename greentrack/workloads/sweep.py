"""Energy and time of attention against sequence length: where linear attention starts to win.

Softmax attention costs ``O(T²)`` per layer, random-feature attention (RFA / FAVOR+) and ABC's
bounded memory ``O(T)``, but with larger constants (m random features, S slots, extra
element-wise work), so at short lengths softmax attention is cheaper. This sweep measures the
crossover instead of assuming it: the same small encoder (the quick suite's ListOps model) is
run at inference with each attention at growing lengths, every (attention, length) pair as a
phase ``<kind>@<length>`` of one tracked run ``linear_attention_sweep`` in project ``bench``.
Batches hold about ``tokens_per_batch`` tokens, so every length does similar work per batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from greentrack.errors import ConfigError
from greentrack.workloads.attention import AttentionConfig, efficient_transformer
from greentrack.workloads.flops import count_flops
from greentrack.workloads.transformer import TransformerConfig

__all__ = [
    "AttentionSweep",
    "SweepPoint",
    "crossover_length",
    "format_sweep",
    "run_attention_sweep",
]

DEFAULT_LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096)
KINDS = ("softmax", "rfa", "abc")


@dataclass(frozen=True)
class SweepPoint:
    """One attention at one length. Per-example figures; an example is one sequence.

    Attributes:
        kind: ``softmax``, ``rfa`` or ``abc``; ``seq_len``: tokens per sequence.
        batch_size: sequences per forward call.
        time_s: wall time per example (the phase's duration / examples). Units: s.
        best_time_s: per example in the fastest forward call (least disturbed by other
            programs). Units: s.
        cpu_s: this process's CPU time per example. Units: s.
        energy_j: energy per example from the phase's meters. Units: J.
        flops: FLOPs per example (``torch.utils.flop_counter``).
        energy_method: ``estimated``, ``counter``, ... (how the energy was obtained).
    """

    kind: str
    seq_len: int
    batch_size: int
    time_s: float
    best_time_s: float
    cpu_s: float
    energy_j: float
    flops: float
    energy_method: str


@dataclass
class AttentionSweep:
    """All points, and per kind the length from which it beats softmax attention.

    ``crossover[metric][kind]``: the shortest measured length L such that ``kind`` is cheaper
    than softmax attention at L and at every longer length measured (None: not within the
    lengths measured). Metrics: ``best_time_s``, ``time_s``, ``energy_j``, ``flops``.
    """

    points: list[SweepPoint]
    crossover: dict[str, dict[str, int | None]] = field(default_factory=dict)
    run_id: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": [asdict(p) for p in self.points],
            "crossover": self.crossover,
            "run_id": self.run_id,
            "settings": self.settings,
        }


def crossover_length(points: Sequence[SweepPoint], kind: str, metric: str) -> int | None:
    """Shortest length from which ``kind`` beats softmax on ``metric`` at all longer lengths."""
    ref = {p.seq_len: getattr(p, metric) for p in points if p.kind == "softmax"}
    mine = {p.seq_len: getattr(p, metric) for p in points if p.kind == kind}
    lengths = sorted(set(ref) & set(mine))
    best: int | None = None
    for L in reversed(lengths):
        if mine[L] < ref[L]:
            best = L
        else:
            break
    return best


def run_attention_sweep(
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    kinds: Sequence[str] = KINDS,
    *,
    width: int = 64,
    heads: int = 4,
    layers: int = 2,
    n_features: int = 32,
    n_slots: int = 8,
    tokens_per_batch: int = 8192,
    min_time_s: float = 1.0,
    device: str = "cpu",
    db_url: str | None = None,
    progress: bool = True,
    seed: int = 0,
) -> AttentionSweep:
    """Time and meter inference of an encoder with each attention at each length.

    Args:
        lengths: sequence lengths (tokens). kinds: attentions (``softmax``, ``rfa``, ``abc``).
        width, heads, layers: the encoder (defaults: the quick suite's ListOps model).
        n_features: RFA random features per head. n_slots: ABC memory slots per head.
        tokens_per_batch: batch size is ``max(1, tokens_per_batch // length)`` sequences.
        min_time_s: each point repeats batches for at least this long. Units: s.
        device: ``cpu`` or ``cuda``. db_url: the store (default: the configured one).

    Raises:
        ConfigError: an unknown attention kind, a non-positive length, or no CUDA device.
    """
    import sys

    from greentrack.tracker import track

    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ConfigError(f"unknown attention {bad[0]!r}; choose from {', '.join(KINDS)}")
    if not lengths or min(lengths) < 1:
        raise ConfigError("sweep lengths must be positive integers, e.g. 64,256,1024")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to PyTorch; use --device cpu")
    settings = dict(width=width, heads=heads, layers=layers, n_features=n_features,
                    n_slots=n_slots, tokens_per_batch=tokens_per_batch, min_time_s=min_time_s,
                    device=device)  # fmt: skip
    points: list[SweepPoint] = []
    g = torch.Generator().manual_seed(seed)
    with track(
        "linear_attention_sweep", project="bench", params=settings, tags={"suite": "sweep"},
        db=db_url,
    ) as run:  # fmt: skip
        phase_data: list[tuple[str, int, int, int, float, float, float]] = []
        for L in sorted(lengths):
            B = max(1, tokens_per_batch // L)
            x = torch.randint(1, 16, (B, L), generator=g).to(device)
            for kind in kinds:
                torch.manual_seed(seed)
                cfg = TransformerConfig(vocab_size=16, block_size=L, n_layer=layers, n_head=heads,
                                        n_embd=width, causal=False, n_classes=10)  # fmt: skip
                ac = AttentionConfig(kind=kind, n_features=n_features, n_slots=n_slots)
                model = efficient_transformer(cfg, ac).to(device).eval()
                flops = count_flops(model, x) / B
                if progress:
                    sys.stderr.write(f"linear_attention_sweep: {kind} at length {L} (batch {B})\n")
                with torch.inference_mode():
                    for _ in range(2):  # warm-up
                        model(x)
                    with run.phase(f"{kind}@{L}"):
                        t0, c0, n, best = time.perf_counter(), time.process_time(), 0, math.inf
                        while n == 0 or time.perf_counter() - t0 < min_time_s:
                            t1 = time.perf_counter()
                            model(x)
                            if device.startswith("cuda"):
                                torch.cuda.synchronize()
                            best = min(best, time.perf_counter() - t1)
                            n += B
                        cpu = time.process_time() - c0
                phase_data.append((kind, L, B, n, cpu, flops, best / B))
    summary = run.summary()
    phases = {p.name: p for p in summary.phases}
    method = "+".join(sorted({c.method for c in summary.components})) or "none"
    for kind, L, B, n, cpu, flops, best in phase_data:
        p = phases[f"{kind}@{L}"]
        points.append(SweepPoint(kind, L, B, p.duration_s / n, best, cpu / n, p.energy_j / n,
                                 flops, method))  # fmt: skip
    crossover = {
        metric: {k: crossover_length(points, k, metric) for k in kinds if k != "softmax"}
        for metric in ("best_time_s", "time_s", "energy_j", "flops")
    }
    return AttentionSweep(points, crossover, summary.id, settings)


def format_sweep(sweep: AttentionSweep) -> str:
    """A table: per length, time and energy per example of each attention, then crossovers."""
    kinds = list(dict.fromkeys(p.kind for p in sweep.points))
    by = {(p.kind, p.seq_len): p for p in sweep.points}
    lengths = sorted({p.seq_len for p in sweep.points})
    head = ["length", *[f"{k} ms/ex" for k in kinds], *[f"{k} best ms" for k in kinds],
            *[f"{k} J/ex" for k in kinds], *[f"{k} MFLOP/ex" for k in kinds]]  # fmt: skip
    rows = [head]
    for L in lengths:
        rows.append([
            str(L),
            *[f"{by[(k, L)].time_s * 1e3:.3g}" for k in kinds],
            *[f"{by[(k, L)].best_time_s * 1e3:.3g}" for k in kinds],
            *[f"{by[(k, L)].energy_j:.3g}" for k in kinds],
            *[f"{by[(k, L)].flops / 1e6:.4g}" for k in kinds],
        ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    names = {"best_time_s": "best time", "time_s": "mean time", "energy_j": "energy",
             "flops": "FLOPs"}  # fmt: skip
    for metric, per_kind in sweep.crossover.items():
        for kind, L in per_kind.items():
            said = f"from length {L} on" if L is not None else "not within the lengths measured"
            lines.append(f"{kind} beats softmax attention on {names[metric]}: {said}")
    method = sweep.points[0].energy_method if sweep.points else "none"
    lines.append(f"energy method: {method}")
    return "\n".join(lines)
