"""The suites of ``greentrack bench``: how big each one makes the data, the models and the timing.

``tiny`` (one step per workload, for CI), ``quick`` (minutes on a CPU) and ``full`` (a GPU);
:data:`SWEEP_SETTINGS` scales the attention sweep (``linear_attention_sweep``) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SUITES", "SWEEP", "SWEEP_SETTINGS", "Sizes"]


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

#: the name ``--only`` takes for the attention sweep (:mod:`greentrack.workloads.sweep`)
SWEEP = "linear_attention_sweep"

#: keyword arguments of :func:`~greentrack.workloads.sweep.run_attention_sweep` per suite
#: (a suite not listed uses the sweep's defaults)
SWEEP_SETTINGS: dict[str, dict[str, Any]] = {
    "tiny": dict(lengths=(8, 16), width=16, heads=2, layers=1, n_features=8, n_slots=4,
                 min_time_s=0.0),
    "full": dict(lengths=(256, 512, 1024, 2048, 4096, 8192, 16384), width=256, heads=8,
                 layers=4, n_features=64, n_slots=32, tokens_per_batch=65536, min_time_s=2.0),
}  # fmt: skip
