"""Hugging Face ``Trainer`` with greentrack: one callback, phases per epoch / train / validate.

    pip install 'greentrack[hf]'
    python examples/hf_callback.py && greentrack show latest

``GreentrackCallback`` starts a run at ``on_train_begin`` (named after the model class, with the
main ``TrainingArguments`` as params), records ``epoch``, ``epoch/train`` and ``validate`` phases,
everything the Trainer logs (loss, learning rate, eval metrics) and progress for the forecast.
The model here is a plain ``torch.nn.Module`` (the Trainer accepts any module that returns a
loss), so nothing is downloaded; a pretrained model works the same way.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn
from transformers import Trainer, TrainingArguments

import greentrack as gt
from greentrack.integrations.hf import GreentrackCallback


class TinyClassifier(nn.Module):
    """A 2-layer MLP with the Trainer's calling convention: ``forward(x, labels) -> {loss}``."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        logits = self.net(x)  # (B, 4)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


def rows(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=g)  # (n, 32)
    y = x[:, :4].argmax(dim=1)  # (n,): a learnable rule
    return [{"x": x[i], "labels": y[i]} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, num_train_epochs=args.epochs,
                                  per_device_train_batch_size=64, learning_rate=0.05,
                                  eval_strategy="epoch", logging_steps=5, save_strategy="no",
                                  report_to=[], use_cpu=True, disable_tqdm=True)  # fmt: skip
        # The exact status (failed, interrupted) needs the run around the call:
        with gt.track("hf-demo", project="hf-demo", region="ES") as run:
            Trainer(
                model=TinyClassifier(),
                args=targs,
                train_dataset=rows(1024, 0),
                eval_dataset=rows(256, 1),
                callbacks=[GreentrackCallback(run=run)],
            ).train()
    print(run.summary())


if __name__ == "__main__":
    main()
