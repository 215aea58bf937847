"""Compression: knowledge distillation, int8 weight-only quantization, magnitude pruning.

- Distillation follows "Distilling the Knowledge in a Neural Network" (Hinton, Vinyals & Dean,
  2015, arXiv:1503.02531): the student matches the teacher's softened distribution,
  ``loss = α · T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α) · CE(z_s, y)``.
- Int8 weight-only quantization: symmetric, per output channel (row), as in LLM.int8's
  vector-wise quantization (Dettmers et al., 2022, arXiv:2208.07339) without its outlier path,
  and the weight-only int8 of gpt-fast / torchao: ``scale_j = max_i |W_ji| / 127``,
  ``Q = round(W / scale)``; activations stay in float. Since the scale is per output row,
  ``x Wᵀ = (x Qᵀ) · scale``: the layer casts ``Q`` to the activation dtype, multiplies and
  rescales the output (or calls PyTorch's int8 kernel ``_weight_int8pack_mm`` when asked).
  Weights take 4× less memory; whether it is faster depends on the kernel, which the
  benchmark measures rather than assumes.
- Magnitude pruning after "Learning both Weights and Connections for Efficient Neural
  Networks" (Han et al., NeurIPS 2015, arXiv:1506.02626): zero the smallest-magnitude weights
  (globally over all Linear layers), fine-tune with the mask held. Zeros in a dense tensor cost
  the same multiply-adds as any other number; :func:`to_sparse_csr` swaps the pruned weights
  for compressed sparse rows so the benchmark can measure whether a sparse kernel recovers
  anything at the sparsity reached.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

__all__ = [
    "CSRLinear",
    "Int8Linear",
    "PruneMasks",
    "distillation_loss",
    "magnitude_prune",
    "quantize_int8",
    "sparsity",
    "to_sparse_csr",
]


# ---------------------------------------------------------------------------------- distillation


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 2.0,
    alpha: float = 0.7,
) -> torch.Tensor:
    """Hinton et al.'s loss on logits (B, K) with hard targets (B,); LM logits (B, T, V) too."""
    assert student_logits.shape == teacher_logits.shape, "student and teacher logits differ"
    K = student_logits.shape[-1]
    s = student_logits.reshape(-1, K)  # (N, K)
    t = teacher_logits.reshape(-1, K).detach()  # (N, K)
    soft = F.kl_div(
        F.log_softmax(s / temperature, dim=-1),
        F.log_softmax(t / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    hard = F.cross_entropy(s, targets.reshape(-1))
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard


# ------------------------------------------------------------------------------- quantization


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights and one float scale per output channel.

    ``kernel="dequant"`` casts Q to the activation dtype inside the forward (no float copy is
    kept); ``kernel="int8pack"`` calls ``torch._weight_int8pack_mm``.
    """

    def __init__(
        self,
        qweight: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        kernel: str = "dequant",
    ) -> None:
        super().__init__()
        assert qweight.dtype == torch.int8, "qweight must be int8"
        assert scale.shape == (qweight.shape[0],), "one scale per output channel"
        assert kernel in ("dequant", "int8pack"), "kernel must be dequant or int8pack"
        self.register_buffer("qweight", qweight)  # (out, in) int8
        self.register_buffer("scale", scale)  # (out,) float
        self.register_buffer("bias", bias)
        self.kernel = kernel
        self.in_features, self.out_features = qweight.shape[1], qweight.shape[0]

    @classmethod
    def from_float(cls, linear: nn.Linear, kernel: str = "dequant") -> Int8Linear:
        w = linear.weight.detach()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # (out,)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (out, in)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        return cls(q, scale.to(w.dtype), bias, kernel)

    def dequantized(self) -> torch.Tensor:
        """The float weight these int8 values stand for (out, in)."""
        return self.qweight.to(self.scale.dtype) * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape  # (..., in)
        xf = x.reshape(-1, self.in_features)  # (n, in)
        if self.kernel == "int8pack":
            y = torch._weight_int8pack_mm(xf, self.qweight, self.scale.to(xf.dtype))  # (n, out)
        else:
            y = F.linear(xf, self.qweight.to(xf.dtype)) * self.scale.to(xf.dtype)  # (n, out)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, kernel={self.kernel}"


def _replace_linears(model: nn.Module, make: object, skip: tuple[str, ...] = ()) -> int:
    """Replace every nn.Linear (not named in ``skip``) by ``make(linear)``; returns the count."""
    n = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and not any(full.startswith(s) for s in skip):
                setattr(module, child_name, make(child))  # type: ignore[operator]
                n += 1
    return n


def quantize_int8(model: nn.Module, *, kernel: str = "dequant", skip: tuple[str, ...] = ()) -> int:
    """Swap every nn.Linear of ``model`` (in place) for an :class:`Int8Linear`; returns count."""
    return _replace_linears(model, lambda lin: Int8Linear.from_float(lin, kernel), skip)


def model_bytes(model: nn.Module) -> int:
    """Bytes held by parameters and buffers (int8 weights count 1 byte each). Units: bytes."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


# ------------------------------------------------------------------------------------ pruning


@dataclass
class PruneMasks:
    """Boolean keep-masks per pruned weight; :meth:`apply` re-zeroes pruned weights."""

    masks: dict[str, torch.Tensor]

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, keep in self.masks.items():
            params[name].mul_(keep)


@torch.no_grad()
def magnitude_prune(
    model: nn.Module, amount: float, *, skip: tuple[str, ...] = ("head", "wte", "wpe")
) -> PruneMasks:
    """Zero the fraction ``amount`` of smallest-magnitude Linear weights, globally (in place).

    Biases, LayerNorms, embeddings and names starting with ``skip`` are left dense.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    targets = {
        f"{mname}.weight" if mname else "weight": m.weight
        for mname, m in model.named_modules()
        if isinstance(m, nn.Linear) and not any(mname.startswith(s) for s in skip)
    }
    flat = torch.cat([w.detach().abs().flatten() for w in targets.values()])
    k = int(amount * flat.numel())
    if k == 0:
        return PruneMasks({n: torch.ones_like(w, dtype=torch.bool) for n, w in targets.items()})
    cutoff = flat.kthvalue(k).values
    masks = {n: w.abs() > cutoff for n, w in targets.items()}
    pm = PruneMasks(masks)
    pm.apply(model)
    return pm


def sparsity(model: nn.Module) -> float:
    """Fraction of exact zeros among the weights of Linear layers (dense or CSR)."""
    zeros = total = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            zeros += int((m.weight == 0).sum())
            total += m.weight.numel()
        elif isinstance(m, CSRLinear):
            total += m.in_features * m.out_features
            zeros += m.in_features * m.out_features - int(m.weight._nnz())
    return zeros / total if total else 0.0


class CSRLinear(nn.Module):
    """A Linear layer whose weight is a compressed-sparse-row tensor (inference only)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            weight = linear.weight.detach().to_sparse_csr()  # (out, in)
        self.register_buffer("weight", weight)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        xf = x.reshape(-1, self.in_features)  # (n, in)
        y = (self.weight @ xf.t()).t()  # sparse (out, in) @ dense (in, n) -> (n, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)


def to_sparse_csr(model: nn.Module, *, skip: tuple[str, ...] = ("head",)) -> int:
    """Swap every nn.Linear for a :class:`CSRLinear` (in place); returns the count."""
    return _replace_linears(model, CSRLinear, skip)
