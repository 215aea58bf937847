"""Baseline Transformer: a decoder language model and an encoder classifier.

Follows "Attention Is All You Need" (Vaswani et al., 2017, arXiv:1706.03762) with pre-LayerNorm
blocks as in GPT-2 (Radford et al., 2019) and Karpathy's nanoGPT (github.com/karpathy/nanoGPT),
whose layout this file copies: config dataclass, modules in the order data flows, and
``forward(x, targets=None) -> (logits, loss)``. Image-like inputs use a linear patch embedding
as in ViT (Dosovitskiy et al., 2021, arXiv:2010.11929).

The other model families reuse these blocks: ``make_attn`` / ``make_ffn`` swap the attention
(``attention.py``) or the feed-forward network (``moe.py``, ``sparse_ffn.py``); an FFN that
sets an ``aux_loss`` attribute during its forward (the MoE balancing loss) has it added to the
training loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

__all__ = ["MLP", "Block", "SelfAttention", "Transformer", "TransformerConfig"]


@dataclass
class TransformerConfig:
    vocab_size: int = 64  # token ids in the input (ignored when patch_dim is set)
    patch_dim: int | None = None  # float inputs (B, T, patch_dim): linear patch embedding (ViT)
    block_size: int = 128  # longest sequence; positions are learned
    n_layer: int = 4  # Transformer blocks
    n_head: int = 4  # attention heads; n_embd must divide by it
    n_embd: int = 128  # model width C
    ffn_mult: int = 4  # hidden width of the FFN is ffn_mult * n_embd
    dropout: float = 0.0  # on embeddings, attention and FFN outputs
    bias: bool = True  # biases in Linear and LayerNorm
    causal: bool = True  # True: decoder (position t sees only <= t); False: encoder
    n_classes: int | None = None  # None: next-token LM head; k: classifier over k classes
    pad_id: int | None = None  # classifier mean-pooling skips this token id


class SelfAttention(nn.Module):
    """Multi-head softmax self-attention (``scaled_dot_product_attention``), causal or not."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be a multiple of n_head"
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.causal = config.causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 × (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward network: Linear, GELU, Linear."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.ffn_mult * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.ffn_mult * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm residual block: ``x + attn(ln(x))`` then ``x + ffn(ln(x))``."""

    def __init__(
        self, config: TransformerConfig, attn: nn.Module | None = None, ffn: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = attn if attn is not None else SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.ffn = ffn if ffn is not None else MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        x = x + self.ffn(self.ln_2(x))  # (B, T, C)
        return x


ModuleFactory = Callable[[TransformerConfig, int], nn.Module]


class Transformer(nn.Module):
    """Decoder LM (``n_classes=None``) or encoder classifier (``n_classes=k``).

    ``make_attn(config, layer)`` and ``make_ffn(config, layer)`` build each block's attention and
    FFN (default: softmax attention, dense MLP).
    """

    def __init__(
        self,
        config: TransformerConfig,
        make_attn: ModuleFactory | None = None,
        make_ffn: ModuleFactory | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        if config.patch_dim is not None:
            self.wte: nn.Module = nn.Linear(config.patch_dim, config.n_embd)
        else:
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(
                config,
                attn=make_attn(config, i) if make_attn else None,
                ffn=make_ffn(config, i) if make_ffn else None,
            )
            for i in range(config.n_layer)
        )
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        n_out = config.vocab_size if config.n_classes is None else config.n_classes
        self.head = nn.Linear(config.n_embd, n_out, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scaled init of residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self._aux = [m for m in self.modules() if hasattr(m, "aux_loss")]

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # -- the data flow, in order ---------------------------------------------------------------

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Token or patch embedding plus positions: (B, T[, F]) -> (B, T, C)."""
        T = x.shape[1]
        assert self.config.block_size >= T, f"sequence of {T} > block_size {self.config.block_size}"
        if self.config.patch_dim is not None:
            assert x.dim() == 3, f"patch inputs must be (B, T, F), got {tuple(x.shape)}"
        else:
            assert x.dim() == 2, f"token inputs must be (B, T), got {tuple(x.shape)}"
        pos = torch.arange(T, device=x.device)
        return self.drop(self.wte(x) + self.wpe(pos))  # (B, T, C)

    def pool(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Classifier pooling: mean over the non-padding positions. (B, T, C) -> (B, C)."""
        if self.config.pad_id is None or self.config.patch_dim is not None:
            return h.mean(dim=1)  # (B, C)
        keep = (x != self.config.pad_id).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)  # (B, C)

    def readout(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm and head: logits (B, T, V) for the LM, (B, K) for the classifier."""
        if self.config.n_classes is None:
            return self.head(self.ln_f(h))  # (B, T, V)
        return self.head(self.ln_f(self.pool(h, x)))  # (B, K)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.embed(x)  # (B, T, C)
        for block in self.blocks:
            h = block(h)  # (B, T, C)
        logits = self.readout(h, x)
        loss = None
        if targets is not None:
            loss = self.task_loss(logits, targets) + self.auxiliary_loss()
        return logits, loss

    def task_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy; for the LM over every position (targets ``-1`` are ignored)."""
        if self.config.n_classes is None:
            return F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
            )
        return F.cross_entropy(logits, targets)

    def auxiliary_loss(self) -> torch.Tensor | float:
        """Sum of the auxiliary losses the FFNs set during the last forward (0 when none)."""
        total: torch.Tensor | float = 0.0
        for m in self._aux:
            if m.aux_loss is not None:
                total = total + m.aux_loss
        return total

    def param_counts(self) -> tuple[int, int]:
        """(total, active per example): modules with ``inactive_params()`` subtract theirs."""
        total = sum(p.numel() for p in self.parameters())
        inactive = sum(m.inactive_params() for m in self.modules() if hasattr(m, "inactive_params"))
        return total, total - inactive
