"""Which AMD GPUs a process sees: ``ROCR_VISIBLE_DEVICES``, then ``HIP_VISIBLE_DEVICES`` (or
``CUDA_VISIBLE_DEVICES``), by index or UUID — shared by the amdsmi meter and the amdgpu hwmon
fallback (:mod:`greentrack.meters.amdsmi`, :mod:`greentrack.meters.hwmon`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["AmdGpuInfo", "visible_amd_indices"]


def _norm_uuid(uuid: str) -> str:
    u = uuid.strip().lower()
    u = u[len("gpu-") :] if u.startswith("gpu-") else u
    return u.replace("-", "")


@dataclass(frozen=True, slots=True)
class AmdGpuInfo:
    """One AMD GPU (or compute die) as amdsmi sees it.

    Attributes:
        index: amdsmi handle index (the order of ``amdsmi_get_processor_handles``).
        uuid: ``amdsmi_get_gpu_device_uuid``.
        name: model name (asic ``market_name`` or board ``product_name``).
        hip_uuid: ``GPU-<hex>`` as ROCr/HIP print it ("" when the library does not say).
        hip_id: HIP's index of the GPU, or None when the library does not say.
        serial: board (else asic) serial; dies of one package share it ("" when unknown).
        bdf: PCI address, e.g. ``0000:0c:00.0`` ("" when unknown).
    """

    index: int
    uuid: str
    name: str
    hip_uuid: str = ""
    hip_id: int | None = None
    serial: str = ""
    bdf: str = ""

    @property
    def device(self) -> str:
        """greentrack's device id: ``gpu:amd-<amdsmi index>``."""
        return f"gpu:amd-{self.index}"

    def matches(self, token: str) -> bool:
        """Whether a UUID entry (``GPU-<hex>``, full or a prefix) names this GPU."""
        key = _norm_uuid(token)
        return bool(key) and any(
            u and u.startswith(key) for u in (_norm_uuid(self.hip_uuid), _norm_uuid(self.uuid))
        )


def _select(
    value: str | None, pool: Sequence[AmdGpuInfo], var: str
) -> tuple[list[int], str | None]:
    """Positions in ``pool`` that ``value`` (a *_VISIBLE_DEVICES value) selects, and a problem."""
    if value is None:
        return list(range(len(pool))), None
    value = value.strip()
    if value in ("", "-1"):
        return [], None
    out: list[int] = []
    for raw in value.split(","):
        tok = raw.strip()
        pos: int | None = None
        if tok.lstrip("+-").isdigit():
            i = int(tok)
            pos = i if 0 <= i < len(pool) else None
        elif tok.lower().startswith("gpu-"):
            hits = [k for k, g in enumerate(pool) if g.matches(tok)]
            pos = hits[0] if len(hits) == 1 else None
        if pos is None:
            if tok == "-1":
                return out, None
            return out, (
                f"{var} entry {tok!r} names no single AMD GPU of the {len(pool)} it selects "
                f"from; ROCm ignores it and the entries after it"
            )
        if pos not in out:
            out.append(pos)
    return out, None


def visible_amd_indices(
    env: Mapping[str, str], gpus: Sequence[AmdGpuInfo]
) -> tuple[list[int], list[str]]:
    """amdsmi indices of the GPUs this process sees, in HIP order, and what to warn about.

    ``ROCR_VISIBLE_DEVICES`` applies first, then ``HIP_VISIBLE_DEVICES`` (or
    ``CUDA_VISIBLE_DEVICES`` when it is unset) over what ROCr left (see the module docstring).
    """
    order = sorted(gpus, key=lambda g: (g.hip_id is None, g.hip_id or 0, g.index))
    if any(g.hip_id is None for g in gpus):
        order = sorted(gpus, key=lambda g: g.index)
    problems: list[str] = []
    picked, p = _select(env.get("ROCR_VISIBLE_DEVICES"), order, "ROCR_VISIBLE_DEVICES")
    problems += [p] if p else []
    pool = [order[i] for i in picked]
    var = "HIP_VISIBLE_DEVICES" if "HIP_VISIBLE_DEVICES" in env else "CUDA_VISIBLE_DEVICES"
    chosen, p = _select(env.get(var), pool, var)
    problems += [p] if p else []
    hip, cuda = env.get("HIP_VISIBLE_DEVICES"), env.get("CUDA_VISIBLE_DEVICES")
    if hip is not None and cuda is not None and hip.strip() != cuda.strip():
        problems.append(
            "HIP_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES differ; HIP uses "
            "HIP_VISIBLE_DEVICES, and so does greentrack"
        )
    return [pool[i].index for i in chosen], problems
