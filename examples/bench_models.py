"""Use the reference efficient models directly: train, calibrate, count FLOPs, track energy.

Trains an early-exit Transformer on the generated image-like task inside ``greentrack.track``,
calibrates its exit threshold on validation data, and compares FLOPs per example with and
without exiting, using ``greentrack.count_flops``.

    python examples/bench_models.py --steps 300
"""

from __future__ import annotations

import argparse

import torch

import greentrack as gt
from greentrack.workloads import data
from greentrack.workloads.early_exit import EarlyExitTransformer, calibrate
from greentrack.workloads.training import accuracy, fit
from greentrack.workloads.transformer import TransformerConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(0)

    task = data.shapes(2000, 500, 500)
    config = TransformerConfig(patch_dim=task.patch_dim, block_size=task.seq_len, n_layer=4,
                               n_head=4, n_embd=32, causal=False, n_classes=10)  # fmt: skip
    model = EarlyExitTransformer(config)
    with gt.track("early-exit-example", project="examples", params={"steps": args.steps}) as run:
        with run.phase("train"):
            fit(model, task.train, steps=args.steps, batch_size=32, lr=3e-3)
            cal = calibrate(model, task.val.x, task.val.y, max_loss=0.01)
        with run.phase("eval"), torch.no_grad():
            logits, layers = model.infer(task.test.x)
            acc = accuracy(logits, task.test.y)
        full_flops = count_at(model, task.test.x, float("inf"))
        exit_flops = count_at(model, task.test.x, cal.threshold)
        run.log(accuracy=acc, mean_exit_layer=float(layers.float().mean()))
        run.log_flops(exit_flops)
    print(run.summary())
    print(
        f"threshold {cal.threshold:.3f} ({cal.measure}): accuracy {acc:.3f}, mean exit layer "
        f"{layers.float().mean():.2f} of {config.n_layer}; FLOPs per example "
        f"{exit_flops / len(task.test):,.0f} vs {full_flops / len(task.test):,.0f} without exits"
    )


def count_at(model: EarlyExitTransformer, x: torch.Tensor, threshold: float) -> int:
    """FLOPs of ``model.infer`` on ``x`` with the given exit threshold."""
    saved, model.ee.threshold = model.ee.threshold, threshold
    try:
        return gt.count_flops(lambda t: model.infer(t)[0], x)
    finally:
        model.ee.threshold = saved


if __name__ == "__main__":
    main()
