"""Direct Feedback Alignment (DFA) training of a tanh MLP, beside backpropagation.

Follows "Direct Feedback Alignment Provides Learning in Deep Neural Networks" (Nøkland, NeurIPS
2016, arXiv:1609.01596), whose MNIST network is 2 (or more) hidden layers of 800 tanh units.
The output error ``e = softmax(a_out) − onehot(y)`` (the gradient of cross-entropy with respect
to the output pre-activation) is sent to every hidden layer through a *fixed random* matrix
``B_l`` instead of the transposed forward weights: ``δa_l = (e B_l) ⊙ tanh'(a_l)``, and
``ΔW_l ∝ −δa_lᵀ h_{l−1}``. The output layer gets its true gradient. No backward pass through the
network is needed, so the layers' updates are independent once ``e`` is known.

:class:`MLP` is the network; :class:`DFATrainer` computes DFA gradients into ``p.grad`` so any
torch optimizer applies them (the benchmark uses the same SGD for DFA and backprop).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

__all__ = ["MLP", "DFATrainer", "MLPConfig"]


@dataclass
class MLPConfig:
    n_in: int = 256  # input features (16×16 pixels)
    n_hidden: int = 800  # units per hidden layer (Nøkland: 800)
    n_layer: int = 2  # hidden layers (Nøkland: 2×800 tanh on MNIST)
    n_classes: int = 10  # outputs
    feedback_scale: float = 0.05  # std of the fixed random feedback matrices B_l


class MLP(nn.Module):
    """tanh MLP: ``n_layer`` hidden layers of ``n_hidden`` units, then a linear output."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        sizes = [config.n_in] + [config.n_hidden] * config.n_layer
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.out = nn.Linear(config.n_hidden, config.n_classes)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert x.dim() == 2 and x.shape[1] == self.config.n_in, (
            f"MLP input must be (B, {self.config.n_in}), got {tuple(x.shape)}"
        )
        h = x  # (B, n_in)
        for layer in self.hidden:
            h = torch.tanh(layer(h))  # (B, n_hidden)
        logits = self.out(h)  # (B, K)
        loss = F.cross_entropy(logits, targets) if targets is not None else None
        return logits, loss

    def forward_with_activations(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Inputs of every layer [x, h_1, ..., h_L] and the logits (B, K)."""
        acts = [x]
        h = x
        for layer in self.hidden:
            h = torch.tanh(layer(h))  # (B, n_hidden)
            acts.append(h)
        return acts, self.out(h)

    def param_counts(self) -> tuple[int, int]:
        n = sum(p.numel() for p in self.parameters())
        return n, n


class DFATrainer:
    """Computes DFA gradients for an :class:`MLP` and leaves them in each parameter's ``.grad``."""

    def __init__(self, model: MLP, *, seed: int = 0) -> None:
        self.model = model
        c = model.config
        g = torch.Generator().manual_seed(seed)
        device = model.out.weight.device
        self.feedback = [  # B_l: (K, n_hidden), fixed for the whole training
            (torch.randn(c.n_classes, c.n_hidden, generator=g) * c.feedback_scale).to(device)
            for _ in range(c.n_layer)
        ]

    @torch.no_grad()
    def compute_grads(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Set ``p.grad`` for every parameter from one batch; returns the cross-entropy loss."""
        acts, logits = self.model.forward_with_activations(x)
        B = x.shape[0]
        e = (F.softmax(logits, dim=-1) - F.one_hot(y, logits.shape[-1]).to(logits.dtype)) / B
        out = self.model.out
        out.weight.grad = e.t() @ acts[-1]  # true gradient for the output layer (K, H)
        out.bias.grad = e.sum(0)
        for i, layer in enumerate(self.model.hidden):
            h = acts[i + 1]  # tanh(a_l), (B, H)
            delta = (e @ self.feedback[i]) * (1.0 - h * h)  # (B, H): random projection ⊙ tanh'
            layer.weight.grad = delta.t() @ acts[i]  # (H, in)
            layer.bias.grad = delta.sum(0)
        return F.cross_entropy(logits, y)
