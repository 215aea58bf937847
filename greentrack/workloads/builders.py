"""The workloads of ``greentrack bench``: how each is built and trained, and the registry.

Each builder takes the :class:`Context` of one bench call (sizes, device, generated tasks, the
models trained so far) and returns a :class:`Built`: the trained model, its inference path and
what to report about it. :data:`WORKLOADS` lists them in the order they run; adding a workload
is one builder plus one :class:`Workload` line.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from greentrack.errors import ConfigError
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
from greentrack.workloads.moe import MoEConfig, MoEFFN, moe_transformer
from greentrack.workloads.progress import Progress
from greentrack.workloads.sparse_ffn import SparseFFN, SparseFFNConfig, sparse_ffn_transformer
from greentrack.workloads.suites import SWEEP, Sizes
from greentrack.workloads.training import accuracy, fit, predict_logits
from greentrack.workloads.transformer import MLP as DenseFFN
from greentrack.workloads.transformer import Transformer, TransformerConfig

__all__ = [
    "WORKLOADS",
    "Built",
    "Context",
    "Workload",
    "param_counts",
    "resolve",
    "workload_names",
]


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


class Context:
    """What workloads share within one bench call: sizes, device, tasks, trained models."""

    def __init__(self, sizes: Sizes, device: str, seed: int, progress: Progress) -> None:
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


def _seed(ctx: Context) -> None:
    torch.manual_seed(ctx.seed)


def _logits(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model(x)[0]


def _transformer(task_name: str, layers_attr: str) -> Callable[[Context], Built]:
    def build(ctx: Context) -> Built:
        task = ctx.task(task_name)
        _seed(ctx)
        model = Transformer(ctx.config(task, getattr(ctx.sizes, layers_attr))).to(ctx.device)
        ctx.fit(model, task)
        return Built(model, _logits(model))

    return build


def _early_exit(ctx: Context) -> Built:
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


def _moe(ctx: Context) -> Built:
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


def _sparse_ffn(ctx: Context) -> Built:
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


def _attention(kind: str) -> Callable[[Context], Built]:
    def build(ctx: Context) -> Built:
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


def _distill(ctx: Context) -> Built:
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


def _int8(ctx: Context) -> Built:
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


def _prune(ctx: Context) -> Built:
    task = ctx.task("shapes")
    model = copy.deepcopy(ctx.built["transformer_shapes"].model)
    masks = magnitude_prune(model, ctx.sizes.prune_amount)
    ctx.fit(
        model, task, steps=ctx.sizes.finetune_steps, lr=ctx.sizes.lr / 4,
        after_step=lambda: masks.apply(model),
    )  # fmt: skip
    notes = {"sparsity_of_linear_weights": round(sparsity(model), 4), "kernel": "dense"}
    return Built(model, _logits(model), notes, param_counts=lambda n: _weights(model))


def _prune_csr(ctx: Context) -> Built:
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


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(total, active per example) parameters: the model's own ``param_counts()`` where it has
    one, else its weights (all, non-zero)."""
    fn = getattr(model, "param_counts", None)
    if callable(fn):
        return fn()
    return _weights(model)


def _mlp(dfa: bool) -> Callable[[Context], Built]:
    def build(ctx: Context) -> Built:
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
    build: Callable[[Context], Built]


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


def workload_names() -> list[str]:
    """Names accepted by ``--only``, in the order they run (plus the attention sweep)."""
    return [*WORKLOADS, SWEEP]


def resolve(only: Iterable[str] | None) -> list[str]:
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
