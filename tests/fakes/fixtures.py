"""Pytest fixtures for simulated hardware (loaded by ``pytest_plugins = ["fakes.fixtures"]``).

- ``fake_powercap``: a :class:`~fakes.powercap.FakePowercap` (two sockets with core and DRAM
  sub-zones, an MMIO duplicate of package-0, a psys zone) with ``GREENTRACK_SYSFS`` pointing at it.
- ``no_powercap``: ``GREENTRACK_SYSFS`` pointing at an empty sysfs (no RAPL at all).
- ``fake_nvml``: a :class:`~fakes.nvml.FakeNvml` with :func:`~fakes.nvml.default_gpus`
  installed under ``pynvml``; ``CUDA_VISIBLE_DEVICES`` / ``CUDA_DEVICE_ORDER`` unset.
- ``no_nvml``: ``nvmlInit`` fails with NVML_ERROR_LIBRARY_NOT_FOUND (a host without the driver),
  also on a machine that has GPUs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest

from fakes.nvml import FakeNvml
from fakes.powercap import FakePowercap


@pytest.fixture
def fake_powercap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePowercap]:
    fake = FakePowercap(tmp_path / "sys")
    monkeypatch.setenv("GREENTRACK_SYSFS", str(fake.sysfs))
    yield fake
    fake.stop()


@pytest.fixture
def no_powercap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "empty-sys"
    root.mkdir()
    monkeypatch.setenv("GREENTRACK_SYSFS", str(root))
    return root


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    fake = FakeNvml().install(monkeypatch)
    yield fake
    fake.stop()


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, driver_loaded=False)
    return fake.install(monkeypatch)
