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

The tasks are generated in code (:mod:`greentrack.workloads.data`): no network.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from greentrack.errors import ConfigError
from greentrack.units import format_sig
from greentrack.workloads import data as D
from greentrack.workloads.attention import AttentionConfig, efficient_transformer
from greentrack.workloads.compression import (
    distillation_loss,
    magnitude_prune,
    model_bytes,
    quantize_int8,
    sparsity,
    to_sparse_csr,
)
from greentrack.workloads.dfa import MLP, DFATrainer, MLPConfig
from greentrack.workloads.early_exit import EarlyExitConfig, EarlyExitTransformer, calibrate
from greentrack.workloads.flops import count_flops
from greentrack.workloads.moe import MoEConfig, MoEFFN, moe_transformer
from greentrack.workloads.sparse_ffn import SparseFFN, SparseFFNConfig, sparse_ffn_transformer
from greentrack.workloads.training import accuracy, fit, predict_logits
from greentrack.workloads.transformer import MLP as DenseFFN
from greentrack.workloads.transformer import Transformer, TransformerConfig

__all__ = [
    "SUITES",
    "WORKLOADS",
    "BenchReport",
    "BenchResult",
    "Sizes",
    "bench",
    "format_report",
    "format_table",
    "pareto_figure",
    "plot_pareto",
    "results_json",
    "run_bench",
    "workload_names",
]

PROJECT = "bench"


# ------------------------------------------------------------------------------------ sizes


@dataclass(frozen=True)
class Sizes:
    """Everything a suite scales: data, models, training and how long inference is timed."""

    name: str
    n_train: int  # training examples of the classification tasks
    n_val: int  # validation examples (early-exit calibration)
    n_test: int  # test examples (accuracy, inference timing)
    lm_windows: int  # training windows of the character LM
    lm_seq_len: int  # characters per LM example
    listops_max_len: int  # longest ListOps sequence (tokens)
    width: int  # n_embd of every Transformer
    heads: int  # attention heads
    layers_shapes: int  # depth of the image-like classifier (early exit, compression)
    layers_lm: int  # depth of the character LMs
    layers_listops: int  # depth of the ListOps classifiers
    mlp_hidden: int  # hidden units of the DFA / backprop MLP (Nøkland: 800)
    steps: int  # training steps of the Transformers
    steps_mlp: int  # training steps of the MLPs
    finetune_steps: int  # fine-tuning steps after pruning
    batch_size: int  # training batch (char LM, ListOps, MLPs)
    batch_shapes: int  # training batch of the image-like Transformers
    lr: float  # AdamW learning rate
    lr_mlp: float  # SGD learning rate (momentum 0.9) of the MLPs
    eval_batch: int  # inference batch
    min_inference_s: float  # the inference phase repeats the test split at least this long
    n_features: int = 32  # RFA random features per head
    n_slots: int = 8  # ABC memory slots per head
    n_experts: int = 4  # MoE experts
    prune_amount: float = 0.7  # fraction of Linear weights pruned
    ee_max_loss: float = 0.005  # early exit: accuracy given up on validation data (fraction)
    ee_reference: str = "baseline"  # ... against the baseline's accuracy, or "self" (own depth)
    ee_measure: str = "softmax"  # early-exit confidence measure


SUITES: dict[str, Sizes] = {
    "tiny": Sizes(
        "tiny", n_train=64, n_val=32, n_test=32, lm_windows=32, lm_seq_len=16,
        listops_max_len=24, width=16, heads=2, layers_shapes=2, layers_lm=2, layers_listops=1,
        mlp_hidden=32, steps=1, steps_mlp=1, finetune_steps=1, batch_size=8, batch_shapes=8,
        lr=1e-3, lr_mlp=0.02, eval_batch=16, min_inference_s=0.0, n_features=8, n_slots=4,
    ),
    "quick": Sizes(
        "quick", n_train=6000, n_val=1000, n_test=1000, lm_windows=4000, lm_seq_len=64,
        listops_max_len=48, width=64, heads=4, layers_shapes=4, layers_lm=4, layers_listops=2,
        mlp_hidden=800, steps=800, steps_mlp=1000, finetune_steps=200, batch_size=32,
        batch_shapes=64, lr=2e-3, lr_mlp=0.02, eval_batch=250, min_inference_s=2.0,
    ),
    "full": Sizes(
        "full", n_train=50000, n_val=5000, n_test=5000, lm_windows=50000, lm_seq_len=256,
        listops_max_len=512, width=256, heads=8, layers_shapes=8, layers_lm=6, layers_listops=4,
        mlp_hidden=800, steps=5000, steps_mlp=10000, finetune_steps=1000, batch_size=128,
        batch_shapes=256,
        lr=1e-3, lr_mlp=0.02, eval_batch=500, min_inference_s=10.0, n_features=64,
        n_slots=32, n_experts=8,
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------------- results


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


# ------------------------------------------------------------------------------- workloads


@dataclass
class Built:
    """A trained workload: how to predict, and what to report about it."""

    model: nn.Module
    predict: Callable[[torch.Tensor], torch.Tensor]  # inputs -> logits (the inference path)
    notes: dict[str, Any] = field(default_factory=dict)
    # after evaluation: test inputs -> extra notes (e.g. mean exit layer)
    test_stats: Callable[[torch.Tensor], dict[str, Any]] | None = None
    # params (total, active), given the notes (early exit: active depends on the exits)
    param_counts: Callable[[dict[str, Any]], tuple[int, int]] | None = None


class _Context:
    """What workloads share within one bench call: sizes, device, tasks, trained models."""

    def __init__(self, sizes: Sizes, device: str, seed: int, progress: _Progress) -> None:
        self.sizes = sizes
        self.device = device
        self.seed = seed
        self.progress = progress
        self._tasks: dict[str, D.Task] = {}
        self.built: dict[str, Built] = {}

    def task(self, name: str) -> D.Task:
        if name not in self._tasks:
            s = self.sizes
            if name == "shapes":
                t = D.shapes(s.n_train, s.n_val, s.n_test, seed=self.seed)
            elif name == "shapes_flat":
                t0 = self.task("shapes")
                flat = [
                    D.Split(D.flatten_patches(sp.x), sp.y) for sp in (t0.train, t0.val, t0.test)
                ]
                t = D.Task("shapes_flat", "classify", *flat, n_classes=10, seq_len=1,
                           patch_dim=t0.seq_len * (t0.patch_dim or 1), meta=t0.meta)  # fmt: skip
            elif name == "char_lm":
                t = D.char_lm(s.lm_seq_len, n_train=s.lm_windows, seed=self.seed)
            elif name == "listops":
                t = D.listops(s.n_train, s.n_val, s.n_test, max_len=s.listops_max_len,
                              seed=self.seed)  # fmt: skip
            else:  # pragma: no cover - registry bug
                raise KeyError(name)
            self._tasks[name] = t.to(self.device)
        return self._tasks[name]

    def config(self, task: D.Task, layers: int, **over: Any) -> TransformerConfig:
        s = self.sizes
        kw: dict[str, Any] = dict(
            vocab_size=task.vocab_size or 1,
            patch_dim=task.patch_dim,
            block_size=task.seq_len,
            n_layer=layers,
            n_head=s.heads,
            n_embd=s.width,
            causal=task.kind == "lm",
            n_classes=task.n_classes if task.kind == "classify" else None,
            pad_id=task.pad_id,
        )
        kw.update(over)
        return TransformerConfig(**kw)

    def fit(self, model: nn.Module, task: D.Task, **kw: Any) -> list[float]:
        s = self.sizes
        kw.setdefault("steps", s.steps)
        kw.setdefault("batch_size", s.batch_shapes if task.name == "shapes" else s.batch_size)
        kw.setdefault("lr", s.lr)
        return fit(model, task.train, on_step=self.progress.step, seed=self.seed, **kw)


def _seed(ctx: _Context) -> None:
    torch.manual_seed(ctx.seed)


def _logits(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model(x)[0]


def _transformer(task_name: str, layers_attr: str) -> Callable[[_Context], Built]:
    def build(ctx: _Context) -> Built:
        task = ctx.task(task_name)
        _seed(ctx)
        model = Transformer(ctx.config(task, getattr(ctx.sizes, layers_attr))).to(ctx.device)
        ctx.fit(model, task)
        return Built(model, _logits(model))

    return build


def _early_exit(ctx: _Context) -> Built:
    task = ctx.task("shapes")
    _seed(ctx)
    ee = EarlyExitConfig(measure=ctx.sizes.ee_measure)
    model = EarlyExitTransformer(ctx.config(task, ctx.sizes.layers_shapes), ee).to(ctx.device)
    ctx.fit(model, task)
    reference = None
    if ctx.sizes.ee_reference == "baseline":  # keep within max_loss of the model it replaces
        base = ctx.built["transformer_shapes"]
        reference = accuracy(predict_logits(base.predict, task.val.x), task.val.y)
    cal = calibrate(model, task.val.x, task.val.y, max_loss=ctx.sizes.ee_max_loss,
                    reference_accuracy=reference)  # fmt: skip
    notes = {
        "measure": cal.measure,
        "threshold": round(cal.threshold, 4),
        "calibrated_against": (
            f"{'baseline' if reference is not None else 'own full-depth'} val accuracy "
            f"{cal.reference_accuracy:.4f} - {ctx.sizes.ee_max_loss * 100:g} pt"
        ),
        "val_accuracy_full_depth": round(cal.full_accuracy, 4),
        "val_accuracy_early_exit": round(cal.accuracy, 4),
        "val_mean_exit_layer": round(cal.mean_exit_layer, 3),
        "n_layer": cal.n_layer,
    }

    def stats(x: torch.Tensor) -> dict[str, Any]:
        layers = torch.cat(
            [model.infer(x[i : i + 500])[1] for i in range(0, x.shape[0], 500)]
        ).float()
        full = predict_logits(_logits(model), x)  # the same model without exiting
        y = ctx.task("shapes").test.y
        return {
            "mean_exit_layer": round(float(layers.mean()), 3),
            "exit_histogram": torch.bincount(layers.long(), minlength=cal.n_layer + 1)[1:].tolist(),
            "test_accuracy_full_depth": round(accuracy(full, y), 4),
        }

    return Built(
        model,
        lambda x: model.infer(x)[0],
        notes,
        test_stats=stats,
        param_counts=lambda n: model.param_counts(n.get("mean_exit_layer")),
    )


def _moe(ctx: _Context) -> Built:
    task = ctx.task("char_lm")
    _seed(ctx)
    moe = MoEConfig(n_experts=ctx.sizes.n_experts, top_k=1, capacity_factor=1.25)
    model = moe_transformer(ctx.config(task, ctx.sizes.layers_lm), moe).to(ctx.device)
    ctx.fit(model, task)
    layers = [m for m in model.modules() if isinstance(m, MoEFFN)]
    notes: dict[str, Any] = {
        "experts": f"{moe.n_experts}, top-{moe.top_k}",
        "capacity_factor": f"{moe.capacity_factor} in training, none at inference",
        "last_train_batch_dropped": round(
            sum(m.last_drop_fraction for m in layers) / len(layers), 4
        ),
    }

    def stats(x: torch.Tensor) -> dict[str, Any]:
        model(x[: ctx.sizes.eval_batch])
        return {"expert_load_layer1": [round(float(v), 3) for v in layers[0].last_load]}

    return Built(model, _logits(model), notes, test_stats=stats)


def _decode_us(ffn: nn.Module, width: int, reps: int) -> float:
    """Wall time of one single-token forward of an FFN (decoding). Units: microseconds."""
    p = next(ffn.parameters())
    x = torch.randn(1, 1, width, device=p.device, dtype=p.dtype)
    with torch.inference_mode():
        ffn(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            ffn(x)
        if p.device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps * 1e6


def _sparse_ffn(ctx: _Context) -> Built:
    task = ctx.task("char_lm")
    _seed(ctx)
    sp = SparseFFNConfig(units_per_block=32)
    cfg = ctx.config(task, ctx.sizes.layers_lm)
    model = sparse_ffn_transformer(cfg, sp).to(ctx.device)
    ctx.fit(model, task)

    def stats(x: torch.Tensor) -> dict[str, Any]:
        """Single-token FFN decode time, sparse vs dense, at this width and at 1024."""
        reps = 20 if ctx.sizes.name == "tiny" else 300
        out: dict[str, Any] = {"units_per_block": sp.units_per_block}
        for width in sorted({cfg.n_embd, 1024}):
            c = TransformerConfig(n_embd=width, n_layer=cfg.n_layer)
            sparse = SparseFFN(c, sp).to(ctx.device).eval()
            dense = DenseFFN(c).to(ctx.device).eval()
            out[f"decode_us_width{width}"] = {
                "sparse": round(_decode_us(sparse, width, reps), 1),
                "dense": round(_decode_us(dense, width, reps), 1),
            }
        return out

    return Built(model, _logits(model), test_stats=stats)


def _attention(kind: str) -> Callable[[_Context], Built]:
    def build(ctx: _Context) -> Built:
        task = ctx.task("listops")
        _seed(ctx)
        s = ctx.sizes
        ac = AttentionConfig(kind=kind, n_features=s.n_features, n_slots=s.n_slots)
        model = efficient_transformer(ctx.config(task, s.layers_listops), ac).to(ctx.device)
        ctx.fit(model, task)
        notes = {"n_features": s.n_features} if kind == "rfa" else {"n_slots": s.n_slots}
        notes["seq_len"] = task.seq_len
        return Built(model, _logits(model), notes)

    return build


def _distill(ctx: _Context) -> Built:
    task = ctx.task("shapes")
    teacher = ctx.built["transformer_shapes"].model
    teacher.eval()
    _seed(ctx)
    s = ctx.sizes
    layers = max(1, s.layers_shapes // 3)
    cfg = ctx.config(task, layers, n_embd=max(s.heads * 4, s.width // 2))
    student = Transformer(cfg).to(ctx.device)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t_logits = teacher(x)[0]  # the teacher's forward is part of the training cost
        return distillation_loss(student(x)[0], t_logits, y, temperature=2.0, alpha=0.7)

    ctx.fit(student, task, loss_fn=loss_fn)
    notes = {"teacher": "transformer_shapes", "student_layers": layers, "width": cfg.n_embd}
    return Built(student, _logits(student), notes)


def _int8(ctx: _Context) -> Built:
    task = ctx.task("shapes")
    base = ctx.built["transformer_shapes"].model
    model = copy.deepcopy(base).eval()
    bytes_before = model_bytes(model)
    n = quantize_int8(model)
    with torch.no_grad():
        x = task.test.x[: ctx.sizes.eval_batch]
        ref, got = base(x)[0], model(x)[0]
        agree = float((ref.argmax(-1) == got.argmax(-1)).float().mean())
    notes = {
        "linear_layers": n,
        "bytes_float": bytes_before,
        "bytes_int8": model_bytes(model),
        "max_abs_logit_error": round(float((ref - got).abs().max()), 5),
        "top1_agreement_with_float": round(agree, 4),
        "kernel": "dequant (cast int8 -> float inside the matmul call)",
    }
    n_weights = _weights(model)[0]
    return Built(model, _logits(model), notes, param_counts=lambda n: (n_weights, n_weights))


def _prune(ctx: _Context) -> Built:
    task = ctx.task("shapes")
    model = copy.deepcopy(ctx.built["transformer_shapes"].model)
    masks = magnitude_prune(model, ctx.sizes.prune_amount)
    ctx.fit(
        model, task, steps=ctx.sizes.finetune_steps, lr=ctx.sizes.lr / 4,
        after_step=lambda: masks.apply(model),
    )  # fmt: skip
    notes = {"sparsity_of_linear_weights": round(sparsity(model), 4), "kernel": "dense"}
    return Built(model, _logits(model), notes, param_counts=lambda n: _weights(model))


def _prune_csr(ctx: _Context) -> Built:
    model = copy.deepcopy(ctx.built["prune"].model).eval()
    if ctx.device != "cpu":
        model = model.cpu()  # sparse CSR matmul is measured on the CPU
    n = to_sparse_csr(model)
    notes = {
        "sparsity_of_linear_weights": round(sparsity(model), 4),
        "kernel": "torch.sparse CSR @ dense",
        "linear_layers": n,
    }
    notes["flops_note"] = "the FLOP counter counts the sparse matmuls as dense"
    dev = next(iter(model.buffers())).device

    def predict(x: torch.Tensor) -> torch.Tensor:
        return model(x.to(dev))[0]

    return Built(model, predict, notes, param_counts=lambda n: _weights(model))


def _weights(model: nn.Module) -> tuple[int, int]:
    """(all weights, non-zero weights), counting int8 and sparse-CSR weights held as buffers."""
    total = nonzero = 0
    tensors = [*model.parameters(), *(b for n, b in model.named_buffers() if "weight" in n)]
    for t in tensors:
        if t.layout == torch.sparse_csr:
            total += t.shape[0] * t.shape[1]
            nonzero += int(t._nnz())
        else:
            total += t.numel()
            nonzero += int((t != 0).sum())
    return total, nonzero


def _mlp(dfa: bool) -> Callable[[_Context], Built]:
    def build(ctx: _Context) -> Built:
        task = ctx.task("shapes_flat")
        _seed(ctx)
        s = ctx.sizes
        cfg = MLPConfig(n_in=task.patch_dim or 1, n_hidden=s.mlp_hidden, n_classes=10)
        model = MLP(cfg).to(ctx.device)
        opt = torch.optim.SGD(model.parameters(), lr=s.lr_mlp, momentum=0.9)
        trainer = DFATrainer(model, seed=ctx.seed) if dfa else None
        ctx.fit(
            model, task, steps=s.steps_mlp, optimizer=opt, grad_clip=None,
            compute_grads=trainer.compute_grads if trainer else None,
        )  # fmt: skip
        notes = {"hidden": f"{cfg.n_layer}x{cfg.n_hidden} tanh", "optimizer": "SGD momentum 0.9"}
        notes["training"] = "direct feedback alignment" if dfa else "backprop"
        return Built(model, _logits(model), notes)

    return build


@dataclass(frozen=True)
class Workload:
    """A benchmark entry: what it is, what it needs, and how it is built."""

    name: str
    task: str
    baseline: str | None
    needs: tuple[str, ...]
    summary: str
    build: Callable[[_Context], Built]


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload("transformer_shapes", "shapes", None, (),
                 "baseline Transformer encoder classifier on the image-like task",
                 _transformer("shapes", "layers_shapes")),
        Workload("early_exit", "shapes", "transformer_shapes", ("transformer_shapes",),
                 "exit after each layer at a calibrated confidence (Schwartz 2020, CALM 2022)",
                 _early_exit),
        Workload("distill", "shapes", "transformer_shapes", ("transformer_shapes",),
                 "smaller student distilled from the baseline (Hinton 2015)", _distill),
        Workload("int8", "shapes", "transformer_shapes", ("transformer_shapes",),
                 "baseline with int8 weight-only per-channel Linear layers", _int8),
        Workload("prune", "shapes", "transformer_shapes", ("transformer_shapes",),
                 "baseline magnitude-pruned and fine-tuned, dense kernels (Han 2015)", _prune),
        Workload("prune_csr", "shapes", "transformer_shapes", ("prune",),
                 "the pruned model with sparse CSR kernels", _prune_csr),
        Workload("transformer_lm", "char_lm", None, (),
                 "baseline decoder Transformer, character LM",
                 _transformer("char_lm", "layers_lm")),
        Workload("moe", "char_lm", "transformer_lm", (),
                 "Mixture-of-Experts FFN, top-k gating and capacity (Switch 2022)", _moe),
        Workload("sparse_ffn", "char_lm", "transformer_lm", (),
                 "one active unit per block of the FFN (Jaszczur 2021)", _sparse_ffn),
        Workload("transformer_listops", "listops", None, (),
                 "baseline Transformer encoder (softmax attention) on ListOps",
                 _transformer("listops", "layers_listops")),
        Workload("rfa", "listops", "transformer_listops", (),
                 "random-feature attention, linear in length (Peng 2021, FAVOR+)",
                 _attention("rfa")),
        Workload("abc", "listops", "transformer_listops", (),
                 "bounded-memory attention over S slots (Peng 2022)", _attention("abc")),
        Workload("backprop_mlp", "shapes_flat", None, (),
                 "2x800 tanh MLP trained with backprop", _mlp(dfa=False)),
        Workload("dfa", "shapes_flat", "backprop_mlp", (),
                 "the same MLP trained with direct feedback alignment (Nøkland 2016)",
                 _mlp(dfa=True)),
    ]
}  # fmt: skip

SWEEP = "linear_attention_sweep"


def workload_names() -> list[str]:
    """Names accepted by ``--only``, in the order they run (plus the attention sweep)."""
    return [*WORKLOADS, SWEEP]


def _resolve(only: Iterable[str] | None) -> list[str]:
    """The selected workloads plus their baselines and prerequisites, in registry order."""
    if only is None:
        return list(WORKLOADS)
    wanted = [n.strip() for n in only if n.strip()]
    unknown = [n for n in wanted if n not in WORKLOADS and n != SWEEP]
    if unknown:
        raise ConfigError(
            f"unknown workload {unknown[0]!r}; choose from {', '.join(workload_names())}"
        )
    todo: set[str] = set()
    stack = [n for n in wanted if n != SWEEP]
    while stack:
        n = stack.pop()
        if n in todo:
            continue
        todo.add(n)
        w = WORKLOADS[n]
        stack.extend(w.needs)
        if w.baseline:
            stack.append(w.baseline)
    return [n for n in WORKLOADS if n in todo]


# -------------------------------------------------------------------------------- progress


class _Progress:
    """A one-line progress display on stderr (redrawn in place on a terminal)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self.index = 0
        self.label = ""
        self.t0 = time.monotonic()
        self._last = 0.0
        self.tty = enabled and sys.stderr.isatty()
        self.run: Any = None

    def start(self, name: str) -> None:
        self.index += 1
        self.t0 = time.monotonic()
        self.label = f"[{self.index:>2}/{self.total}] {name}"
        self.phase("start")

    def phase(self, phase: str) -> None:
        self._show(f"{self.label}: {phase}", force=True)

    def step(self, step: int, total: int) -> None:
        if self.run is not None and total > 0:
            self.run.progress(step, total)
        self._show(f"{self.label}: train step {step}/{total}", force=step == total)

    def done(self, text: str) -> None:
        self._show(f"{self.label}: {text}", force=True, final=True)

    def _show(self, text: str, *, force: bool = False, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and (not self.tty or now - self._last < 0.2):
            return
        self._last = now
        line = f"{text} ({now - self.t0:.0f} s)"
        if self.tty:
            sys.stderr.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


# ------------------------------------------------------------------------------------ running


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


def _run_one(w: Workload, ctx: _Context, db_url: str | None) -> tuple[BenchResult, Built]:
    import greentrack as gt

    s = ctx.sizes
    task = ctx.task(w.task)
    params = {"suite": s.name, "device": ctx.device, "seed": ctx.seed, "width": s.width}
    tags = {"suite": s.name, "task": w.task, "baseline": w.baseline or "", "workload": w.name}
    x_test, y_test = task.test.x, task.test.y
    n_test = int(x_test.shape[0])
    with gt.track(w.name, project=PROJECT, params=params, tags=tags, db=db_url) as run:
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
            built.param_counts(notes) if built.param_counts else _param_counts(built.model)
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
    ctx: _Context,
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


def _param_counts(model: nn.Module) -> tuple[int, int]:
    fn = getattr(model, "param_counts", None)
    if callable(fn):
        return fn()
    return _weights(model)


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
        only: workload names (see :func:`workload_names`); their baselines and prerequisites
            run too. ``linear_attention_sweep`` is accepted and ignored here (see
            :func:`greentrack.workloads.sweep.run_attention_sweep`).
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
    names = _resolve(only)
    prog = _Progress(progress, len(names))
    ctx = _Context(SUITES[suite], device, seed, prog)
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


# ---------------------------------------------------------------------------------- output

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


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point beats on both."""
    front = []
    for i, (c, a) in enumerate(points):
        dominated = any(
            (c2 <= c and a2 >= a) and (c2 < c or a2 > a)
            for j, (c2, a2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _require_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(
            "--plot needs matplotlib, which is not installed: pip install 'greentrack[report]'"
        )


#: Where a point's label may go, tried in order: (dx, dy) in points, horizontal and vertical
#: alignment. The first that stays inside the panel and clear of every other label wins.
_LABEL_SPOTS = (
    (5, 4, "left", "bottom"),
    (5, -4, "left", "top"),
    (-5, 4, "right", "bottom"),
    (-5, -4, "right", "top"),
    (0, 8, "center", "bottom"),
    (0, -8, "center", "top"),
    (5, 16, "left", "bottom"),
    (-5, 16, "right", "bottom"),
    (5, -16, "left", "top"),
    (-5, -16, "right", "top"),
    (0, 26, "center", "bottom"),
    (0, -26, "center", "top"),
)


def _overlap_px(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _outside_px(box: Any, frame: Any) -> float:
    return (
        max(0.0, frame.x0 - box.x0)
        + max(0.0, box.x1 - frame.x1)
        + max(0.0, frame.y0 - box.y0)
        + max(0.0, box.y1 - frame.y1)
    )


def _place_labels(fig: Any, ax: Any, items: Sequence[tuple[str, float, float]]) -> None:
    """Annotate each (text, x, y) at the first of :data:`_LABEL_SPOTS` inside ``ax`` that hides no
    other label (else the spot with the least overlap), measured with the figure's renderer."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = []
    for text, x, y in sorted(items, key=lambda it: (it[1], it[2])):
        best: tuple[float, Any] | None = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            ann = ax.annotate(
                text, (x, y), textcoords="offset points", xytext=(dx, dy),
                ha=ha, va=va, fontsize=8, annotation_clip=False,
            )  # fmt: skip
            ann.set_in_layout(False)  # placed inside the panel: the layout need not move for it
            box = ann.get_window_extent(renderer)
            cost = 1e6 * _outside_px(box, frame) + sum(_overlap_px(box, b) for b in placed)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann)
            else:
                ann.remove()
            if cost == 0:
                break
        assert best is not None
        placed.append(best[1].get_window_extent(renderer))


def pareto_figure(results: Sequence[BenchResult]) -> Any:
    """Accuracy against inference energy per 1,000 examples, one panel per task, as a matplotlib
    ``Figure``: the Pareto front in green, labels kept apart and inside their panel, a log x
    axis only where the energies span more than a factor 5 (else a linear one, few ticks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    tasks = list(dict.fromkeys(r.task for r in results))
    fig = Figure(figsize=(4.8 * len(tasks), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    labels: list[tuple[Any, list[tuple[str, float, float]]]] = []
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    for ax, task in zip(axes, tasks, strict=False):
        rs = [r for r in results if r.task == task]
        pts = [(r.inference_energy_j_per_1k, r.accuracy) for r in rs]
        front = set(pareto_front(pts))
        for i, (c, a) in enumerate(pts):
            on = i in front
            ax.scatter(
                [c], [a], marker="o" if on else "s", zorder=3,
                color="tab:green" if on else "white", edgecolors="tab:green" if on else "0.35",
            )  # fmt: skip
        fp = sorted(pts[i] for i in front)
        if len(fp) > 1:
            ax.plot([p[0] for p in fp], [p[1] for p in fp], color="tab:green", lw=1)
        energies = [c for c, _ in pts if c > 0]
        if energies and max(energies) / min(energies) > 5:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.xaxis.set_major_formatter(plain)
        ax.margins(x=0.2, y=0.18)
        ax.set_title(task)
        ax.set_xlabel(f"inference energy per 1,000 examples (J, {rs[0].energy_method})")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        labels.append((ax, [(r.workload, c, a) for r, (c, a) in zip(rs, pts, strict=True)]))
    fig.canvas.draw()  # the layout, then pixel positions to keep the labels apart
    fig.set_layout_engine("none")  # keep the panels where the labels were measured
    for ax, items in labels:
        _place_labels(fig, ax, items)
    return fig


def plot_pareto(results: Sequence[BenchResult], path: str) -> str:
    """Save :func:`pareto_figure` as a PNG at ``path``; returns ``path``.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    _require_matplotlib()
    pareto_figure(results).savefig(path, dpi=120)
    return path


# ------------------------------------------------------------------------ one entry point


@dataclass
class BenchReport:
    """What ``greentrack bench`` prints: the workloads' results and, if asked, the sweep."""

    results: list[BenchResult]
    sweep: Any = None  # greentrack.workloads.sweep.AttentionSweep | None


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
        _require_matplotlib()  # fail before minutes of training, not after
    sweep = None
    if SWEEP in names:
        from greentrack.workloads.sweep import run_attention_sweep

        if suite == "tiny":
            kw: dict[str, Any] = dict(lengths=(8, 16), width=16, heads=2, layers=1,
                                      n_features=8, n_slots=4, min_time_s=0.0)  # fmt: skip
        elif suite == "full":
            kw = dict(lengths=(256, 512, 1024, 2048, 4096, 8192, 16384), width=256, heads=8,
                      layers=4, n_features=64, n_slots=32, tokens_per_batch=65536,
                      min_time_s=2.0)  # fmt: skip
        else:
            kw = {}
        sweep = run_attention_sweep(device=device, db_url=db_url, progress=progress, **kw)
    results: list[BenchResult] = []
    if not names or any(n != SWEEP for n in names):
        results = run_bench(suite, names or None, device, db_url, progress)
    if plot_path and results:
        plot_pareto(results, plot_path)
    return BenchReport(results, sweep)


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
