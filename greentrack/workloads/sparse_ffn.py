"""Fine-grained sparse feed-forward layer ("Sparse FF") from Scaling Transformers.

Follows "Sparse is Enough in Scaling Transformers" (Jaszczur et al., NeurIPS 2021,
arXiv:2111.12763), §3.1: the FFN's ``d_ff`` units are split into blocks of ``N`` units and only
one unit per block is active. A low-rank controller picks it:
``Controller(x) = argmax(Reshape(x · D1 · D2, (-1, N)))`` with ``D1: d_model × d_lowrank``,
``D2: d_lowrank × d_ff`` and ``d_lowrank = d_model / N``; then
``Y = max(0, x W1 + b1) ⊙ Controller(x)`` and ``SparseFFN(x) = Y W2 + b2``.
In training the controller's one-hot is a straight-through Gumbel-softmax sample (hard in the
forward pass, soft gradient, temperature 0.1). At inference only the selected units are
computed: the layer *gathers* the selected rows of ``W1ᵀ`` and ``W2`` per token and never
touches the others, which is what makes decoding cheaper (the paper's speed-up is for
decoding, where reading the weights dominates).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from greentrack.workloads.transformer import Transformer, TransformerConfig

__all__ = ["SparseFFN", "SparseFFNConfig", "gumbel_one_hot", "sparse_ffn_transformer"]


@dataclass
class SparseFFNConfig:
    units_per_block: int = 32  # N: units per block, one of them active per token
    lowrank: int | None = None  # d_lowrank of the controller (None: n_embd // N, at least 1)
    temperature: float = 0.1  # Gumbel-softmax temperature in training
    chunk_tokens: int = 4096  # sparse inference processes this many tokens at a time (memory)


def gumbel_one_hot(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Straight-through Gumbel-softmax over the last dim: one-hot forward, soft gradient."""
    u = torch.rand_like(logits).clamp_(1e-10, 1.0)
    soft = F.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)  # (..., N)
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
    return hard - soft.detach() + soft


class SparseFFN(nn.Module):
    """Drop-in FFN with one active unit per block of ``units_per_block``."""

    def __init__(self, config: TransformerConfig, sp: SparseFFNConfig | None = None) -> None:
        super().__init__()
        sp = sp or SparseFFNConfig()
        C = config.n_embd
        d_ff = config.ffn_mult * C
        N = sp.units_per_block
        assert d_ff % N == 0, f"d_ff={d_ff} must be a multiple of units_per_block={N}"
        self.sp = sp
        self.d_ff, self.N, self.n_blocks = d_ff, N, d_ff // N
        r = sp.lowrank or max(1, C // N)
        self.ctrl_down = nn.Linear(C, r, bias=False)  # D1
        self.ctrl_up = nn.Linear(r, d_ff, bias=False)  # D2
        self.w_in = nn.Parameter(torch.randn(d_ff, C) * 0.02)  # W1ᵀ: one row per unit
        self.b_in = nn.Parameter(torch.zeros(d_ff))  # b1
        std_out = 0.02 / (2 * config.n_layer) ** 0.5
        self.w_out = nn.Parameter(torch.randn(d_ff, C) * std_out)  # W2: one row per unit
        self.b_out = nn.Parameter(torch.zeros(C))  # b2
        self.dropout = nn.Dropout(config.dropout)
        offsets = torch.arange(self.n_blocks) * N  # first unit of each block
        self.register_buffer("offsets", offsets, persistent=False)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Controller logits per block: (n, C) -> (n, n_blocks, N)."""
        return self.ctrl_up(self.ctrl_down(x)).view(-1, self.n_blocks, self.N)

    def selected_units(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the active unit of every block: (n, C) -> (n, n_blocks), values in d_ff."""
        return self.scores(x).argmax(-1) + self.offsets  # (n, n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        xf = x.reshape(B * T, C)  # (n, C)
        y = self.forward_train(xf) if self.training else self.forward_sparse(xf)
        return self.dropout(y.view(B, T, C))  # (B, T, C)

    def forward_train(self, xf: torch.Tensor) -> torch.Tensor:
        """All units computed, masked by a straight-through Gumbel one-hot per block."""
        mask = gumbel_one_hot(self.scores(xf), self.sp.temperature)  # (n, nb, N)
        h = F.relu(xf @ self.w_in.t() + self.b_in) * mask.view(-1, self.d_ff)  # (n, d_ff)
        return h @ self.w_out + self.b_out  # (n, C)

    def forward_masked(self, xf: torch.Tensor) -> torch.Tensor:
        """Reference: all units computed, masked by the controller's argmax (for tests)."""
        mask = F.one_hot(self.scores(xf).argmax(-1), self.N).to(xf.dtype)  # (n, nb, N)
        h = F.relu(xf @ self.w_in.t() + self.b_in) * mask.view(-1, self.d_ff)  # (n, d_ff)
        return h @ self.w_out + self.b_out  # (n, C)

    def forward_sparse(self, xf: torch.Tensor) -> torch.Tensor:
        """Inference: gather only the selected rows of W1ᵀ and W2 for each token."""
        out = []
        for xc in xf.split(self.sp.chunk_tokens):
            idx = self.selected_units(xc)  # (n, nb)
            w1 = self.w_in[idx]  # (n, nb, C): only the selected rows are read
            h = F.relu(torch.einsum("nc,nbc->nb", xc, w1) + self.b_in[idx])  # (n, nb)
            w2 = self.w_out[idx]  # (n, nb, C)
            out.append(torch.einsum("nb,nbc->nc", h, w2) + self.b_out)  # (n, C)
        return torch.cat(out) if len(out) > 1 else out[0]

    def inactive_params(self) -> int:
        """Parameters a token does not use at inference: the unselected rows of W1ᵀ, b1, W2."""
        return (self.d_ff - self.n_blocks) * (2 * self.w_in.shape[1] + 1)


def sparse_ffn_transformer(
    config: TransformerConfig, sp: SparseFFNConfig | None = None
) -> Transformer:
    """A :class:`Transformer` whose every FFN is a :class:`SparseFFN`."""
    return Transformer(config, make_ffn=lambda cfg, layer: SparseFFN(cfg, sp))
