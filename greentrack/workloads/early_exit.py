"""Early exit: a Transformer classifier with an exit after every layer that stops per example.

Follows two papers:

- "The Right Tool for the Job: Matching Model and Instance Complexities" (Schwartz et al., ACL
  2020, arXiv:2004.07453): a classifier after each layer, all trained together; at inference an
  example leaves at the first layer whose softmax confidence passes a threshold that is
  calibrated on development data to the accuracy one is willing to give up.
- "Confident Adaptive Language Modeling" (CALM; Schuster et al., NeurIPS 2022,
  arXiv:2207.07061): the confidence measures (softmax response, the top-1 minus top-2 margin,
  hidden-state saturation = cosine similarity of consecutive layers' states), the training loss
  weighted by depth (w_i = i / Σ j), and threshold calibration by Learn-then-Test with a
  Hoeffding bound on the disagreement with the full model ("consistency").

CALM exits per *token* while decoding; here the unit is the example of a classification task
(Schwartz et al.'s setting), which keeps the mechanism (confidence, threshold, skipping) and
drops CALM's state copying for skipped layers, which only decoding needs.

Inference really skips: after each layer the examples that exit are removed from the batch
(``index_select``), so the remaining layers run on fewer rows, and a batch whose examples all
exited stops. ``tests/test_workloads_models.py`` counts the rows each block processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from greentrack.workloads.transformer import Transformer, TransformerConfig

__all__ = [
    "Calibration",
    "EarlyExitConfig",
    "EarlyExitTransformer",
    "calibrate",
    "confidence",
]

MEASURES = ("softmax", "margin", "saturation")


@dataclass
class EarlyExitConfig:
    measure: str = "softmax"  # confidence: softmax (max prob) | margin (top1-top2) | saturation
    threshold: float = 1.01  # exit when confidence >= threshold (> 1: never); set by calibrate()
    min_layer: int = 1  # the earliest layer (1-based) an example may leave at


def confidence(
    measure: str, logits: torch.Tensor, h: torch.Tensor, h_prev: torch.Tensor
) -> torch.Tensor:
    """Confidence of each row (B,) from exit logits (B, K) or pooled states (B, C) (CALM §3.5).

    ``softmax``: the largest class probability. ``margin``: largest minus second largest
    probability. ``saturation``: cosine similarity of this layer's and the previous layer's
    pooled hidden state (a state that stopped changing is "saturated").
    """
    if measure == "softmax":
        return F.softmax(logits, dim=-1).amax(dim=-1)  # (B,)
    if measure == "margin":
        top2 = F.softmax(logits, dim=-1).topk(2, dim=-1).values  # (B, 2)
        return top2[:, 0] - top2[:, 1]  # (B,)
    if measure == "saturation":
        return F.cosine_similarity(h, h_prev, dim=-1)  # (B,)
    raise ValueError(f"unknown confidence measure {measure!r}; use one of {', '.join(MEASURES)}")


class ExitHead(nn.Module):
    """An intermediate classifier: LayerNorm and Linear on the pooled state."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        assert config.n_classes is not None, "early exit needs a classifier (n_classes)"
        self.ln = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.n_classes, bias=False)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln(pooled))  # (B, K)


class EarlyExitTransformer(Transformer):
    """A :class:`Transformer` classifier with an exit after each of its ``n_layer`` blocks.

    The last exit is the usual final LayerNorm and head. ``forward`` trains all exits;
    :meth:`infer` exits per example; :meth:`all_exits` gives every exit's logits (calibration).
    """

    def __init__(self, config: TransformerConfig, ee: EarlyExitConfig | None = None) -> None:
        assert config.n_classes is not None, "early exit needs a classifier: set n_classes"
        super().__init__(config)
        self.ee = ee or EarlyExitConfig()
        assert self.ee.measure in MEASURES, f"measure must be one of {MEASURES}"
        assert 1 <= self.ee.min_layer <= config.n_layer, "min_layer must be in 1..n_layer"
        self.exit_heads = nn.ModuleList(ExitHead(config) for _ in range(config.n_layer - 1))
        for m in self.exit_heads.modules():
            self._init_weights(m)

    def exit_logits(self, layer: int, pooled: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of exit ``layer`` (0-based) from the pooled state (B, C)."""
        if layer == self.config.n_layer - 1:
            return self.head(self.ln_f(pooled))  # (B, K)
        return self.exit_heads[layer](pooled)  # (B, K)

    def all_exits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every exit on every example: logits (L, B, K) and pooled states (L + 1, B, C).

        The states start with the embedding's (index 0), so saturation at layer i compares
        states i + 1 and i.
        """
        h = self.embed(x)  # (B, T, C)
        states = [self.pool(h, x)]
        logits = []
        for i, block in enumerate(self.blocks):
            h = block(h)  # (B, T, C)
            p = self.pool(h, x)  # (B, C)
            states.append(p)
            logits.append(self.exit_logits(i, p))  # (B, K)
        return torch.stack(logits), torch.stack(states)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training / full-depth pass: final logits (B, K); loss = depth-weighted exit losses."""
        logits, _ = self.all_exits(x)  # (L, B, K)
        loss = None
        if targets is not None:
            L = logits.shape[0]
            w = torch.arange(1, L + 1, dtype=logits.dtype, device=logits.device)  # CALM: w_i ∝ i
            losses = torch.stack([F.cross_entropy(lg, targets) for lg in logits])  # (L,)
            loss = (w * losses).sum() / w.sum()
        return logits[-1], loss

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exit per example: logits (B, K) and the 1-based layer each example left at (B,).

        After each layer, examples whose confidence reaches ``ee.threshold`` are answered and
        dropped from the batch; the rest go on. Blocks after the last remaining example's exit
        are never called.
        """
        B = x.shape[0]
        L = self.config.n_layer
        out = torch.empty(B, self.config.n_classes, device=x.device)  # type: ignore[arg-type]
        exit_layer = torch.full((B,), L, dtype=torch.long, device=x.device)
        rows = torch.arange(B, device=x.device)  # which examples are still running
        h = self.embed(x)  # (B, T, C)
        prev = self.pool(h, x) if self.ee.measure == "saturation" else None
        for i, block in enumerate(self.blocks):
            h = block(h)  # (b, T, C), b <= B
            p = self.pool(h, x)  # (b, C)
            logits = self.exit_logits(i, p)  # (b, K)
            if i == L - 1:
                out[rows] = logits
                break
            if i + 1 < self.ee.min_layer:
                prev = p
                continue
            conf = confidence(self.ee.measure, logits, p, prev if prev is not None else p)
            done = conf >= self.ee.threshold  # (b,)
            if bool(done.any()):
                out[rows[done]] = logits[done]
                exit_layer[rows[done]] = i + 1
                keep = (~done).nonzero().squeeze(1)  # (b',)
                if keep.numel() == 0:
                    break
                rows, h, x, p = rows[keep], h[keep], x[keep], p[keep]
            prev = p
        return out, exit_layer

    def param_counts(self, mean_exit_layer: float | None = None) -> tuple[int, int]:
        """(total, active): active counts the blocks and exits used at ``mean_exit_layer``."""
        total = sum(p.numel() for p in self.parameters())
        if mean_exit_layer is None:
            return total, total
        L = self.config.n_layer
        per_block = sum(p.numel() for p in self.blocks[0].parameters())
        per_exit = sum(p.numel() for p in self.exit_heads[0].parameters()) if L > 1 else 0
        unused_blocks = (L - mean_exit_layer) * per_block
        unused_exits = (L - mean_exit_layer) * per_exit  # exits after the one taken
        return total, round(total - unused_blocks - unused_exits)


@dataclass(frozen=True)
class Calibration:
    """The calibrated threshold and what it gave on the calibration data.

    Attributes:
        threshold: exit when confidence >= threshold.
        measure: the confidence measure it applies to.
        accuracy: accuracy with early exit at ``threshold``. Units: fraction.
        full_accuracy: accuracy of the last exit for every example. Units: fraction.
        disagreement: fraction of examples whose early answer differs from the full model's.
        mean_exit_layer: average 1-based exit layer.
        n_layer: layers of the model.
        method: ``empirical`` or ``ltt`` (Learn-then-Test, Hoeffding p-values).
        reference_accuracy: the accuracy the loss was measured against (``full_accuracy``
            unless another was given). Units: fraction.
    """

    threshold: float
    measure: str
    accuracy: float
    full_accuracy: float
    disagreement: float
    mean_exit_layer: float
    n_layer: int
    method: str
    reference_accuracy: float


def _simulate(conf: torch.Tensor, lam: float, min_layer: int) -> torch.Tensor:
    """Exit layer index (0-based) per example for threshold ``lam``; conf is (L, N)."""
    L = conf.shape[0]
    ok = conf >= lam  # (L, N)
    ok[: min_layer - 1] = False
    ok[L - 1] = True
    return ok.float().argmax(dim=0)  # first True, (N,)


@torch.no_grad()
def calibrate(
    model: EarlyExitTransformer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    max_loss: float = 0.01,
    risk: str = "accuracy",
    method: str = "empirical",
    epsilon: float = 0.05,
    reference_accuracy: float | None = None,
    batch_size: int = 512,
    n_candidates: int = 200,
) -> Calibration:
    """Pick the lowest threshold whose risk on (x, y) stays within ``max_loss``; set it on model.

    Candidate thresholds are quantiles of the observed confidences, tested from the most
    conservative down (fixed-sequence testing, as in CALM's Learn-then-Test); the scan stops at
    the first threshold that fails.

    Args:
        max_loss: the tolerated risk. ``risk="accuracy"``: accuracy points lost against the
            full-depth model (Schwartz et al.); ``risk="consistency"``: fraction of examples
            whose answer differs from the full model's (CALM's textual consistency).
        method: ``empirical`` (the risk measured on the data must be <= max_loss) or ``ltt``
            (Learn-then-Test: the Hoeffding p-value of "risk > max_loss" must be <= epsilon,
            a guarantee that needs thousands of examples for small max_loss).
        epsilon: the LTT error level.
        reference_accuracy: with ``risk="accuracy"``, measure the loss against this accuracy
            on (x, y) instead of the model's own full depth: e.g. the validation accuracy of
            the model early exit replaces, to keep within ``max_loss`` of what it replaces.
    """
    if risk not in ("accuracy", "consistency"):
        raise ValueError(f"risk must be 'accuracy' or 'consistency', got {risk!r}")
    if method not in ("empirical", "ltt"):
        raise ValueError(f"method must be 'empirical' or 'ltt', got {method!r}")
    was_training = model.training
    model.eval()
    logits_parts, conf_parts = [], []
    measure = model.ee.measure
    for i in range(0, x.shape[0], batch_size):
        lg, st = model.all_exits(x[i : i + batch_size])  # (L, b, K), (L+1, b, C)
        L, b, K = lg.shape
        c = confidence(measure, lg.reshape(L * b, K), st[1:].reshape(L * b, -1),
                       st[:-1].reshape(L * b, -1)).view(L, b)  # fmt: skip
        logits_parts.append(lg)
        conf_parts.append(c)
    model.train(was_training)
    pred = torch.cat(logits_parts, dim=1).argmax(-1).cpu()  # (L, N)
    conf = torch.cat(conf_parts, dim=1).float().cpu()  # (L, N)
    y = y.cpu()
    L, N = pred.shape
    correct = (pred == y[None, :]).float()  # (L, N)
    full_acc = float(correct[-1].mean())
    qs = torch.linspace(1.0, 0.0, n_candidates)
    candidates = [float("inf"), *torch.quantile(conf[: L - 1].flatten(), qs).tolist()]
    best = (float("inf"), full_acc, 0.0, float(L))
    for lam in candidates:
        layer = _simulate(conf, lam, model.ee.min_layer)  # (N,)
        chosen = pred.gather(0, layer[None, :])[0]
        acc = float((chosen == y).float().mean())
        disagree = float((chosen != pred[-1]).float().mean())
        if risk == "accuracy" and reference_accuracy is not None:
            per_ex = reference_accuracy - (chosen == y).float()  # range 1
            span = 1.0
        elif risk == "accuracy":
            per_ex = correct[-1] - (chosen == y).float()  # in [-1, 1]
            span = 2.0
        else:
            per_ex = (chosen != pred[-1]).float()  # in [0, 1]
            span = 1.0
        r_hat = float(per_ex.mean())
        if method == "empirical":
            ok = r_hat <= max_loss
        else:
            gap = max_loss - r_hat
            p_value = math.exp(-2.0 * N * gap * gap / span**2) if gap > 0 else 1.0
            ok = p_value <= epsilon
        if not ok:
            break
        best = (lam, acc, disagree, float(layer.float().mean()) + 1.0)
    lam, acc, disagree, mean_layer = best
    model.ee.threshold = lam
    return Calibration(
        threshold=lam,
        measure=measure,
        accuracy=acc,
        full_accuracy=full_acc,
        disagreement=disagree,
        mean_exit_layer=mean_layer,
        n_layer=L,
        method=method,
        reference_accuracy=full_acc if reference_accuracy is None else reference_accuracy,
    )
