"""FLOP counting with PyTorch's own counter (``torch.utils.flop_counter.FlopCounterMode``).

The counter adds up the FLOPs of matrix multiplications, convolutions and attention kernels
(``mm``, ``bmm``, ``addmm``, ``einsum`` lowered to ``bmm``, ``scaled_dot_product_attention``)
of the calls that actually run, with 2 FLOPs per multiply-add. Element-wise work (activations,
softmax, LayerNorm) and gathers are not counted. Because it records the calls that run, a model
that skips work (early exit, MoE routing, sparse gathers) is counted for what it did.

PyTorch's table has no entry for the CPU kernel of ``scaled_dot_product_attention``
(``_scaled_dot_product_flash_attention_for_cpu``), so softmax attention on a CPU would count as
0 FLOPs; :func:`count_flops` adds it with PyTorch's own SDPA formulas (forward and backward).

torch is imported inside the function: this module is cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["count_flops"]


def _extra() -> dict[Any, Any]:
    """FLOP formulas PyTorch's counter lacks: the CPU kernels of scaled_dot_product_attention."""
    import torch
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    pairs = [  # (CPU op, the registered op whose formula applies: same argument layout)
        ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention"),
        ("_scaled_dot_product_flash_attention_for_cpu_backward",
         "_scaled_dot_product_flash_attention_backward"),
    ]  # fmt: skip
    extra: dict[Any, Any] = {}
    for cpu_name, ref_name in pairs:
        cpu_op, ref_op = getattr(aten, cpu_name, None), getattr(aten, ref_name, None)
        formula = fc.flop_registry.get(ref_op) if ref_op is not None else None
        if cpu_op is None or formula is None or cpu_op in fc.flop_registry:
            continue

        def raw(*args: Any, _f: Any = formula, **kwargs: Any) -> int:
            return int(_f(*args, **kwargs))

        raw._get_raw = True  # type: ignore[attr-defined]  # already takes tensors, not shapes
        extra[cpu_op] = raw
    return extra


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
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_extra()) as counter:
            model(example_input, *args, **kwargs)
    finally:
        if was_training:
            model.train()  # type: ignore[attr-defined]
    return int(counter.get_total_flops())
