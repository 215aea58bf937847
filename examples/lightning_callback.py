"""PyTorch Lightning with greentrack: one callback, phases per epoch / train / validate.

    pip install 'greentrack[lightning]'
    python examples/lightning_callback.py && greentrack show latest

``GreentrackCallback`` starts a run when ``fit`` starts (named after the LightningModule, with its
hyper-parameters), records ``epoch``, ``epoch/train``, ``epoch/validate`` and ``sanity_check``
phases, the metrics Lightning logs, and progress for the energy forecast. Under DDP, put it on
every rank (Lightning does): all ranks join one run.
"""

from __future__ import annotations

import argparse
import tempfile

import lightning.pytorch as L
import torch
from torch import nn

from greentrack.integrations.lightning import GreentrackCallback


class Classifier(L.LightningModule):
    """A 2-layer MLP on a synthetic 4-class task."""

    def __init__(self, hidden: int = 64, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(32, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def training_step(self, batch, batch_idx):
        x, y = batch  # (B, 32), (B,)
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(dim=1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(n: int, seed: int) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=g)  # (n, 32)
    y = x[:, :4].argmax(dim=1)  # (n,): a learnable rule
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    callback = GreentrackCallback(project="lightning-demo", region="ES")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(max_epochs=args.epochs, callbacks=[callback], accelerator="cpu",
                            devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, default_root_dir=tmp)  # fmt: skip
        trainer.fit(Classifier(), loader(2048, 0), loader(512, 1))
    print(callback.run.summary())


if __name__ == "__main__":
    main()
