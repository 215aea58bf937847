"""Efficient attention: random-feature attention (linear in length) and bounded-memory attention.

- :class:`RandomFeatureAttention` follows "Random Feature Attention" (RFA; Peng et al., ICLR
  2021, arXiv:2103.02143) and the Performer's FAVOR+ (Choromanski et al., ICLR 2021,
  arXiv:2009.14794). Softmax attention ``softmax(q kᵀ) v`` is approximated with a random
  feature map φ such that ``E[φ(q)·φ(k)] = exp(q·k)``:
  ``attn(q) = φ(q)ᵀ Σ_i φ(k_i) v_iᵀ / φ(q)ᵀ Σ_j φ(k_j)``, computed right to left, so the cost is
  linear in the sequence length (``O(T · m · d)`` for m features) instead of quadratic.
  ``feature_map="positive"`` is FAVOR+ (``exp(w·x − |x|²/2) / √m`` with orthogonal random ``w``;
  always positive, so the denominator is stable); ``"trig"`` is RFA's random Fourier features
  ``[sin(w·x), cos(w·x)] / √m`` on ℓ2-normalised queries and keys. The causal mode keeps
  prefix sums of ``φ(k_i) v_iᵀ`` and ``φ(k_i)`` (RFA's recurrent form). Features are redrawn
  at every training step (RFA) and fixed at evaluation.
- :class:`ABCAttention` follows "ABC: Attention with Bounded-memory Control" (Peng et al., ACL
  2022, arXiv:2110.02488), the ABC_MLP variant: ``S`` memory slots (S ≪ T) are written with
  learned control weights ``α_i = softmax_over_i(W_φ x_i)`` per slot (scores soft-clamped to
  ±30 so that the causal prefix sums need no data-dependent shift):
  ``K̃ = Σ_i α_i ⊗ k_i``, ``Ṽ = Σ_i α_i ⊗ v_i`` (S × d each), and every query attends to the S
  slots: ``softmax(q K̃ᵀ / √d) Ṽ``, so the cost is ``O(T · S · d)``. In the causal mode the
  normalisation runs over the prefix ``i <= t`` (prefix sums).

Both are drop-in replacements for ``transformer.SelfAttention`` (``forward(x) -> (B, T, C)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from greentrack.workloads.transformer import Transformer, TransformerConfig

__all__ = [
    "ABCAttention",
    "AttentionConfig",
    "RandomFeatureAttention",
    "efficient_transformer",
    "orthogonal_gaussian",
]


@dataclass
class AttentionConfig:
    kind: str = "rfa"  # rfa (random features) | abc (bounded memory) | softmax (baseline)
    n_features: int = 64  # m: random features per head (rfa)
    feature_map: str = "positive"  # rfa: positive (FAVOR+) | trig (RFA's sin/cos)
    redraw: bool = True  # rfa: draw new features at every training forward
    n_slots: int = 16  # S: memory slots per head (abc)
    eps: float = 1e-12  # guards the rfa normaliser against 0


_CLAMP = 30.0  # ABC control scores are soft-clamped to ±_CLAMP


def orthogonal_gaussian(m: int, d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(m, d) random rows: orthogonal within blocks of d, norms of Gaussian vectors (FAVOR+)."""
    blocks = []
    for _ in range(math.ceil(m / d)):
        g = torch.randn(d, d, generator=generator)
        q, _ = torch.linalg.qr(g)  # (d, d) orthonormal
        blocks.append(q.t())
    w = torch.cat(blocks)[:m]  # (m, d)
    norms = torch.randn(m, d, generator=generator).norm(dim=1, keepdim=True)  # chi(d)
    return w * norms  # (m, d)


def _split_heads(t: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, C = t.shape
    return t.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, H, T, D)


class RandomFeatureAttention(nn.Module):
    """Multi-head random-feature attention, linear in sequence length (RFA / Performer)."""

    def __init__(self, config: TransformerConfig, ac: AttentionConfig | None = None) -> None:
        super().__init__()
        ac = ac or AttentionConfig(kind="rfa")
        assert config.n_embd % config.n_head == 0, "n_embd must be a multiple of n_head"
        assert ac.feature_map in ("positive", "trig"), "feature_map must be positive or trig"
        self.ac = ac
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.causal = config.causal
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        n_draw = ac.n_features
        self.register_buffer("w", orthogonal_gaussian(n_draw, self.head_dim))  # (m, D)

    def features(self, x: torch.Tensor, w: torch.Tensor, is_query: bool) -> torch.Tensor:
        """φ(x): (B, H, T, D) -> (B, H, T, m') with m' = m (positive) or 2m (trig)."""
        m = w.shape[0]
        if self.ac.feature_map == "trig":
            proj = F.normalize(x, dim=-1) @ w.t()  # (B, H, T, m)
            return torch.cat([proj.sin(), proj.cos()], dim=-1) / math.sqrt(m)  # (B, H, T, 2m)
        x = x * self.head_dim**-0.25  # so that φ(q)·φ(k) estimates exp(q·k / √D)
        proj = x @ w.t()  # (B, H, T, m)
        sq = 0.5 * (x * x).sum(-1, keepdim=True)  # (B, H, T, 1)
        # w·x − |x|²/2 <= |w|²/2, so exp cannot overflow; stabilisers only fight underflow and
        # cancel between numerator and denominator: per query row, and for keys one value per
        # (batch, head) in the encoder (none in the causal mode, which must not see the future).
        if is_query:
            stab = proj.detach().amax(dim=-1, keepdim=True)  # (B, H, T, 1)
        elif not self.causal:
            stab = proj.detach().amax(dim=(-1, -2), keepdim=True)  # (B, H, 1, 1)
        else:
            stab = torch.zeros((), dtype=proj.dtype, device=proj.device)
        return torch.exp(proj - sq - stab) / math.sqrt(m)  # (B, H, T, m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 × (B, T, C)
        q, k, v = (_split_heads(t, self.n_head) for t in (q, k, v))  # (B, H, T, D)
        w = self.w
        if self.training and self.ac.redraw:
            w = orthogonal_gaussian(w.shape[0], self.head_dim).to(w)
        fq = self.features(q, w, is_query=True)  # (B, H, T, m)
        fk = self.features(k, w, is_query=False)  # (B, H, T, m)
        if self.causal:
            kv = torch.einsum("bhtm,bhtd->bhtmd", fk, v).cumsum(dim=2)  # (B, H, T, m, D)
            num = torch.einsum("bhtm,bhtmd->bhtd", fq, kv)  # (B, H, T, D)
            den = (fq * fk.cumsum(dim=2)).sum(-1)  # (B, H, T)
        else:
            kv = torch.einsum("bhtm,bhtd->bhmd", fk, v)  # (B, H, m, D)
            num = torch.einsum("bhtm,bhmd->bhtd", fq, kv)  # (B, H, T, D)
            den = torch.einsum("bhtm,bhm->bht", fq, fk.sum(dim=2))  # (B, H, T)
        if self.ac.feature_map == "trig":  # sin/cos features can make den ~ 0 or negative
            den = torch.where(den.abs() < self.ac.eps, torch.full_like(den, self.ac.eps), den)
        else:  # positive features: den > 0 unless everything underflowed
            den = den.clamp(min=self.ac.eps)
        y = num / den.unsqueeze(-1)  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class ABCAttention(nn.Module):
    """Multi-head attention over ``n_slots`` learned memory slots (ABC_MLP)."""

    def __init__(self, config: TransformerConfig, ac: AttentionConfig | None = None) -> None:
        super().__init__()
        ac = ac or AttentionConfig(kind="abc")
        assert config.n_embd % config.n_head == 0, "n_embd must be a multiple of n_head"
        assert ac.n_slots >= 1, "n_slots must be at least 1"
        self.ac = ac
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.causal = config.causal
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.control = nn.Linear(config.n_embd, config.n_head * ac.n_slots, bias=False)  # W_φ
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        H, D, S = self.n_head, self.head_dim, self.ac.n_slots
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 × (B, T, C)
        q, k, v = (_split_heads(t, H) for t in (q, k, v))  # (B, H, T, D)
        a = self.control(x).view(B, T, H, S).transpose(1, 2)  # (B, H, T, S) control scores
        a = _CLAMP * torch.tanh(a / _CLAMP)  # soft clamp to ±30: exp() is safe without a shift
        if not self.causal:
            alpha = F.softmax(a, dim=2)  # normalised over positions, per slot
            mem_k = torch.einsum("bhts,bhtd->bhsd", alpha, k)  # (B, H, S, D)
            mem_v = torch.einsum("bhts,bhtd->bhsd", alpha, v)  # (B, H, S, D)
            att = F.softmax(q @ mem_k.transpose(-1, -2) / math.sqrt(D), dim=-1)  # (B, H, T, S)
            y = att @ mem_v  # (B, H, T, D)
        else:
            # Prefix-normalised slots: mem_t = Σ_{i<=t} e^{a_i} k_i / Σ_{i<=t} e^{a_i}; |a| <= 30,
            # so no data-dependent shift is needed and position t never sees i > t.
            e = torch.exp(a)  # (B, H, T, S)
            z = e.cumsum(dim=2).unsqueeze(-1)  # (B, H, T, S, 1)
            mem_k = torch.einsum("bhts,bhtd->bhtsd", e, k).cumsum(dim=2) / z  # (B, H, T, S, D)
            mem_v = torch.einsum("bhts,bhtd->bhtsd", e, v).cumsum(dim=2) / z  # (B, H, T, S, D)
            scores = torch.einsum("bhtd,bhtsd->bhts", q, mem_k) / math.sqrt(D)  # (B, H, T, S)
            y = torch.einsum("bhts,bhtsd->bhtd", F.softmax(scores, dim=-1), mem_v)  # (B,H,T,D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


def efficient_transformer(
    config: TransformerConfig, ac: AttentionConfig | None = None
) -> Transformer:
    """A :class:`Transformer` whose attention is ``ac.kind``: ``rfa``, ``abc`` or ``softmax``."""
    ac = ac or AttentionConfig()
    if ac.kind == "softmax":
        return Transformer(config)
    if ac.kind == "rfa":
        return Transformer(config, make_attn=lambda cfg, layer: RandomFeatureAttention(cfg, ac))
    if ac.kind == "abc":
        return Transformer(config, make_attn=lambda cfg, layer: ABCAttention(cfg, ac))
    raise ValueError(f"unknown attention kind {ac.kind!r}; use rfa, abc or softmax")
