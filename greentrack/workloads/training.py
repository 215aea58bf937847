"""Small training and evaluation loops shared by the benchmark workloads.

Plain PyTorch: AdamW (or any optimizer), random mini-batches drawn with a seeded generator,
gradient clipping, and a ``on_step(step, total)`` callback for progress reporting.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from greentrack.workloads.data import Split

__all__ = ["accuracy", "batches", "fit", "predict_logits"]

StepCallback = Callable[[int, int], None]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def batches(
    split: Split, batch_size: int, steps: int, *, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` random mini-batches (sampled with replacement across steps, seeded)."""
    g = torch.Generator().manual_seed(seed)
    n = len(split)
    out = []
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g).to(split.x.device)
        out.append((split.x[idx], split.y[idx]))
    return out


def fit(
    model: nn.Module,
    split: Split,
    *,
    steps: int,
    batch_size: int,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    grad_clip: float | None = 1.0,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    compute_grads: LossFn | None = None,
    after_step: Callable[[], None] | None = None,
    on_step: StepCallback | None = None,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` for ``steps`` mini-batches; returns the loss of every step.

    ``loss_fn(x, y)`` replaces ``model(x, y)[1]`` (distillation); ``optimizer`` replaces AdamW;
    ``compute_grads(x, y)`` fills ``p.grad`` itself and returns the loss, instead of
    ``loss.backward()`` (Direct Feedback Alignment); ``after_step`` runs after each optimizer
    step (re-applying pruning masks).
    """
    model.train()
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then cosine decay to 10 %
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup) * (0.55 + 0.45 * math.cos(math.pi * min(s, steps) / steps))
        ),
    )
    losses = []
    for step, (x, y) in enumerate(batches(split, batch_size, steps, seed=seed)):
        opt.zero_grad(set_to_none=True)
        if compute_grads is not None:
            loss = compute_grads(x, y)
        else:
            loss = loss_fn(x, y) if loss_fn is not None else model(x, y)[1]
            loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        if after_step is not None:
            after_step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, steps)
    model.eval()
    return losses


@torch.no_grad()
def predict_logits(
    predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Logits of ``predict`` over ``x`` in batches, concatenated along the first dimension."""
    return torch.cat([predict(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy: per example (logits (N, K)) or per token (logits (N, T, V)). Fraction."""
    return float((logits.argmax(-1) == y).float().mean())
