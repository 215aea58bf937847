"""Quickstart: a small PyTorch training run under greentrack, stored in the default SQLite store.

    python examples/quickstart.py && greentrack show latest

Trains a 2-layer MLP on a synthetic classification task for a few epochs, with one phase per
epoch and an eval phase inside, and logs the validation accuracy. Afterwards the run is in
``~/.greentrack/greentrack.db`` (or ``$GREENTRACK_HOME``): ``greentrack runs`` lists it.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import greentrack as gt

RULE = torch.randn(32, 4, generator=torch.Generator().manual_seed(1234))  # (32, 4)


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=g)  # (n, 32)
    y = (x @ RULE).argmax(dim=1)  # the same learnable rule for train and val
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--region", default="ES")
    args = parser.parse_args()
    torch.manual_seed(0)
    x_train, y_train = make_data(4096)
    x_val, y_val = make_data(1024, seed=1)
    model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    with gt.track(
        "mlp",
        project="quickstart",
        region=args.region,
        interval_s=0.2,
        params={"lr": 3e-3, "epochs": args.epochs},
    ) as run:
        for epoch in range(args.epochs):
            with run.phase("epoch"):
                model.train()
                for i in range(0, len(x_train), 128):
                    loss = nn.functional.cross_entropy(
                        model(x_train[i : i + 128]), y_train[i : i + 128]
                    )
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                with run.phase("eval"), torch.no_grad():
                    acc = (model(x_val).argmax(1) == y_val).float().mean().item()
            run.log(step=epoch, val_acc=acc, loss=loss.item())
            run.progress(epoch + 1, args.epochs)
    print(run.summary())
    print(f"\nrun id: {run.id}  (greentrack show {run.id[:8]})")


if __name__ == "__main__":
    main()
