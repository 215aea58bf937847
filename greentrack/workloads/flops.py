"""FLOP counting with PyTorch's own counter (``torch.utils.flop_counter.FlopCounterMode``).

The counter adds up the FLOPs of matrix multiplications, convolutions and attention kernels
(``mm``, ``bmm``, ``addmm``, ``einsum`` lowered to ``bmm``, ``scaled_dot_product_attention``)
of the calls that actually run, with 2 FLOPs per multiply-add. Element-wise work (activations,
softmax, LayerNorm) and gathers are not counted. Because it records the calls that run, a model
that skips work (early exit, MoE routing, sparse gathers) is counted for what it did.

torch is imported inside the function: this module is cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["count_flops"]


def count_flops(model: Callable[..., Any], example_input: Any, *args: Any, **kwargs: Any) -> int:
    """FLOPs of one forward call ``model(example_input, *args, **kwargs)``, without gradients.

    An ``nn.Module`` is counted in eval mode (inference: no dropout, sparse paths on) and put
    back in the mode it was in.
    ``model`` is an ``nn.Module`` or any callable (e.g. ``model.infer``). Divide by the batch
    size for FLOPs per example. Units: floating-point operations (a multiply-add counts 2).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = getattr(model, "training", None)
    if was_training:
        model.eval()  # type: ignore[attr-defined]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example_input, *args, **kwargs)
    finally:
        if was_training:
            model.train()  # type: ignore[attr-defined]
    return int(counter.get_total_flops())
