"""On a real NVIDIA GPU (marker ``gpu``; skipped cleanly without one): a tracked CUDA workload."""

from __future__ import annotations

import pytest

import greentrack as gt

pytestmark = pytest.mark.gpu


def _cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception as e:  # pragma: no cover - depends on the host
        pytest.skip(f"NVML unavailable: {e}")
    return torch


def test_tracked_matmul_measures_the_gpu(sqlite_url: str) -> None:
    torch = _cuda()
    x = torch.randn(8192, 8192, device="cuda")
    with gt.track("gpu-matmul", db=sqlite_url, interval_s=0.1) as run:
        with run.phase("idle"):
            torch.cuda.synchronize()
        with run.phase("matmul"):
            for _ in range(50):
                x = (x @ x).tanh()
    s = run.summary()
    gpus = [c for c in s.components if c.component == "gpu"]
    assert gpus, "no GPU component measured"
    assert all(c.method in ("counter", "sampled") for c in gpus)
    phases = {p.name: p for p in s.phases}
    assert phases["matmul"].energy_j > 0
    mean_power_w = phases["matmul"].components[gpus[0].device] / phases["matmul"].duration_s
    assert 20 < mean_power_w < 1500, mean_power_w  # a busy data-centre GPU, not noise
