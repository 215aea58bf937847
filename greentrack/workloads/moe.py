"""Mixture-of-Experts feed-forward layer: top-k gating, load balancing, expert capacity.

Follows "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer"
(Shazeer et al., ICLR 2017, arXiv:1701.06538) for top-k gating, GShard (Lepikhin et al., 2021,
arXiv:2006.16668) for the expert capacity and the priority of first over second choices, and
Switch Transformers (Fedus et al., JMLR 2022, arXiv:2101.03961) for the load-balancing loss
``α · E · Σ_e f_e · P_e`` (f_e: fraction of tokens whose first choice is expert e; P_e: mean
router probability of e) and the capacity factor:
``capacity = ceil(capacity_factor · k · tokens / E)``. Tokens beyond an expert's capacity are
dropped by that expert (their residual connection carries them on), as in Switch. Because
tokens of a batch compete for slots, dropping makes a token's output depend on other tokens
(in a decoder, on later ones); by default nothing is dropped at evaluation
(``eval_capacity_factor=None``), so the evaluated decoder is strictly causal.

Each token runs through only its k chosen experts: the layer gathers each expert's tokens,
runs the expert on them and scatters the gated outputs back, so the FLOPs per token are those
of k experts plus the router, while the parameters are those of E experts.
:meth:`MoEFFN.inactive_params` reports the difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from greentrack.workloads.transformer import MLP, Transformer, TransformerConfig

__all__ = ["MoEConfig", "MoEFFN", "moe_transformer"]


@dataclass
class MoEConfig:
    n_experts: int = 4  # E experts per MoE layer
    top_k: int = 1  # experts per token (Switch: 1; Shazeer / GShard: 2)
    capacity_factor: float = 1.25  # slots per expert relative to an even share of tokens
    eval_capacity_factor: float | None = None  # at eval; None: no token dropped (stays causal)
    aux_loss_weight: float = 0.01  # α of the Switch load-balancing loss
    expert_mult: int = 4  # hidden width of each expert is expert_mult * n_embd
    every: int = 1  # MoE in every `every`-th block (1: all; 2: every other, as in GShard)


class Expert(nn.Module):
    """One expert: the dense FFN (Linear, GELU, Linear)."""

    def __init__(self, n_embd: int, hidden: int, bias: bool) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))  # (n, C)


class MoEFFN(nn.Module):
    """A drop-in FFN: a linear router picks ``top_k`` of ``n_experts`` experts per token."""

    def __init__(self, config: TransformerConfig, moe: MoEConfig) -> None:
        super().__init__()
        assert 1 <= moe.top_k <= moe.n_experts, "need 1 <= top_k <= n_experts"
        assert moe.capacity_factor > 0, "capacity_factor must be positive"
        self.moe = moe
        self.router = nn.Linear(config.n_embd, moe.n_experts, bias=False)
        self.experts = nn.ModuleList(
            Expert(config.n_embd, moe.expert_mult * config.n_embd, config.bias)
            for _ in range(moe.n_experts)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.aux_loss: torch.Tensor | None = None  # set by forward, added to the loss
        self.last_drop_fraction = 0.0  # fraction of (token, choice) pairs over capacity
        self.last_load = torch.zeros(moe.n_experts)  # fraction of first choices per expert

    def capacity(self, n_tokens: int) -> int:
        """Slots per expert for ``n_tokens`` tokens (``n_tokens`` when nothing is dropped)."""
        m = self.moe
        factor = m.capacity_factor if self.training else m.eval_capacity_factor
        if factor is None:
            return n_tokens
        return max(1, math.ceil(factor * m.top_k * n_tokens / m.n_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        E, k = self.moe.n_experts, self.moe.top_k
        xf = x.reshape(B * T, C)  # (N, C)
        N = xf.shape[0]
        probs = F.softmax(self.router(xf), dim=-1)  # (N, E)
        gate, choice = probs.topk(k, dim=-1)  # (N, k), (N, k)
        if k > 1:  # renormalise over the chosen experts (Shazeer: softmax over the top k)
            gate = gate / gate.sum(-1, keepdim=True)
        # Switch balancing loss on first choices.
        first = F.one_hot(choice[:, 0], E).to(probs.dtype)  # (N, E)
        f = first.mean(0)  # (E,)
        P = probs.mean(0)  # (E,)
        self.aux_loss = self.moe.aux_loss_weight * E * (f * P).sum() if self.training else None
        self.last_load = f.detach().cpu()
        # Capacity: first choices fill the slots before second choices (GShard).
        cap = self.capacity(N)
        filled = torch.zeros(E, dtype=torch.long, device=x.device)
        keep = torch.zeros(N, k, dtype=torch.bool, device=x.device)
        for r in range(k):
            onehot = F.one_hot(choice[:, r], E)  # (N, E)
            pos = torch.cumsum(onehot, 0) - 1 + filled[None, :]  # (N, E) slot index
            slot = (pos * onehot).sum(-1)  # (N,)
            keep[:, r] = slot < cap
            filled += onehot.sum(0)
        self.last_drop_fraction = float(1.0 - keep.float().mean())
        out = torch.zeros_like(xf)  # (N, C)
        for e, expert in enumerate(self.experts):
            tok, r = ((choice == e) & keep).nonzero(as_tuple=True)  # tokens routed to e
            if tok.numel() == 0:
                continue
            y = expert(xf[tok])  # (n_e, C)
            out.index_add_(0, tok, y * gate[tok, r].unsqueeze(1))
        return self.dropout(out.view(B, T, C))  # (B, T, C)

    def inactive_params(self) -> int:
        """Parameters a token does not use: the experts it is not routed to."""
        per_expert = sum(p.numel() for p in self.experts[0].parameters())
        return (self.moe.n_experts - self.moe.top_k) * per_expert


def moe_transformer(config: TransformerConfig, moe: MoEConfig | None = None) -> Transformer:
    """A :class:`Transformer` whose FFNs are :class:`MoEFFN` (in every ``moe.every``-th block)."""
    moe = moe or MoEConfig()

    def make_ffn(cfg: TransformerConfig, layer: int) -> nn.Module:
        if (layer + 1) % moe.every == 0:
            return MoEFFN(cfg, moe)
        return MLP(cfg)

    return Transformer(config, make_ffn=make_ffn)
